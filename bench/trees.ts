/**
 * `npm run bench:trees -- --before DIR [--after DIR] [--runtimes node,deno,bun] [--pairs 8]
 * [--scenarios up,down,par,rate,memory] [--streams 1000]`:
 * this tree (or `--after`) against another checkout of burrow ("the tree before"), both
 * running at once, as bench/paired.ts pairs burrow with ssh -R: on a shared
 * machine whose speed drifts within minutes, two trees measured minutes
 * apart differ by more than a change costs; here each ratio comes from two
 * slices seconds apart, in ABBA order, and the figure is the median of the
 * pairs' ratios (after ÷ before) with their range.
 *
 * Per runtime: the plain `burrow-{rt}` system of each tree (each checkout
 * runs its own CLI, started as its own bench/systems.ts starts it), warmed
 * with the same load; then `--pairs` pairs per scenario: one-stream upload
 * and download, 16-stream download (`--seconds` each), the connection rate
 * (32 workers); then memory per idle stream with `--streams` streams, each tree
 * on a fresh start, twice in ABBA order. The tree before needs node_modules
 * (a symlink to this one's will do) and the load generator built here.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { build, hold, type LoadgenResult, runLoadgen, startTarget, waitReady } from "./loadgen.ts";
import { abba } from "./paired.ts";
import { memory, stopAll } from "./proc.ts";
import { median } from "./stats.ts";
import { BURROW_POOL, type Ctx, type Running, type System } from "./systems.ts";

const { values } = parseArgs({
  options: {
    before: { type: "string" },
    after: { type: "string" },
    runtimes: { type: "string", default: "node,deno,bun" },
    pairs: { type: "string", default: "8" },
    seconds: { type: "string", default: "1" },
    scenarios: { type: "string", default: "up,down,par,rate,memory" },
    streams: { type: "string", default: "1000" },
  },
});
if (!values.before) throw new Error("--before DIR: a checkout of the tree to compare with");
const before = path.resolve(values.before);
const after = path.resolve(values.after ?? path.join(import.meta.dirname, ".."));
const pairs = Math.max(2, Math.min(64, Number(values.pairs)));
const secs = Math.max(0.5, Math.min(10, Number(values.seconds)));
const wanted = new Set(values.scenarios!.split(","));
const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-trees-"));
let seq = 0;

type Scenario = "up" | "down" | "par" | "rate";
const SCENARIOS: Record<Scenario, { args: string[]; figure: string }> = {
  up: { args: ["--seconds", String(secs)], figure: "mib_s" },
  down: { args: ["--seconds", String(secs)], figure: "mib_s" },
  par: { args: ["--seconds", String(secs), "--streams", "16"], figure: "mib_s" },
  rate: { args: ["--seconds", String(Math.max(2, secs)), "--workers", "32"], figure: "conn_s" },
};

/** A tree's own `burrow-{rt}` system, from its own bench/systems.ts (its config, its flags). */
async function systemOf(root: string, id: string): Promise<System> {
  const mod = await import(path.join(root, "bench", "systems.ts")) as {
    allSystems: (o: { tls: boolean }) => System[];
  };
  const sys = mod.allSystems({ tls: false }).find((s) => s.id === id);
  if (!sys) throw new Error(`${root}: no system ${id}`);
  return sys;
}

async function begin(id: string, root: string, target: string): Promise<[Running, Ctx]> {
  const sys = await systemOf(root, id);
  const dir = path.join(base, `${path.basename(root)}-${sys.id}-${++seq}`);
  fs.mkdirSync(dir);
  const ctx: Ctx = { target, dir, root, burrowLogLevel: "info", burrowPool: { ...BURROW_POOL } };
  const r = await sys.start(ctx);
  if (!(await waitReady(r.endpoint, 30, path.join(dir, "loadgen.log")))) {
    await r.stop();
    throw new Error(`${root}: ${sys.id} got no stream through within 30 s (see ${dir})`);
  }
  return [r, ctx];
}

async function figure(r: Running, c: Ctx, sc: Scenario): Promise<number> {
  const log = path.join(c.dir, "loadgen.log");
  const { results } = await runLoadgen(sc, r.endpoint, SCENARIOS[sc].args, secs + 60, log);
  const x: LoadgenResult | undefined = results[0];
  if (!x) throw new Error(`${c.dir}: no ${sc} result (see ${log})`);
  return Number(x[SCENARIOS[sc].figure]);
}

const streams = Number(values.streams);
if (!Number.isInteger(streams) || streams < 100 || streams > 10_000) {
  throw new Error("--streams wants 100..10000");
}

/** KiB of PSS per idle stream with `streams` streams held, on a fresh start. */
async function kibPerStream(id: string, root: string, target: string): Promise<number> {
  const [r, c] = await begin(id, root, target);
  try {
    await new Promise((res) => setTimeout(res, 1000));
    const idle = memory(r.roots).pssKiB;
    let held = NaN;
    await hold(r.endpoint, [streams], 64, 120, path.join(c.dir, "loadgen.log"), (x) => {
      if (Number(x.open) === streams) held = memory(r.roots).pssKiB;
      return Promise.resolve();
    });
    return (held - idle) / streams;
  } finally {
    await r.stop();
  }
}

const fmt = (xs: number[]) => {
  const m = median(xs);
  return `${m === undefined ? "–" : m.toFixed(3)}× (${Math.min(...xs).toFixed(2)}–${
    Math.max(...xs).toFixed(2)
  })`;
};

build();
const target = await startTarget(path.join(base, "target.log"));
try {
  console.log(`after: ${after}\nbefore: ${before}\n${pairs} pairs of ${secs} s slices, ABBA`);
  for (const rt of values.runtimes!.split(",")) {
    const id = `burrow-${rt}`;
    const [a, ca] = await begin(id, after, target.addr);
    const [b, cb] = await begin(id, before, target.addr);
    const line: string[] = [];
    try {
      for (const sc of (Object.keys(SCENARIOS) as Scenario[]).filter((s) => wanted.has(s))) {
        await figure(a, ca, sc);
        await figure(b, cb, sc);
        const got = await abba(pairs, () => figure(a, ca, sc), () => figure(b, cb, sc));
        const xs = got.map(([x]) => x), ys = got.map(([, y]) => y);
        const ratios = got.filter(([, y]) => y > 0).map(([x, y]) => x / y);
        line.push(`${sc} ${median(xs)?.toFixed(0)} / ${median(ys)?.toFixed(0)}: ${fmt(ratios)}`);
        console.log(`  ${rt} ${line.at(-1)}`);
      }
    } finally {
      await b.stop();
      await a.stop();
    }
    if (!wanted.has("memory")) {
      console.log(`${rt} (after / before): ${line.join("; ")}`);
      continue;
    }
    const kib: [number[], number[]] = [[], []];
    for (const first of [0, 1]) {
      for (const k of first === 0 ? [0, 1] : [1, 0]) {
        kib[k]!.push(await kibPerStream(id, k === 0 ? after : before, target.addr));
      }
    }
    const ka = median(kib[0])!, kb = median(kib[1])!;
    line.push(`KiB/stream ${ka.toFixed(1)} / ${kb.toFixed(1)}: ${(ka / kb).toFixed(3)}×`);
    console.log(`  ${rt} ${line.at(-1)}`);
    console.log(`${rt} (after / before): ${line.join("; ")}`);
  }
} finally {
  await stopAll();
  fs.rmSync(base, { recursive: true, force: true });
}
