/**
 * `npm run bench:fleet` — what one server pays per connected idle agent:
 * memory and CPU of a `burrow server` process (each runtime) with N agents
 * connected (pool min 1: one control and one idle pool connection each),
 * against the same server with none. The agents run in one load process
 * (Bun, in-process `Agent`s), so only the server is measured. Loopback only;
 * every process is stopped at the end.
 *
 * With `--servers S` (a fleet, README "A fleet of servers"), S server
 * processes, and each agent keeps sessions with `--per-agent K` of them
 * (servers_per_agent, rendezvous hashing): the table has a row per server,
 * with the sessions it holds and its memory and CPU per session.
 *
 *   npm run bench:fleet                      1000 agents, node deno bun, plain TCP
 *   npm run bench:fleet -- --agents 300 --runtimes bun --tls
 *   npm run bench:fleet -- --servers 3 --per-agent 2 --runtimes bun
 *
 * Agent mode (internal): `bun bench/fleet.ts --load PORT[,PORT…] N TOKEN K [FINGERPRINT,…]`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DENO_V8 } from "../runtimes/deno/flags.ts";
import { cpuSeconds, freePort, memory, sleep, start, stop, stopAll, tail } from "./proc.ts";

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, "..");
const bin = (n: string) => path.join(root, "node_modules", ".bin", n);
const TOKEN = "fleet-agent-token-0123456789";

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    runtimes: { type: "string", default: "node,deno,bun" },
    tls: { type: "boolean", default: false },
    servers: { type: "string", default: "1" },
    "per-agent": { type: "string", default: "2" },
    load: { type: "string" },
  },
  allowPositionals: true,
  strict: false,
});

/** Load mode: N agents named a0…a(N−1), each on K of the servers at 127.0.0.1:PORTS, until killed. */
async function load(): Promise<void> {
  const [ports, n, token, k, fps] = process.argv.slice(process.argv.indexOf("--load") + 1);
  const { AgentFleet } = await import("../src/agent_fleet.ts");
  const { tokenCredential } = await import("../src/auth.ts");
  const { parseRule } = await import("../src/policy.ts");
  const { silent } = await import("../src/log.ts");
  // A computed specifier: tsc (without Bun's types) does not follow it.
  const bunEntry = "../runtimes/bun/mod.ts";
  const { net } = await import(bunEntry) as typeof import("../src/net.ts") & {
    net: import("../src/net.ts").Net;
  };
  const credential = tokenCredential(token!);
  const rules = parseRule("127.0.0.1:*");
  const servers = ports!.split(",").map((p) => ({ host: "127.0.0.1", port: Number(p) }));
  const tls = fps ? { tls: { fingerprint: fps.split(",") } } : {};
  const fleets = [];
  for (let i = 0; i < Number(n); i++) {
    const opts = servers.map((server) => ({ server, name: `a${i}`, credential, rules, ...tls }));
    const f = new AgentFleet(net, opts, Math.min(Number(k), servers.length), silent);
    f.start();
    fleets.push(f);
    if (i % 50 === 49) await sleep(20); // not all handshakes at once
  }
  console.log(`started ${fleets.length}`);
  await new Promise(() => {}); // until killed
}

async function health(port: number): Promise<{ agents: number }> {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  return await r.json() as { agents: number };
}

interface Row {
  rt: string;
  server: number;
  sessions: number;
  connectS: number;
  idleRssMiB: number;
  rssMiB: number;
  kibPerAgent: number;
  cpuPct: number;
}

const CMD: Record<string, [string, string[]]> = {
  node: [process.execPath, ["--import", "tsx", path.join(root, "runtimes/node/main.ts")]],
  deno: [bin("deno"), ["run", "-A", DENO_V8, path.join(root, "runtimes/deno/main.ts")]],
  bun: [bin("bun"), ["run", path.join(root, "runtimes/bun/main.ts")]],
};

