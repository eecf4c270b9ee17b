/**
 * The benchmark's markdown report: results, ratios to direct and to ssh -R,
 * burrow against its targets, load-generator evidence, machine facts.
 */
import fs from "node:fs";
import { type PairedPlan, type PairedResult, renderPaired } from "./paired.ts";
import type { SystemResult } from "./run.ts";

type Meta = {
  mode: string;
  seconds: number;
  plan: {
    repeats: number;
    secs: number;
    latCount: number;
    rateSecs: number;
    /** Unmeasured seconds of the same load before them (absent in older results). */
    rateWarmSecs?: number;
    rateWorkers: number;
    parStreams: number;
    stages: number[];
  };
  burrow: { pool: { min: number; max: number }; limits: Record<string, number>; logLevel: string };
  loadgen: string;
  /** Connections/s paired with ssh -R pty (bench/paired.ts; absent in older results and --quick). */
  paired?: { plan: PairedPlan; results: PairedResult[] };
  facts: {
    date: string;
    commit: string;
    cores: number;
    cpu: string;
    memoryGiB: number;
    kernel: string;
    fdLimit: string;
    versions: Record<string, string>;
  };
};

const fin = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);

function fmt(
  x: number | undefined,
  kind: "tput" | "ms" | "rate" | "kib" | "ratio" | "pct" | "mib",
): string {
  if (!fin(x)) return "–";
  switch (kind) {
    case "tput":
    case "rate":
    case "pct":
      return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
    case "ms":
      return x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
    case "kib":
    case "mib":
      return x >= 100 ? x.toFixed(0) : x.toFixed(1);
    case "ratio":
      return x >= 10 ? `${x.toFixed(0)}×` : `${x.toFixed(2)}×`;
  }
}

type Metric = {
  key: string;
  head: string;
  kind: "tput" | "ms" | "rate" | "kib";
  /** true: more is better. */
  up: boolean;
  get: (r: SystemResult) => number | undefined;
};

const stage = (r: SystemResult, n: number) => r.memory?.stages.find((s) => s.streams === n);

function metrics(stages: number[]): Metric[] {
  return [
    { key: "up", head: "up MiB/s", kind: "tput", up: true, get: (r) => r.median.up },
    { key: "down", head: "down MiB/s", kind: "tput", up: true, get: (r) => r.median.down },
    { key: "par", head: "16× down MiB/s", kind: "tput", up: true, get: (r) => r.median.par },
    { key: "p50", head: "connect p50 ms", kind: "ms", up: false, get: (r) => r.median.p50 },
    { key: "p99", head: "p99 ms", kind: "ms", up: false, get: (r) => r.median.p99 },
    { key: "rate", head: "conn/s", kind: "rate", up: true, get: (r) => r.median.rate },
    ...stages.map((n): Metric => ({
      key: `mem${n}`,
      head: `KiB/stream @${n}`,
      kind: "kib",
      up: false,
      // PSS: RSS would count the shared pages of every forked process (socat, sshd) again
      get: (r) => stage(r, n)?.perStreamPssKiB,
    })),
  ];
}

function errorsOf(r: SystemResult): number {
  const m = r.median;
  const memErr = (r.memory?.stages ?? []).reduce(
    (a, s) => a + s.errors + (s.streams - s.open - s.errors),
    0,
  );
  return (m.rateErrors ?? 0) + (m.latErrors ?? 0) + (m.tputErrors ?? 0) + memErr;
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? "---" : "---:"))), ...rows.map(line)].join(
    "\n",
  );
}

interface Check {
  name: string;
  /** The value shown and whether it passes; undefined: not applicable. */
  eval: (r: SystemResult, tls: boolean) => { text: string; pass: boolean } | undefined;
}

function ratioCheck(
  m: (r: SystemResult) => number | undefined,
  ref: SystemResult | undefined,
  op: "≥" | "≤",
  k: number,
): (r: SystemResult) => { text: string; pass: boolean } | undefined {
  return (r) => {
    const a = m(r), b = ref ? m(ref) : undefined;
    if (!fin(a) || !fin(b) || b === 0) return undefined;
    const q = a / b;
    return { text: fmt(q, "ratio"), pass: op === "≥" ? q >= k : q <= k };
  };
}

