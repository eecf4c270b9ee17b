/**
 * `npx tsx bench/tail.ts [--system burrow-bun] [--count 3000] [--rounds 3]`:
 * where the connect tail (scenario d's p99) comes from. Starts the system
 * as the bench does, runs the load generator's `lat` mode (sequential
 * connect + SOCKS5 + 1-byte echo) `--rounds` times, and prints each round's
 * p50 / p90 / p99 / max. With `BUN_JSC_logGC=1` in the environment a Bun
 * system's processes log each collection; their pauses are summed from the
 * logs (count, total, p99, max per process) next to the latency figures.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { build, runLoadgen, startTarget, waitReady } from "./loadgen.ts";
import { stopAll } from "./proc.ts";
import { allSystems, BURROW_POOL } from "./systems.ts";

const { values } = parseArgs({
  options: {
    system: { type: "string", default: "burrow-bun" },
    count: { type: "string", default: "3000" },
    rounds: { type: "string", default: "3" },
  },
});
const count = Math.max(100, Math.min(100_000, Number(values.count)));
const rounds = Math.max(1, Math.min(20, Number(values.rounds)));
const root = path.resolve(import.meta.dirname, "..");
const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-tail-"));
const sys = allSystems({ tls: values.system!.endsWith("-tls") }).find((s) =>
  s.id === values.system
);
if (!sys) throw new Error(`no system ${values.system}`);

/** Pauses (ms) of the collections a JSC GC log shows. */
function pauses(file: string): number[] {
  if (!fs.existsSync(file)) return [];
  return [...fs.readFileSync(file, "utf8").matchAll(/ p=([\d.]+)ms/g)].map((m) => Number(m[1]));
}

build();
const target = await startTarget(path.join(base, "target.log"));
try {
  const dir = path.join(base, sys.id);
  fs.mkdirSync(dir);
  const r = await sys.start({
    target: target.addr,
    dir,
    root,
    burrowLogLevel: (process.env.LL ?? "info") as never,
    burrowPool: { ...BURROW_POOL },
  });
  try {
    if (!(await waitReady(r.endpoint, 30, path.join(dir, "loadgen.log")))) {
      throw new Error("not ready");
    }
    for (let i = 0; i < rounds; i++) {
      const before = r.logs.map((l) => pauses(l).length);
      const { results } = await runLoadgen(
        "lat",
        r.endpoint,
        ["--count", String(count), "--warmup", "100"],
        120,
        path.join(dir, "loadgen.log"),
      );
      const x = results[0] ?? {};
      const gc = r.logs.map((l, k) => {
        const p = pauses(l).slice(before[k]).sort((a, b) => a - b);
        if (p.length === 0) return "";
        const sum = p.reduce((a, b) => a + b, 0);
        return `${path.basename(l)}: ${p.length} pauses, ${sum.toFixed(1)} ms, ` +
          `p99 ${p[Math.floor(p.length * 0.99)]!.toFixed(2)}, max ${p.at(-1)!.toFixed(2)}`;
      }).filter(Boolean);
      console.log(
        `round ${i + 1}: p50 ${x.p50_ms} p90 ${x.p90_ms} p99 ${x.p99_ms} max ${x.max_ms} ms` +
          (gc.length ? `; GC ${gc.join("; ")}` : ""),
      );
    }
  } finally {
    await r.stop();
  }
} finally {
  await stopAll();
  console.log("kept", base);
}
