/**
 * `npm run bench:hop` — what the extra hop of a fleet costs (README "A
 * fleet of servers", SPEC.md §2.6): two servers of one fleet in this
 * process, one agent with a session on the first only; the same CONNECTs
 * and bytes through the first (direct) and through the second (forwarded
 * over the peer link to the first). Connect: SOCKS5 CONNECT to the echo
 * target's first echoed byte, one at a time (p50, p90). Throughput: MiB/s
 * of bytes echoed both ways through one stream, and the process's CPU
 * meanwhile (% of one core; near 100 the figure is the CPU per byte of the
 * one thread everything shares). Loopback, TLS on the agent and peer links,
 * the runtime this runs on (tsx: Node).
 *
 *   npm run bench:hop                      500 connects, 256 MiB
 *   npm run bench:hop -- --connects 2000 --mib 1024
 */
import { parseArgs } from "node:util";
import { targetOf } from "../src/ip.ts";
import type { Net } from "../src/net.ts";
import type { Server } from "../src/server/mod.ts";
import { fleetAgent, startFleet } from "../test/fleet.ts";
import { ALICE_TOKEN, echoTarget, runtimeNet, socks, until } from "../test/helpers.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({
  options: {
    connects: { type: "string", default: "500" },
    mib: { type: "string", default: "256" },
  },
  strict: false,
});

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
}

/** A stream through `via` to the echo target on `port`, as alice@office. */
async function open(net: Net, via: Server, port: number) {
  const s = await socks(
    net,
    via.addrs.socks!,
    "alice@office",
    ALICE_TOKEN,
    targetOf("127.0.0.1", port),
  );
  if (s.reply !== 0) throw new Error(`CONNECT refused: ${s.reply}`);
  return s;
}

async function connects(net: Net, via: Server, port: number, n: number): Promise<number[]> {
  const ms: number[] = [];
  const one = Uint8Array.of(1);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const s = await open(net, via, port);
    await s.conn.write(one);
    if (s.rest.length === 0) await s.conn.read();
    ms.push(performance.now() - t0);
    s.conn.close();
  }
  return ms;
}

/** MiB/s echoed through one stream, and this process's CPU meanwhile (% of one core). */
async function throughput(
  net: Net,
  via: Server,
  port: number,
  mib: number,
): Promise<{ mibs: number; cpu: number }> {
  const s = await open(net, via, port);
  const chunk = new Uint8Array(64 * 1024);
  const total = mib * 1024 * 1024;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const writer = (async () => {
    for (let sent = 0; sent < total; sent += chunk.length) await s.conn.write(chunk);
    await s.conn.end();
  })();
  let got = s.rest.length;
  for (let b = await s.conn.read(); b !== null; b = await s.conn.read()) got += b.length;
  await writer;
  const secs = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  s.conn.close();
  if (got !== total) throw new Error(`echoed ${got} of ${total} bytes`);
  return { mibs: mib / secs, cpu: (used.user + used.system) / 1e4 / secs };
}

const net = await runtimeNet();
const echo = await echoTarget(net);
const f = await startFleet(net, 2);
const [first, second] = f.members.map((m) => m.server) as [Server, Server];
const agent = fleetAgent(net, "office", [first], [f.pins[0]!], 1);
try {
  if (!await until(() => first.agents.group("office").some((s) => s.announced), 10_000)) {
    throw new Error("the agent did not connect");
  }
  const n = Number(values.connects);
  const mib = Number(values.mib);
  await connects(net, second, echo.addr.port, 20); // the peer link made, warm
  await connects(net, first, echo.addr.port, 20);
  const rows = [];
  for (const [name, via] of [["direct", first], ["forwarded", second]] as const) {
    const ms = await connects(net, via, echo.addr.port, n);
    const { mibs, cpu } = await throughput(net, via, echo.addr.port, mib);
    rows.push({ name, p50: median(ms)!, p90: pct(ms, 0.9), mibs, cpu });
  }
  console.log(`\nextra hop, ${net.runtime}, ${n} connects, ${mib} MiB echoed both ways:\n`);
  console.log(
    "| path | connect p50 (ms) | connect p90 (ms) | throughput (MiB/s) | CPU (% of a core) |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const r of rows) {
    const cells = [r.p50.toFixed(2), r.p90.toFixed(2), r.mibs.toFixed(0), r.cpu.toFixed(0)];
    console.log(`| ${r.name} | ${cells.join(" | ")} |`);
  }
} finally {
  await agent.fleet.stop();
  await f.close();
  echo.close();
}