function checks(by: Map<string, SystemResult>, stages: number[]): Check[] {
  const ssh = by.get("ssh"), pty = by.get("ssh-pty"), relay = by.get("relay2");
  const plainOnly =
    (f: (r: SystemResult) => { text: string; pass: boolean } | undefined) =>
    (r: SystemResult, tls: boolean) => tls ? undefined : f(r);
  const tlsOnly =
    (f: (r: SystemResult) => { text: string; pass: boolean } | undefined) =>
    (r: SystemResult, tls: boolean) => tls ? f(r) : undefined;
  const all =
    (f: (r: SystemResult) => { text: string; pass: boolean } | undefined) => (r: SystemResult) =>
      f(r);
  const list: Check[] = [
    { name: "up ≥ 1.2× ssh -R", eval: plainOnly(ratioCheck((r) => r.median.up, ssh, "≥", 1.2)) },
    {
      name: "down ≥ 1.2× ssh -R",
      eval: plainOnly(ratioCheck((r) => r.median.down, ssh, "≥", 1.2)),
    },
    { name: "up ≥ 1.0× relay2", eval: plainOnly(ratioCheck((r) => r.median.up, relay, "≥", 1.0)) },
    {
      name: "down ≥ 1.0× relay2",
      eval: plainOnly(ratioCheck((r) => r.median.down, relay, "≥", 1.0)),
    },
    { name: "TLS up ≥ 1.0× ssh -R", eval: tlsOnly(ratioCheck((r) => r.median.up, ssh, "≥", 1.0)) },
    {
      name: "TLS down ≥ 1.0× ssh -R",
      eval: tlsOnly(ratioCheck((r) => r.median.down, ssh, "≥", 1.0)),
    },
    { name: "16 streams ≥ 2× ssh -R", eval: all(ratioCheck((r) => r.median.par, ssh, "≥", 2)) },
    {
      name: "connect p50 ≤ 0.7× ssh -R pty",
      eval: all(ratioCheck((r) => r.median.p50, pty, "≤", 0.7)),
    },
    {
      name: "connect p99 ≤ 5 ms",
      eval: (
        r,
      ) => (fin(r.median.p99)
        ? { text: `${fmt(r.median.p99, "ms")} ms`, pass: r.median.p99 <= 5 }
        : undefined),
    },
    {
      name: "conn/s ≥ 1.5× ssh -R pty",
      eval: all(ratioCheck((r) => r.median.rate, pty, "≥", 1.5)),
    },
    {
      name: "conn errors = 0",
      eval: (
        r,
      ) => (r.median.rateErrors === undefined
        ? undefined
        : { text: String(r.median.rateErrors), pass: r.median.rateErrors === 0 }),
    },
    ...stages.map((n): Check => ({
      name: `KiB/stream @${n} ≤ 0.5× ssh -R`,
      eval: all(ratioCheck((r) => stage(r, n)?.perStreamPssKiB, ssh, "≤", 0.5)),
    })),
    {
      name: "idle-stream errors = 0",
      eval: (r) => {
        if (!r.memory) return undefined;
        const e = r.memory.stages.reduce(
          (a, s) => a + s.errors + (s.streams - s.open - s.errors),
          0,
        );
        return { text: String(e), pass: e === 0 && r.memory.stages.length > 0 };
      },
    },
  ];
  return list;
}

/** Runtimes within half of the fastest, per metric, among `rows`. */
function spread(rows: SystemResult[], ms: Metric[]): string[] {
  const out: string[] = [];
  for (const m of ms) {
    const vals = rows.map((r) => [r, m.get(r)] as const).filter(([, v]) => fin(v)) as Array<
      readonly [SystemResult, number]
    >;
    if (vals.length < 2) continue;
    const best = m.up ? Math.max(...vals.map(([, v]) => v)) : Math.min(...vals.map(([, v]) => v));
    for (const [r, v] of vals) {
      const rel = m.up ? v / best : best / v;
      if (rel < 0.5) {
        out.push(
          `${r.label}: ${m.head} ${fmt(v, m.kind)} is ${fmt(rel, "ratio")} of the best runtime (${
            fmt(best, m.kind)
          })`,
        );
      }
    }
  }
  return out;
}

