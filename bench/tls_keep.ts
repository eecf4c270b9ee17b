/**
 * CPU per MiB of burrow's processes over TLS (issue 26, parity): starts a
 * system of bench/systems.ts (e.g. burrow-node-tls, burrow-bun-tls) from one
 * or more trees, pushes one-stream up/down and 16-stream down through it, and
 * prints MiB/s and the CPU µs per MiB of the server and the agent (utime +
 * stime from /proc). Trees and systems alternate, round by round.
 *
 *   npx tsx bench/tls_cpu.ts --system burrow-node-tls --system burrow-bun-tls \
 *     [--root /tmp/old --root .] [--rounds 3] [--seconds 2] [--only up,down,par]
 *     [--perf DIR | --strace DIR]
 *
 * `--root`: another checkout (e.g. `git archive` of the tree before, with a
 * node_modules symlink). `--perf DIR`: `perf record -g` of each process
 * during each scenario (PERF_F samples/s, default 499; start with
 * NODE_OPTIONS=--perf-basic-prof for JavaScript frames); `--strace DIR`:
 * its reads and writes. With BENCH_NODE_FLAGS=--trace-gc, the Node
 * processes' mark-compacts are counted too. Not part of `npm run bench`: a
 * tool for one change.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { build, runLoadgen, startTarget, waitReady } from "./loadgen.ts";
import { spawn } from "node:child_process";
import { cpuSeconds, stop, stopAll } from "./proc.ts";
import { allSystems, BURROW_POOL } from "./systems.ts";

const args = process.argv.slice(2);
const many = (flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
const one = (flag: string, def: string) => many(flag)[0] ?? def;
const roots = many("--root").map((r) => path.resolve(r));
if (roots.length === 0) {
  roots.push(path.resolve(path.dirname(new URL(import.meta.url).pathname), ".."));
}
const systems = many("--system");
const rounds = Number(one("--rounds", "3"));
const secs = one("--seconds", "2");
const scenarios = one("--only", "up,down,par").split(",");

build();
for (const d of [...many("--perf"), ...many("--strace")]) fs.mkdirSync(d, { recursive: true });
const base = fs.mkdtempSync(path.join(os.tmpdir(), "tls-cpu-"));
const target = await startTarget(path.join(base, "target.log"));
const rows: string[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const root of roots) {
      for (const id of systems) {
        const sys = allSystems({ tls: true }).find((s) => s.id === id);
        if (!sys) throw new Error(`no system ${id}`);
        const dir = fs.mkdtempSync(path.join(base, `${id}-`));
        const r = await sys.start({
          target: target.addr,
          dir,
          root,
          burrowLogLevel: "info",
          burrowPool: BURROW_POOL,
        });
        try {
          const log = path.join(dir, "loadgen.log");
          if (!(await waitReady(r.endpoint, 15, log))) throw new Error(`${id} not ready`);
          // warm-up (JIT)
          await runLoadgen("down", r.endpoint, ["--seconds", "1"], 30, log);
          for (const sc of scenarios) {
            const a = ["--seconds", secs, ...(sc === "par" ? ["--streams", "16"] : [])];
            const out0 = (i: number, ext: string) =>
              path.join(
                many("--perf")[0] ?? many("--strace")[0]!,
                `${id}-${sc}-${i ? "agent" : "server"}.${ext}`,
              );
            const perf = many("--perf").length
              ? r.roots.map((p, i) =>
                spawn("perf", [
                  "record",
                  "-F",
                  process.env.PERF_F ?? "499",
                  "-g",
                  "-p",
                  String(p),
                  "-o",
                  out0(i, "data"),
                ], { stdio: "ignore" })
              )
              : many("--strace").length
              ? r.roots.map((p, i) =>
                spawn("strace", [
                  "-f",
                  "-p",
                  String(p),
                  "-e",
                  "trace=read,write,writev,readv,recvfrom,sendto,sendmsg,recvmsg",
                  "-e",
                  "abbrev=all",
                  "-s",
                  "0",
                  "-o",
                  out0(i, "strace"),
                ], { stdio: "ignore" })
              )
              : [];
            const c0 = r.roots.map((p) => cpuSeconds([p]));
            const out = await runLoadgen(sc, r.endpoint, a, Number(secs) + 40, log);
            const c1 = r.roots.map((p) => cpuSeconds([p]));
            for (const p of perf) {
              if (p.exitCode !== null) continue;
              p.kill("SIGINT");
              await new Promise((res) => p.once("exit", res));
            }
            const res = out.results[0];
            const mib = Number(res?.bytes ?? 0) / 1048576;
            const per = c1.map((c, i) => Math.round((1e6 * (c - c0[i]!)) / mib));
            const line = `${path.basename(root)} ${id} ${sc} ${res?.mib_s} MiB/s  ` +
              `server ${per[0]} agent ${per[1]} µs/MiB  total ${per[0]! + per[1]!}`;
            console.log(line);
            rows.push(line);
          }
        } finally {
          await r.stop();
          // With BENCH_NODE_FLAGS=--trace-gc (bench/systems.ts): each process's full collections.
          const marks = r.logs.map((f) =>
            (fs.readFileSync(f, "utf8").match(/Mark-Compact/g) ?? []).length
          );
          if (marks.some((n) => n > 0)) {
            console.log(`${path.basename(root)} ${id} mark-compacts ${marks}`);
          }
        }
      }
    }
  }
} finally {
  await stop(target.proc);
  await stopAll();
}
