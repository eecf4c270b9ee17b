/**
 * Counters and gauges in the Prometheus text exposition format (0.0.4).
 * Kept in-house on purpose: prom-client pulls in `node:cluster` and
 * `node:perf_hooks`, and the core must stay free of runtime APIs.
 *
 * @module
 */

type Labels = Record<string, string>;

function key(labels: Labels): string {
  const parts = Object.keys(labels).sort().map((k) =>
    `${k}="${String(labels[k]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

interface Family {
  help: string;
  type: "counter" | "gauge";
  values: Map<string, number>;
  collect?: () => Array<[Labels, number]>;
}

export class Metrics {
  readonly #families = new Map<string, Family>();

  #family(name: string, help: string, type: Family["type"]): Family {
    let f = this.#families.get(name);
    if (!f) {
      f = { help, type, values: new Map() };
      this.#families.set(name, f);
    }
    return f;
  }

  /** Add `n` to a counter. */
  inc(name: string, help: string, labels: Labels = {}, n = 1): void {
    const f = this.#family(name, help, "counter");
    const k = key(labels);
    f.values.set(k, (f.values.get(k) ?? 0) + n);
  }

  /** A gauge computed when scraped. */
  gauge(name: string, help: string, collect: () => Array<[Labels, number]>): void {
    this.#family(name, help, "gauge").collect = collect;
  }

  /** Current value of a counter (for tests and logs). */
  get(name: string, labels: Labels = {}): number {
    return this.#families.get(name)?.values.get(key(labels)) ?? 0;
  }

  render(): string {
    let out = "";
    for (const [name, f] of this.#families) {
      out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n`;
      if (f.collect) { for (const [l, v] of f.collect()) out += `${name}${key(l)} ${v}\n`; }
      for (const [k, v] of f.values) out += `${name}${k} ${v}\n`;
    }
    return out;
  }
}
