/**
 * More than one server (issue "More than one machine"): `burrow agent
 * --server A --server B` keeps a session on each, and `burrow client
 * --server A --server B` goes on with B when A is gone. Two in-process
 * servers share one config; agent and client proxy are processes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseServerConfig } from "../src/config/mod.ts";
import { targetOf } from "../src/ip.ts";
import { Server } from "../src/server/mod.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  echoTarget,
  memoryLogger,
  runtime,
  runtimeNet,
  socks,
  type SocksResult,
  until,
} from "./helpers.ts";

const rt = runtime;

function config() {
  return parseServerConfig(
    JSON.stringify({
      listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "127.0.0.1:0", http: "" },
      tls: "off",
      heartbeat: { interval: "200ms", timeout: "1s" },
      pool: { min: 2, max: 32, wait: "2s", idle: "600ms" },
      agents: [{ name: "office", token: AGENT_TOKEN }],
      clients: [{ name: "alice", token: ALICE_TOKEN }],
      grants: [{ client: "alice", agent: "office", targets: ["127.0.0.1:*"] }],
    }),
    "(shared config)",
  );
}

/** `n` streams one after another through `via`, each echoing a line; how many worked. */
async function echoes(via: () => Promise<SocksResult>, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const s = await via();
    try {
      if (s.reply !== 0) continue;
      await s.conn.write(new TextEncoder().encode(`ping ${i}`));
      const back = await s.conn.read();
      if (back && new TextDecoder().decode(back) === `ping ${i}`) ok++;
    } finally {
      s.conn.close();
    }
  }
  return ok;
}

test(`${rt}: multi: an agent on two servers; one dies, streams through the other never fail`, async () => {
  const net = await runtimeNet();
  const a = new Server(net, config(), memoryLogger().log);
  const b = new Server(net, config(), memoryLogger().log);
  await a.start();
  await b.start();
  const echo = await echoTarget(net);
  const dir = mkdtempSync(join(tmpdir(), "burrow-multi-"));
  writeFileSync(join(dir, "agent.token"), AGENT_TOKEN, { mode: 0o600 });
  writeFileSync(join(dir, "alice.token"), ALICE_TOKEN, { mode: 0o600 });
  const agent = burrow(rt, [
    "agent",
    "--server",
    `127.0.0.1:${a.addrs.agents!.port}`,
    "--server",
    `127.0.0.1:${b.addrs.agents!.port}`,
    "--name",
    "office",
    "--token-file",
    join(dir, "agent.token"),
    "--plain",
    "--allow",
    "127.0.0.1:*",
  ]);
  const client = burrow(rt, [
    "client",
    "--server",
    `127.0.0.1:${a.addrs.clients!.port}`,
    "--server",
    `127.0.0.1:${b.addrs.clients!.port}`,
    "--name",
    "alice",
    "--token-file",
    join(dir, "alice.token"),
    "--plain",
    "--agent",
    "office",
    "--listen",
    "127.0.0.1:0",
  ]);
  let aStopped = false;
  try {
    const sessions = () =>
      [a, b].filter((s) => (s.agents.sessions.get("office")?.idle ?? 0) >= 2).length;
    assert.ok(
      await until(() => sessions() === 2, 20_000),
      `a session and a pool on each server:\n${agent.output()}`,
    );
    // The same config gives the same ids on both servers.
    const idA = a.agents.sessions.get("office")!.who.agentId;
    assert.equal(b.agents.sessions.get("office")!.who.agentId, idA);
    assert.equal(a.router.clientId("alice"), b.router.clientId("alice"));
    const line = await client.waitFor(/client proxy listening.*socks=127\.0\.0\.1:\d+/);
    const proxyPort = Number(/socks=127\.0\.0\.1:(\d+)/.exec(line)![1]);
    const target = targetOf("127.0.0.1", echo.addr.port);
    const viaProxy = () => socks(net, { host: "127.0.0.1", port: proxyPort }, "", "", target);
    const viaB = () => socks(net, b.addrs.socks!, "alice", ALICE_TOKEN, target);
    assert.equal(await echoes(viaProxy, 5), 5, "the client proxy uses server A");
    await a.stop();
    aStopped = true;
    // Server A is gone: B's own streams never notice; the client proxy moves to B.
    assert.equal(await echoes(viaB, 20), 20);
    assert.equal(await echoes(viaProxy, 20), 20);
    assert.match(client.output(), /switched server/);
    assert.ok(b.agents.sessions.has("office"), "the agent's session on B went on");
  } finally {
    await client.stop();
    await agent.stop();
    if (!aStopped) await a.stop();
    await b.stop();
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