export function renderMarkdown(meta: Meta, results: SystemResult[]): string {
  const f = meta.facts;
  const by = new Map(results.map((r) => [r.id, r]));
  const ms = metrics(meta.plan.stages);
  const direct = by.get("direct"), ssh = by.get("ssh"), pty = by.get("ssh-pty");
  const out: string[] = [];
  const cipher = ssh?.info.cipher ?? pty?.info.cipher ?? "?";
  out.push(
    `Run ${f.date.slice(0, 16).replace("T", " ")} UTC, ${meta.mode} (${
      meta.plan.repeats === 1 ? "1 round" : `median of ${meta.plan.repeats} rounds`
    }` +
      `, ${meta.seconds.toFixed(0)} s), commit ${f.commit}.`,
    "",
    `Machine: ${f.cores} cores (${f.cpu}), ${f.memoryGiB} GiB, Linux ${f.kernel}, fd limit ${f.fdLimit}. ` +
      `Node ${f.versions.node}, Deno ${f.versions.deno}, Bun ${f.versions.bun}; socat ${f.versions.socat}, ` +
      `microsocks ${f.versions.microsocks}, ${f.versions.openssh} (cipher ${cipher}); ${f.versions.gcc}.`,
    "",
    `Scenarios: up/down one stream for ${meta.plan.secs} s; ${meta.plan.parStreams} parallel download streams for ${meta.plan.secs} s; ` +
      `connect + SOCKS5 handshake + 1-byte echo, ${meta.plan.latCount} sequential connections; ` +
      `${meta.plan.rateWorkers} workers opening connections with a 64-byte echo for ${meta.plan.rateSecs} s` +
      (meta.plan.rateWarmSecs
        ? ` after ${meta.plan.rateWarmSecs} s of the same load not counted; `
        : "; ") +
      `memory (PSS) of the system's processes with ${
        meta.plan.stages.join(" and ")
      } idle streams, minus idle, per stream. ` +
      `burrow: pool min ${meta.burrow.pool.min}, max ${meta.burrow.pool.max}, log level ${meta.burrow.logLevel}.`,
    "",
  );
  const disturbed = results.filter((r) => (r.median.otherCpuMax ?? 0) > 30);
  if (disturbed.length > 0) {
    const worst = Math.max(...disturbed.map((r) => r.median.otherCpuMax ?? 0));
    out.push(
      `Other processes on the machine used up to ${
        fmt(worst, "pct")
      } % of a core during some scenario runs ` +
        `(${disturbed.length} of ${results.length} systems had a run above 30 %; see "others" in the CPU table): ` +
        `those runs are slower, and the median of the rounds is what is reported.`,
      "",
    );
  }

  // Results
  out.push(
    `**Results** (${
      meta.plan.repeats === 1 ? "one round" : `median of ${meta.plan.repeats} rounds`
    }; MiB/s and conn/s: more is better; ms and KiB: less is better)`,
    "",
  );
  out.push(
    table(
      ["system", ...ms.map((m) => m.head), "errors"],
      results.map((r) => [
        r.label,
        ...ms.map((m) => fmt(m.get(r), m.kind)),
        r.errors.length && !fin(r.median.up) && !r.memory ? "failed" : String(errorsOf(r)),
      ]),
    ),
    "",
  );

  const withMem = results.filter((r) => r.memory);
  if (withMem.length > 0) {
    const st = meta.plan.stages;
    out.push(
      "**Memory** of the system's processes (sum over them; per stream = (with N streams − idle) ÷ N)",
      "",
    );
    out.push(
      table(
        [
          "system",
          "idle RSS MiB",
          "idle PSS MiB",
          ...st.flatMap((
            n,
          ) => [`RSS MiB @${n}`, `PSS MiB @${n}`, `KiB/stream RSS @${n}`, `KiB/stream PSS @${n}`]),
          "processes / threads @max",
        ],
        withMem.map((r) => {
          const m = r.memory!;
          const last = m.stages[m.stages.length - 1];
          return [
            r.label,
            fmt(m.idle.rssKiB / 1024, "mib"),
            fmt(m.idle.pssKiB / 1024, "mib"),
            ...st.flatMap((n) => {
              const s = stage(r, n);
              return [
                fmt(s ? s.mem.rssKiB / 1024 : undefined, "mib"),
                fmt(s ? s.mem.pssKiB / 1024 : undefined, "mib"),
                fmt(s?.perStreamRssKiB, "kib"),
                fmt(s?.perStreamPssKiB, "kib"),
              ];
            }),
            last ? `${last.mem.procs} / ${last.mem.threads}` : "–",
          ];
        }),
      ),
      "",
    );
  }

  const ratioTable = (ref: SystemResult | undefined, title: string, which: Metric[]) => {
    if (!ref) return;
    out.push(`**${title}** (value ÷ ${ref.label}'s)`, "");
    out.push(
      table(
        ["system", ...which.map((m) => m.head.replace(/ (MiB\/s|ms)$/, ""))],
        results.map((r) => [
          r.label,
          ...which.map((m) => {
            const a = m.get(r), b = m.get(ref);
            return fin(a) && fin(b) && b !== 0 ? fmt(a / b, "ratio") : "–";
          }),
        ]),
      ),
      "",
    );
  };
  ratioTable(direct, "Ratio to direct", ms.filter((m) => !m.key.startsWith("mem")));
  ratioTable(ssh, "Ratio to ssh -N -R", ms);
  ratioTable(pty, "Ratio to ssh -R with a pty session", ms);

  // burrow against the targets
  const burrows = results.filter((r) => r.id.startsWith("burrow-"));
  if (burrows.length > 0) {
    const cs = checks(by, meta.plan.stages);
    out.push("**burrow against its targets** (✓ met, ✗ not met)", "");
    const rows = cs
      .map((c) => [
        c.name,
        ...burrows.map((r) => {
          const v = c.eval(r, r.id.endsWith("-tls"));
          return v ? `${v.text} ${v.pass ? "✓" : "✗"}` : "–";
        }),
      ])
      .filter((row) => row.slice(1).some((c) => c !== "–"));
    out.push(table(["target", ...burrows.map((r) => r.label)], rows), "");
    const plain = burrows.filter((r) => !r.id.endsWith("-tls"));
    const tls = burrows.filter((r) => r.id.endsWith("-tls"));
    const sp = [...spread(plain, ms), ...spread(tls, ms)];
    out.push(
      sp.length
        ? `Runtimes below half of the fastest: ${sp.join("; ")}.`
        : "No runtime is below half of the fastest on any figure.",
      "",
    );
  }
  if (meta.paired && meta.paired.results.length > 0) {
    out.push(renderPaired(meta.paired.plan, meta.paired.results));
  }

  // Load generator evidence and CPU
  const relays = results.filter((r) =>
    r.id !== "direct" && !r.errors.some((e) => /no stream got through/.test(e))
  );
  if (direct && relays.length > 0) {
    const ev = (m: Metric) => {
      const best = relays.map(m.get).filter(fin);
      const d = m.get(direct);
      if (!fin(d) || best.length === 0) return "–";
      const b = m.up ? Math.max(...best) : Math.min(...best);
      return `${fmt(m.up ? d / b : b / d, "ratio")}`;
    };
    const lgMax = (sc: string) =>
      Math.max(...relays.map((r) => r.median.loadgenCpu?.[sc] ?? NaN).filter(fin));
    out.push(
      `**Load generator** (${meta.loadgen}). Direct is ` +
        ms.filter((m) => !m.key.startsWith("mem")).map((m) =>
          `${ev(m)} the best relay's ${m.head.replace(/ (MiB\/s|ms)$/, "")}`
        ).join(", ") +
        `. While measuring any relay it used at most ${fmt(lgMax("up"), "pct")} % (up), ${
          fmt(lgMax("down"), "pct")
        } % (down), ` +
        `${fmt(lgMax("par"), "pct")} % (16×), ${fmt(lgMax("rate"), "pct")} % (conn/s) of one core.`,
      "",
    );
  }
  out.push(
    "**CPU** (percent of one core, median; sys = all the system's processes, loadgen = the load generator, " +
      "others = the rest of the machine meanwhile, a disturbance when large)",
    "",
  );
  out.push(
    table(
      [
        "system",
        "up sys",
        "up loadgen",
        "down sys",
        "down loadgen",
        "16× sys",
        "16× loadgen",
        "conn/s sys",
        "conn/s loadgen",
        "others, worst run",
      ],
      results.map((r) => [
        r.label,
        ...(["up", "down", "par", "rate"] as const).flatMap((
          sc,
        ) => [fmt(r.median.sysCpu?.[sc], "pct"), fmt(r.median.loadgenCpu?.[sc], "pct")]),
        fmt(r.median.otherCpuMax, "pct"),
      ]),
    ),
    "",
  );

  // Notes
  const notes: string[] = [];
  for (const r of results) {
    const extra = r.memory?.stages.filter((s) => Object.keys(s.extra).length).map((s) =>
      `@${s.streams}: ${Object.entries(s.extra).map(([k, v]) => `${k} ${v}`).join(", ")}`
    );
    const mem = r.memory?.stages.map((s) =>
      `${s.streams} streams opened in ${s.openSeconds.toFixed(1)} s`
    );
    const parts = [
      ...(mem ?? []),
      ...(extra?.length ? [`burrow metrics ${extra.join("; ")}`] : []),
      ...r.errors.slice(0, 3).map((e) => `error: ${e.split("\n")[0]}`),
    ];
    if (parts.length) notes.push(`- ${r.label}: ${parts.join("; ")}`);
  }
  if (notes.length) out.push("Notes:", "", ...notes, "");
  return out.join("\n");
}

const START = "<!-- latest-results:start -->";
const END = "<!-- latest-results:end -->";

/** Replace the marked "Latest results" block of bench/README.md. */
export function updateReadme(file: string, md: string): void {
  const text = fs.readFileSync(file, "utf8");
  const a = text.indexOf(START), b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${file}: markers ${START} … ${END} not found`);
  fs.writeFileSync(
    file,
    text.slice(0, a + START.length) + "\n\n" + md.trimEnd() + "\n\n" + text.slice(b),
  );
}