/** One `burrow server` of runtime `rt` with agents a0…a(n−1): its ports, process and log. */
async function server(rt: string, dir: string, i: number, n: number, tls: boolean) {
  const [agentsPort, http] = [await freePort(), await freePort()];
  const cfg = {
    listen: {
      agents: `127.0.0.1:${agentsPort}`,
      socks: "",
      clients: "",
      http: `127.0.0.1:${http}`,
    },
    tls: tls ? "auto" : "off",
    state_dir: path.join(dir, `state${i}`),
    pool: { min: 1, max: 4 },
    limits: { pending_handshakes: 4096, pending_handshakes_per_source: 4096 },
    agents: Array.from({ length: n }, (_, j) => ({ name: `a${j}`, token: TOKEN })),
  };
  fs.writeFileSync(path.join(dir, `server${i}.yaml`), JSON.stringify(cfg));
  const [c, pre] = CMD[rt]!;
  const log = path.join(dir, `server${i}.log`);
  const args = [...pre, "server", "-c", path.join(dir, `server${i}.yaml`), "--log-level", "warn"];
  const proc = start(`server-${rt}-${i}`, c, args, { logFile: log, cwd: root, stdout: "log" });
  for (let t = 0; t < 200; t++) {
    try {
      await health(http);
      break;
    } catch {
      await sleep(50);
    }
  }
  return { agentsPort, http, proc, log };
}

async function measure(rt: string, n: number, tls: boolean, count: number, k: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-fleet-"));
  const servers: Array<Awaited<ReturnType<typeof server>>> = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await server(rt, dir, i, n, tls));
    await sleep(2000);
    const idle = servers.map((s) => memory([s.proc.pid]));
    const fps = tls
      ? servers.map((s) => /fingerprint: (\S+)/.exec(fs.readFileSync(s.log, "utf8"))?.[1] ?? "")
      : [];
    const agents = start("agents", bin("bun"), [
      path.join(here, "fleet.ts"),
      "--load",
      servers.map((s) => s.agentsPort).join(","),
      String(n),
      TOKEN,
      String(k),
      ...(tls ? [fps.join(",")] : []),
    ], { logFile: path.join(dir, "agents.log"), cwd: root });
    const want = n * Math.min(k, count);
    const held = async () => {
      const h = [];
      for (const s of servers) h.push((await health(s.http)).agents);
      return h;
    };
    const t0 = Date.now();
    for (;;) {
      const h = await held();
      if (h.reduce((a, b) => a + b, 0) >= want) break;
      if (Date.now() - t0 > 180_000) {
        throw new Error(`only ${h.join("+")} of ${want} sessions:\n${tail(servers[0]!.log)}`);
      }
      await sleep(200);
    }
    const connectS = (Date.now() - t0) / 1000;
    await sleep(6000); // pools filled, a heartbeat round done
    const sessions = await held();
    const full = servers.map((s) => memory([s.proc.pid]));
    const c0 = servers.map((s) => cpuSeconds([s.proc.pid]));
    const window = 20;
    await sleep(window * 1000);
    const rows: Row[] = servers.map((s, i) => ({
      rt,
      server: i + 1,
      sessions: sessions[i]!,
      connectS,
      idleRssMiB: idle[i]!.rssKiB / 1024,
      rssMiB: full[i]!.rssKiB / 1024,
      kibPerAgent: (full[i]!.rssKiB - idle[i]!.rssKiB) / Math.max(1, sessions[i]!),
      cpuPct: (cpuSeconds([s.proc.pid]) - c0[i]!) / window * 100,
    }));
    await stop(agents);
    return rows;
  } finally {
    for (const s of servers) await stop(s.proc);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const n = Number(values.agents);
  const tls = values.tls === true;
  const count = Number(values.servers);
  const k = Number(values["per-agent"]);
  const rows: Row[] = [];
  try {
    for (const rt of String(values.runtimes).split(",")) {
      rows.push(...await measure(rt, n, tls, count, k));
    }
  } finally {
    await stopAll();
  }
  const fleet = count > 1 ? `, ${count} servers, servers_per_agent ${k}` : " on one server";
  console.log(
    `\n${n} idle agents (pool min 1)${fleet}, ${
      tls ? "TLS" : "plain TCP"
    }, ${os.cpus().length} cores:\n`,
  );
  console.log(
    "| server | sessions | connect all (s) | RSS idle → with agents (MiB) | KiB per session (RSS) | CPU, % of one core |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.rt}${count > 1 ? ` #${r.server}` : ""} | ${r.sessions} | ${r.connectS.toFixed(1)} | ` +
        `${r.idleRssMiB.toFixed(0)} → ${r.rssMiB.toFixed(0)} | ${r.kibPerAgent.toFixed(1)} | ` +
        `${r.cpuPct.toFixed(1)} |`,
    );
  }
}

if (values.load !== undefined) await load();
else await main();
