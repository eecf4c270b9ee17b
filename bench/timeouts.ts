/**
 * `npm run bench:timeouts` — how soon each timeout acts, measured against
 * its setting (the tests only check that it acts: no test asserts a wall
 * time). In process on 127.0.0.1, on the runtime that runs this file:
 *
 * - handshake_timeout 400ms: a half-open connection (sends nothing) and a
 *   slow loris (a byte every 100 ms) on the SOCKS5 port, closed by the server;
 * - pool open_timeout 300ms: a CONNECT whose agent never answers OPEN (its
 *   dial hangs), until the SOCKS5 reply;
 * - heartbeat (interval 200ms, timeout 1s): an agent that logs in and never
 *   answers PING, until the server drops its session;
 * - a TLS dial (timeoutMs 500) to a server that never answers the handshake,
 *   until it fails with ETIMEDOUT.
 *
 * Prints the setting, the median and the slowest of `--rounds N` (default 5).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { tokenCredential } from "../src/auth.ts";
import type { Conn } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";
import { login, Wire } from "../src/wire.ts";
import { AGENT_TOKEN, readAll, socksTo, testAgent, tunnel, until } from "../test/helpers.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" } } });
const rounds = Math.max(1, Math.min(100, Number(values.rounds)));

/** Milliseconds `f` takes, `rounds` times; or what it returns, when it measures itself. */
async function times(f: () => Promise<number | void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const own = await f();
    out.push(typeof own === "number" ? own : performance.now() - t0);
  }
  return out;
}

function line(what: string, setting: number, ms: number[]): void {
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `${what}: setting ${setting} ms, median ${median.toFixed(0)} ms, slowest ${
      sorted.at(-1)!.toFixed(0)
    } ms`,
  );
}

async function handshake(): Promise<void> {
  const t = await tunnel({ config: { handshake_timeout: "400ms" } });
  try {
    line(
      "handshake_timeout, half-open",
      400,
      await times(async () => void await readAll(await t.net.dial(t.socks)).catch(() => {})),
    );
    line(
      "handshake_timeout, slow loris",
      400,
      await times(async () => {
        const c = await t.net.dial(t.socks);
        const drip = setInterval(() => c.write(Uint8Array.of(5)).catch(() => {}), 100);
        await readAll(c).catch(() => {});
        clearInterval(drip);
        c.close();
      }),
    );
  } finally {
    await t.close();
  }
}

async function openTimeout(): Promise<void> {
  const t = await tunnel({ config: { pool: { open_timeout: "300ms" } }, startAgent: false });
  const stalled: Array<(e: Error) => void> = [];
  const stalling = {
    ...t.net,
    dial: (o: Parameters<typeof t.net.dial>[0]) =>
      o.port === 1 ? new Promise<Conn>((_, reject) => stalled.push(reject)) : t.net.dial(o),
  };
  const { agent } = testAgent(stalling, t.server.addrs.agents!, "office");
  agent.start();
  try {
    await agent.connected();
    line(
      "pool open_timeout",
      300,
      await times(async () => (await socksTo(t, 1)).conn.close()),
    );
  } finally {
    for (const r of stalled) r(new Error("bench over"));
    await agent.stop();
    await t.close();
  }
}

async function heartbeat(): Promise<void> {
  const t = await tunnel({ startAgent: false });
  try {
    line(
      "heartbeat timeout (a silent agent dropped)",
      1000,
      await times(async () => {
        const w = new Wire(await t.net.dial(t.server.addrs.agents!));
        await login(w, "agent", "office", tokenCredential(AGENT_TOKEN), "bench", true);
        await w.expect("WELCOME");
        await w.send({ type: "ANNOUNCE", rules: parseRule("*") });
        await until(() => t.server.health().agents === 1);
        const t0 = performance.now(); // from its last word
        if (!await until(() => t.server.health().agents === 0, 10_000)) {
          throw new Error("the silent agent was not dropped within 10 s");
        }
        w.conn.close();
        return performance.now() - t0;
      }),
    );
  } finally {
    await t.close();
  }
}

async function tlsDial(): Promise<void> {
  const t = await tunnel({ startAgent: false });
  const pin = await fingerprint((await generateSelfSigned()).cert);
  const l = await t.net.listen({ host: "127.0.0.1", port: 0 }); // plain TCP: no ServerHello
  const accepted: Conn[] = [];
  void (async () => {
    for await (const c of l) accepted.push(c);
  })();
  try {
    line(
      "TLS dial to a silent server",
      500,
      await times(() =>
        t.net.dial({ ...l.addr, tls: { fingerprint: pin }, timeoutMs: 500 }).then(
          (c) => c.close(),
          () => {},
        )
      ),
    );
  } finally {
    l.close();
    for (const c of accepted) c.close();
    await t.close();
  }
}

console.log(`${rounds} rounds on ${runtimeName()}:`);
await handshake();
await openTimeout();
await heartbeat();
await tlsDial();

function runtimeName(): string {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  return g.Deno ? "deno" : g.Bun ? "bun" : `node ${process.versions.node}`;
}
