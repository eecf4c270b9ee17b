/**
 * `npm run bench:fleet` — what one server pays per connected idle agent:
 * memory and CPU of a `burrow server` process (each runtime) with N agents
 * connected (pool min 1: one control and one idle pool connection each),
 * against the same server with none. The agents run in one load process
 * (Bun, in-process `Agent`s), so only the server is measured. Loopback only;
 * every process is stopped at the end.
 *
 *   npm run bench:fleet                      1000 agents, node deno bun, plain TCP
 *   npm run bench:fleet -- --agents 300 --runtimes bun --tls
 *
 * Agent mode (internal): `bun bench/fleet.ts --load PORT N TOKEN [FINGERPRINT]`.
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
    load: { type: "string" },
  },
  allowPositionals: true,
  strict: false,
});

if (values.load !== undefined) await load();
else await main();

/** Load mode: N agents named a0…a(N−1) against 127.0.0.1:PORT, until killed. */
async function load(): Promise<void> {
  const [port, n, token, fp] = process.argv.slice(process.argv.indexOf("--load") + 1);
  const { Agent } = await import("../src/agent.ts");
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
  const agents = [];
  for (let i = 0; i < Number(n); i++) {
    const a = new Agent(net, {
      server: { host: "127.0.0.1", port: Number(port) },
      name: `a${i}`,
      credential,
      rules,
      ...(fp ? { tls: { fingerprint: fp } } : {}),
    }, silent);
    a.start();
    agents.push(a);
    if (i % 50 === 49) await sleep(20); // not all handshakes at once
  }
  await Promise.all(agents.map((a) => a.connected()));
  console.log(`connected ${agents.length}`);
  await new Promise(() => {}); // until killed
}

async function health(port: number): Promise<{ agents: number }> {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  return await r.json() as { agents: number };
}

async function measure(rt: string, n: number, tls: boolean) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-fleet-"));
  const [agentsPort, http] = [await freePort(), await freePort()];
  const cfg = {
    listen: {
      agents: `127.0.0.1:${agentsPort}`,
      socks: "",
      clients: "",
      http: `127.0.0.1:${http}`,
    },
    tls: tls ? "auto" : "off",
    state_dir: path.join(dir, "state"),
    pool: { min: 1, max: 4 },
    limits: { pending_handshakes: 4096, pending_handshakes_per_source: 4096 },
    agents: Array.from({ length: n }, (_, i) => ({ name: `a${i}`, token: TOKEN })),
  };
  fs.writeFileSync(path.join(dir, "server.yaml"), JSON.stringify(cfg));
  const cmd: Record<string, [string, string[]]> = {
    node: [process.execPath, ["--import", "tsx", path.join(root, "runtimes/node/main.ts")]],
    deno: [bin("deno"), ["run", "-A", DENO_V8, path.join(root, "runtimes/deno/main.ts")]],
    bun: [bin("bun"), ["run", path.join(root, "runtimes/bun/main.ts")]],
  };
  const [c, pre] = cmd[rt]!;
  const log = path.join(dir, "server.log");
  const server = start(`server-${rt}`, c, [
    ...pre,
    "server",
    "-c",
    path.join(dir, "server.yaml"),
    "--log-level",
    "warn",
  ], {
    logFile: log,
    cwd: root,
    stdout: "log",
  });
  try {
    for (let i = 0; i < 200; i++) {
      try {
        await health(http);
        break;
      } catch {
        await sleep(50);
      }
    }
    await sleep(2000);
    const idle = memory([server.pid]);
    const fp = tls ? /fingerprint: (\S+)/.exec(fs.readFileSync(log, "utf8"))?.[1] : undefined;
    const agents = start("agents", bin("bun"), [
      path.join(here, "fleet.ts"),
      "--load",
      String(agentsPort),
      String(n),
      TOKEN,
      ...(fp ? [fp] : []),
    ], {
      logFile: path.join(dir, "agents.log"),
      cwd: root,
    });
    const t0 = Date.now();
    for (;;) {
      if ((await health(http)).agents >= n) break;
      if (Date.now() - t0 > 120_000) {
        throw new Error(
          `only ${(await health(http)).agents} of ${n} agents connected:\n${tail(log)}`,
        );
      }
      await sleep(200);
    }
    const connectS = (Date.now() - t0) / 1000;
    await sleep(6000); // pools filled, a heartbeat round done
    const full = memory([server.pid]);
    const c0 = cpuSeconds([server.pid]);
    const window = 20;
    await sleep(window * 1000);
    const cpu = (cpuSeconds([server.pid]) - c0) / window;
    await stop(agents);
    return {
      rt,
      connectS,
      idleRssMiB: idle.rssKiB / 1024,
      rssMiB: full.rssKiB / 1024,
      kibPerAgent: (full.rssKiB - idle.rssKiB) / n,
      cpuPct: cpu * 100,
    };
  } finally {
    await stop(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const n = Number(values.agents);
  const tls = values.tls === true;
  const rows = [];
  try {
    for (const rt of String(values.runtimes).split(",")) rows.push(await measure(rt, n, tls));
  } finally {
    await stopAll();
  }
  console.log(
    `\n${n} idle agents (pool min 1) on one server, ${
      tls ? "TLS" : "plain TCP"
    }, ${os.cpus().length} cores:\n`,
  );
  console.log(
    "| server | connect all (s) | RSS idle → with agents (MiB) | KiB per agent (RSS) | CPU, % of one core |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.rt} | ${r.connectS.toFixed(1)} | ${r.idleRssMiB.toFixed(0)} → ${
        r.rssMiB.toFixed(0)
      } | ` +
        `${r.kibPerAgent.toFixed(1)} | ${r.cpuPct.toFixed(1)} |`,
    );
  }
}
