/**
 * `npm run bench:bun-heap -- [--before DIR] [--after DIR] [--streams 1000] [--top 30]`:
 * what a held idle stream keeps on Bun's heap, per process, by what it is.
 * Each tree's `burrow-bun` system (its own bench/systems.ts) is started with
 * bench/bun_heap_hook.ts preloaded; idle and with `--streams` idle streams
 * held, each process collects fully and counts its heap's objects (classes,
 * object shapes, closure scopes); printed: bytes per stream of each process,
 * and the groups that differ most between the trees (or, with one tree, the
 * largest). Unlike bench:trees' PSS it sees neither garbage nor when the GC
 * ran, only what the streams keep; compiled code (`FunctionCodeBlock`) is
 * the first streams' once, spread over all of them.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { build, hold, startTarget, waitReady } from "./loadgen.ts";
import { stopAll, tree } from "./proc.ts";
import { BURROW_POOL, type System } from "./systems.ts";

const { values } = parseArgs({
  options: {
    before: { type: "string" },
    after: { type: "string" },
    streams: { type: "string", default: "1000" },
    top: { type: "string", default: "30" },
  },
});
const n = Math.max(100, Math.min(5000, Number(values.streams)));
const hook = path.join(import.meta.dirname, "bun_heap_hook.ts");
const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-bun-heap-"));
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

type Groups = Record<string, [number, number]>;
type Counts = Record<"server" | "agent", Groups>;

/** Every process of `roots` counts its heap; their files, by role. */
async function count(roots: number[], out: string): Promise<Counts> {
  const seen = new Set(fs.readdirSync(out));
  const pids = tree(roots);
  for (const p of pids) process.kill(p, "SIGUSR2");
  const got: Partial<Counts> = {};
  for (let i = 0; i < 200 && Object.keys(got).length < 2; i++) {
    await sleep(100);
    for (const f of fs.readdirSync(out).filter((f) => f.endsWith(".json") && !seen.has(f))) {
      const j = JSON.parse(fs.readFileSync(path.join(out, f), "utf8")) as {
        role: "server" | "agent";
        groups: Groups;
      };
      got[j.role] = j.groups;
      seen.add(f);
    }
  }
  if (!got.server || !got.agent) throw new Error(`no heap counts from ${pids.join(", ")}`);
  return got as Counts;
}

/** Per held stream, by group: what the held count has more than the idle one. */
async function perStream(root: string, target: string): Promise<Counts> {
  const mod = await import(path.join(root, "bench", "systems.ts")) as {
    allSystems: (o: { tls: boolean }) => System[];
  };
  const sys = mod.allSystems({ tls: false }).find((s) => s.id === "burrow-bun")!;
  const dir = fs.mkdtempSync(path.join(base, "run-"));
  const out = path.join(dir, "heap");
  fs.mkdirSync(out);
  Object.assign(process.env, { BUN_OPTIONS: `--preload=${hook}`, BURROW_HEAP_OUT: out });
  const r = await sys.start({
    target,
    dir,
    root,
    burrowLogLevel: "info",
    burrowPool: { ...BURROW_POOL },
  });
  try {
    const log = path.join(dir, "loadgen.log");
    if (!(await waitReady(r.endpoint, 30, log))) throw new Error(`${root}: not ready (${dir})`);
    await sleep(1000);
    const idle = await count(r.roots, out);
    let held: Counts | undefined;
    await hold(r.endpoint, [n], 64, 120, log, async (x) => {
      if (Number(x.open) === n) held = await count(r.roots, out);
    });
    if (!held) throw new Error(`${root}: ${n} streams were not all held (${log})`);
    const d = { server: {}, agent: {} } as Counts;
    for (const role of ["server", "agent"] as const) {
      const [i, h] = [idle[role], held[role]];
      for (const k of new Set([...Object.keys(i), ...Object.keys(h)])) {
        const c = (h[k]?.[0] ?? 0) - (i[k]?.[0] ?? 0);
        const b = (h[k]?.[1] ?? 0) - (i[k]?.[1] ?? 0);
        if (c !== 0 || b !== 0) d[role][k] = [c / n, b / n];
      }
    }
    return d;
  } finally {
    await r.stop();
  }
}

/** Bytes per stream of `g`: objects, and compiled code (bytecode blocks). */
function totals(g: Groups): string {
  let [objects, code] = [0, 0];
  for (const [k, [, b]] of Object.entries(g)) {
    if (k.startsWith("FunctionCodeBlock|")) code += b;
    else objects += b;
  }
  return `${objects.toFixed(0)} B of objects + ${code.toFixed(0)} B of compiled code`;
}

build();
const target = await startTarget(path.join(base, "target.log"));
try {
  const after = await perStream(
    path.resolve(values.after ?? path.join(import.meta.dirname, "..")),
    target.addr,
  );
  const before = values.before ? await perStream(path.resolve(values.before), target.addr) : null;
  for (const role of ["server", "agent"] as const) {
    const [a, b] = [after[role], before?.[role] ?? {}];
    console.log(`${role} per held stream: ${totals(a)}`);
    if (before) console.log(`  before: ${totals(b)}`);
    const rows = [...new Set([...Object.keys(a), ...Object.keys(b)])]
      .map((k) => [k, a[k] ?? [0, 0], b[k] ?? [0, 0]] as const)
      .sort((x, y) => Math.abs(y[1][1] - y[2][1]) - Math.abs(x[1][1] - x[2][1]));
    for (const [k, [c, bytes], [cb, bb]] of rows.slice(0, Number(values.top))) {
      const was = before ? ` ${cb.toFixed(2).padStart(6)} ${bb.toFixed(0).padStart(6)}` : "";
      console.log(
        `  ${c.toFixed(2).padStart(6)} ${bytes.toFixed(0).padStart(6)}${was}  ${
          k.replace(/\n/g, " ").slice(0, 160)
        }`,
      );
    }
  }
} finally {
  await stopAll();
  fs.rmSync(base, { recursive: true, force: true });
}
