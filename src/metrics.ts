/**
 * Counters, gauges and histograms in the Prometheus text exposition format
 * (0.0.4). Kept in-house on purpose: prom-client pulls in `node:cluster` and
 * `node:perf_hooks`, and the core must stay free of runtime APIs; no other
 * npm registry renderer is both runtime-free and maintained, and the format
 * is small (test/metrics_test.ts checks ours with a real parser).
 *
 * @module
 */

export type Labels = Record<string, string>;

const SPECIAL = /[\\"\n]/;

function escape(v: string): string {
  if (!SPECIAL.test(v)) return v;
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** `{a="1",b="2"}` with the names sorted, or "" for no labels. */
function key(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length === 0) return "";
  if (names.length > 1) names.sort();
  let out = "{";
  for (const k of names) out += `${out.length > 1 ? "," : ""}${k}="${escape(String(labels[k]))}"`;
  return out + "}";
}

/** `key()` with one more label appended (`le` of a histogram bucket). */
function keyWith(k: string, name: string, value: string): string {
  const extra = `${name}="${escape(value)}"`;
  return k === "" ? `{${extra}}` : `${k.slice(0, -1)},${extra}}`;
}

/** A number as Prometheus text: `+Inf`, `-Inf`, `NaN` or a JavaScript number. */
function num(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Histo {
  /** Per bucket (same order as the family's bounds), not cumulative. */
  counts: number[];
  sum: number;
  count: number;
}

/** Count `value` in `h`, whose buckets have upper bounds `bounds`. */
function record(h: Histo, bounds: readonly number[], value: number): void {
  for (let i = 0; i < bounds.length; i++) {
    if (value <= bounds[i]!) {
      h.counts[i]!++;
      break;
    }
  }
  h.sum += value;
  h.count++;
}

interface Family {
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: Map<string, number>;
  histos?: Map<string, Histo>;
  /** Upper bounds of a histogram's buckets, ascending, without +Inf. */
  bounds?: readonly number[];
  collect?: () => Array<[Labels, number]>;
}

/** Buckets (seconds) for stream setup: a CONNECT takes a few ms to a pool wait of seconds. */
export const SETUP_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
] as const;

/** Buckets (seconds) for stream duration: from one request to a day-long session. */
export const DURATION_BUCKETS = [
  0.01,
  0.1,
  0.5,
  1,
  5,
  10,
  30,
  60,
  300,
  900,
  3600,
  14400,
  86400,
] as const;

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

  /**
   * {@link inc} of one label set, resolved once: for a hot path (a call per
   * stream) that would otherwise sort and render its labels every time.
   */
  counterOf(name: string, help: string, labels: Labels = {}): (n?: number) => void {
    const values = this.#family(name, help, "counter").values;
    const k = key(labels);
    if (!values.has(k)) values.set(k, 0);
    return (n = 1) => values.set(k, values.get(k)! + n);
  }

  /** {@link observe} into one label set's histogram, resolved once (see {@link counterOf}). */
  histogramOf(
    name: string,
    help: string,
    labels: Labels = {},
    bounds: readonly number[] = SETUP_BUCKETS,
  ): (value: number) => void {
    const f = this.#family(name, help, "histogram");
    const h = this.#histo(f, key(labels), bounds);
    const b = f.bounds!;
    return (value) => record(h, b, value);
  }

  #histo(f: Family, k: string, bounds: readonly number[]): Histo {
    f.bounds ??= bounds;
    f.histos ??= new Map();
    let h = f.histos.get(k);
    if (!h) {
      h = { counts: f.bounds.map(() => 0), sum: 0, count: 0 };
      f.histos.set(k, h);
    }
    return h;
  }

  /** A gauge computed when scraped. */
  gauge(name: string, help: string, collect: () => Array<[Labels, number]>): void {
    this.#family(name, help, "gauge").collect = collect;
  }

  /**
   * A counter computed when scraped (e.g. bytes of finished streams plus bytes
   * of live ones). `collect` must never return a smaller value for a label set.
   */
  counter(name: string, help: string, collect: () => Array<[Labels, number]>): void {
    this.#family(name, help, "counter").collect = collect;
  }

  /** Observe `value` in a histogram with upper bounds `bounds` (fixed by the first call). */
  observe(
    name: string,
    help: string,
    value: number,
    labels: Labels = {},
    bounds: readonly number[] = SETUP_BUCKETS,
  ): void {
    const f = this.#family(name, help, "histogram");
    record(this.#histo(f, key(labels), bounds), f.bounds!, value);
  }

  /** Current value of a counter (for tests and logs). */
  get(name: string, labels: Labels = {}): number {
    return this.#families.get(name)?.values.get(key(labels)) ?? 0;
  }

  /**
   * A counter's values summed by one of its labels (e.g. refusals by
   * `status`): label value to total, "" for series without that label.
   */
  sumBy(name: string, label: string): Map<string, number> {
    const out = new Map<string, number>();
    const re = new RegExp(`[{,]${label}="((?:[^"\\\\]|\\\\.)*)"`);
    for (const [k, v] of this.#families.get(name)?.values ?? []) {
      const m = re.exec(k);
      const value = m ? m[1]!.replace(/\\(.)/g, (_, c: string) => c === "n" ? "\n" : c) : "";
      out.set(value, (out.get(value) ?? 0) + v);
    }
    return out;
  }

  render(): string {
    let out = "";
    for (const [name, f] of this.#families) {
      out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n`;
      if (f.collect) { for (const [l, v] of f.collect()) out += `${name}${key(l)} ${num(v)}\n`; }
      for (const [k, v] of f.values) out += `${name}${k} ${num(v)}\n`;
      if (f.histos && f.bounds) {
        for (const [k, h] of f.histos) {
          let cum = 0;
          f.bounds.forEach((b, i) => {
            cum += h.counts[i]!;
            out += `${name}_bucket${keyWith(k, "le", num(b))} ${cum}\n`;
          });
          out += `${name}_bucket${keyWith(k, "le", "+Inf")} ${h.count}\n`;
          out += `${name}_sum${k} ${num(h.sum)}\n${name}_count${k} ${h.count}\n`;
        }
      }
    }
    return out;
  }
}
