/**
 * `npx tsx bench/conn_cpu.ts --trees DIR,DIR [--runtime node] [--rounds 3] [--seconds 3]`:
 * CPU µs per connection of the server and of the agent (utime + stime from
 * /proc) under the connection-rate load (32 workers: connect + SOCKS5 +
 * 64-byte echo), each tree's plain `burrow-{rt}` in turn, alternating
 * rounds. CPU per connection moves less with a busy machine than
 * connections per second do.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { build, runLoadgen, startTarget, waitReady } from "./loadgen.ts";
import { cpuSeconds, stopAll } from "./proc.ts";
import { median } from "./stats.ts";
import { BURROW_POOL, type Ctx, type System } from "./systems.ts";

const { values } = parseArgs({
  options: {
    trees: { type: "string" },
    runtime: { type: "string", default: "node" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
  },
});
const trees = (values.trees ?? path.join(import.meta.dirname, "..")).split(",").map((t) =>
  path.resolve(t)
);
const rounds = Math.max(1, Math.min(20, Number(values.rounds)));
const secs = Math.max(1, Math.min(20, Number(values.seconds)));
const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-conncpu-"));

async function systemOf(root: string, id: string): Promise<System> {
  const mod = await import(
    path.join(
      process.env.CONN_OWN ? path.join(import.meta.dirname, "..") : root,
      "bench",
      "systems.ts",
    )
  ) as {
    allSystems: (o: { tls: boolean }) => System[];
  };
  const sys = mod.allSystems({ tls: false }).find((s) => s.id === id);
  if (!sys) throw new Error(`${root}: no system ${id}`);
  return sys;
}

/** User and system CPU seconds of one process (its threads included). */
function userSys(pid: number): [number, number] {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return [Number(f[11]) / 100, Number(f[12]) / 100];
}

build();
const target = await startTarget(path.join(base, "target.log"));
const got = new Map<
  string,
  { srv: number[]; agt: number[]; rate: number[]; usr: number[]; sys: number[] }
>();
try {
  const id = `burrow-${values.runtime}`;
  let seq = 0;
  const runs = [];
  for (const root of trees) {
    const sys = await systemOf(root, id);
    const dir = path.join(base, `t${++seq}`);
    fs.mkdirSync(dir);
    const ctx: Ctx = {
      target: target.addr,
      dir,
      root,
      burrowLogLevel: "info",
      burrowPool: { ...BURROW_POOL },
    };
    const r = await sys.start(ctx);
    if (!(await waitReady(r.endpoint, 30, path.join(dir, "loadgen.log")))) {
      throw new Error(`${root}: not ready (see ${dir})`);
    }
    runs.push({ root, r, log: path.join(dir, "loadgen.log") });
    got.set(root, { srv: [], agt: [], rate: [], usr: [], sys: [] });
    await runLoadgen(
      "rate",
      r.endpoint,
      ["--seconds", "2", "--workers", "32"],
      60,
      path.join(dir, "loadgen.log"),
    );
  }
  for (let i = 0; i < rounds; i++) {
    for (const { root, r, log } of i % 2 ? [...runs].reverse() : runs) {
      const st = process.env.CONN_STRACE && i === rounds - 1
        ? [0, 1].map((k) =>
          spawn("strace", ["-c", "-f", "-o", `${log}.strace${k}`, "-p", String(r.roots[k])], {
            stdio: "ignore",
          })
        )
        : process.env.CONN_PERF && i === rounds - 1
        ? [
          spawn("perf", [
            "record",
            "-F",
            "2000",
            "-g",
            "-o",
            `${process.env.CONN_PERF}-${path.basename(root)}.data`,
            "-p",
            String(r.roots[0]),
          ], { stdio: "ignore" }),
        ]
        : [];
      if (st.length) await new Promise((res) => setTimeout(res, 500));
      const [s0, a0] = [cpuSeconds([r.roots[0]!]), cpuSeconds([r.roots[1]!])];
      const [u0, k0] = userSys(r.roots[0]!);
      const { results } = await runLoadgen(
        "rate",
        r.endpoint,
        ["--seconds", String(secs), "--workers", "32"],
        secs + 60,
        log,
      );
      const [s1, a1] = [cpuSeconds([r.roots[0]!]), cpuSeconds([r.roots[1]!])];
      const [u1, k1] = userSys(r.roots[0]!);
      const x = results[0];
      for (const [k, c] of st.entries()) {
        const done = new Promise((res) => c.on("exit", res));
        c.kill("SIGINT");
        await done;
        if (process.env.CONN_PERF) continue;
        console.log(
          `${root} ${k ? "agent" : "server"} strace, ${x?.ok} conns:\n` +
            fs.readFileSync(`${log}.strace${k}`, "utf8"),
        );
      }
      const conns = Number(x?.ok);
      const g = got.get(root)!;
      g.srv.push(((s1 - s0) * 1e6) / conns);
      g.agt.push(((a1 - a0) * 1e6) / conns);
      g.rate.push(Number(x?.conn_s));
      g.usr.push(((u1 - u0) * 1e6) / conns);
      g.sys.push(((k1 - k0) * 1e6) / conns);
    }
  }
  for (const [root, g] of got) {
    console.log(
      `${values.runtime} ${root}: server ${median(g.srv)!.toFixed(0)} µs/conn (${
        g.srv.map((v) => v.toFixed(0)).join(" ")
      }), agent ${median(g.agt)!.toFixed(0)} µs/conn (${
        g.agt.map((v) => v.toFixed(0)).join(" ")
      }), conn/s ${median(g.rate)!.toFixed(0)}; server user ${median(g.usr)!.toFixed(0)} sys ${
        median(g.sys)!.toFixed(0)
      }`,
    );
  }
} finally {
  await stopAll();
  if (!process.env.CONN_KEEP) fs.rmSync(base, { recursive: true, force: true });
  else console.log(`kept ${base}`);
}
