/**
 * An agent given three servers keeps sessions with two of them
 * (`servers_per_agent`, src/agent_fleet.ts): the first two in its
 * rendezvous order; when one fails the third stands in, and it is left
 * again once the first is back.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fmt } from "../src/addr.ts";
import { AgentFleet, expandServers, serversPerAgent } from "../src/agent_fleet.ts";
import { tokenCredential } from "../src/auth.ts";
import { parseAgentConfig, parseServer, parseServerConfig } from "../src/config/mod.ts";
import type { Net } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import { rendezvousOrder } from "../src/rendezvous.ts";
import { Server } from "../src/server/mod.ts";
import { AGENT_TOKEN, burrow, memoryLogger, runtime, runtimeNet, until } from "./helpers.ts";

const rt = runtime;

function config(agentPort = 0) {
  return parseServerConfig(
    JSON.stringify({
      listen: { agents: `127.0.0.1:${agentPort}`, socks: "", clients: "", http: "" },
      tls: "off",
      heartbeat: { interval: "200ms", timeout: "1s" },
      pool: { min: 1, max: 8, wait: "2s", idle: "600ms" },
      agents: [{ name: "office", token: AGENT_TOKEN }],
      clients: [],
      grants: [],
    }),
    "(shared config)",
  );
}

async function servers(net: Net, n: number) {
  const all: Array<{ server: Server; lines: string[] }> = [];
  for (let i = 0; i < n; i++) {
    const { log, lines } = memoryLogger();
    const server = new Server(net, config(), log);
    await server.start();
    all.push({ server, lines });
  }
  return all;
}

const hasSession = (s: Server) => s.agents.sessions.has("office");

test(`${rt}: fleet: burrow agent given 3 servers keeps sessions with exactly 2, its first 2`, async () => {
  const net = await runtimeNet();
  const three = await servers(net, 3);
  const dir = mkdtempSync(join(tmpdir(), "burrow-fleet-"));
  writeFileSync(join(dir, "agent.token"), AGENT_TOKEN, { mode: 0o600 });
  const addrs = three.map((s) => fmt(s.server.addrs.agents));
  const agent = burrow(rt, [
    "agent",
    ...addrs.flatMap((a) => ["--server", a]),
    "--name",
    "office",
    "--token-file",
    join(dir, "agent.token"),
    "--plain",
    "--allow",
    "127.0.0.1:*",
  ]);
  try {
    const order = rendezvousOrder("office", addrs);
    const [first, second, third] = order.map((i) => three[i]!);
    assert.ok(
      await until(() => hasSession(first!.server) && hasSession(second!.server), 20_000),
      `sessions with the first two in order:\n${agent.output()}`,
    );
    await agent.waitFor(/servers ranked.*servers_per_agent=2/);
    assert.match(agent.output(), new RegExp(`order=${order.map((i) => addrs[i]).join(",")}`));
    // The third was never dialed: no session, not even an attempt in its log.
    assert.equal(hasSession(third!.server), false);
    assert.equal(third!.lines.filter((l) => l.includes("agent connected")).length, 0);
    assert.equal(three.filter((s) => hasSession(s.server)).length, 2);
  } finally {
    await agent.stop();
    for (const s of three) await s.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${rt}: fleet: when a chosen server goes, the next stands in; when it is back, the stand-in is left`, async () => {
  const net = await runtimeNet();
  const three = await servers(net, 3);
  const addrs = three.map((s) => s.server.addrs.agents!);
  const { log, lines } = memoryLogger();
  const fleet = new AgentFleet(
    net,
    addrs.map((server) => ({
      server,
      name: "office",
      credential: tokenCredential(AGENT_TOKEN),
      rules: parseRule("127.0.0.1:*"),
      backoffBaseMs: 50,
      backoffMaxMs: 200,
    })),
    2,
    log,
  );
  const order = rendezvousOrder("office", addrs.map((a) => fmt(a)));
  const [first, second, third] = order.map((i) => three[i]!.server);
  let restarted: Server | null = null;
  fleet.start();
  try {
    assert.ok(await until(() => hasSession(first!) && hasSession(second!), 10_000));
    assert.equal(hasSession(third!), false);
    // The first goes: the third stands in, the second stays.
    const port = first!.addrs.agents!.port;
    await first!.stop();
    assert.ok(
      await until(() => hasSession(third!), 10_000),
      `the third stands in:\n${lines.join("\n")}`,
    );
    assert.ok(hasSession(second!));
    // The first is back on its port: the fleet returns to it and leaves the third.
    restarted = new Server(net, config(port), memoryLogger().log);
    await restarted.start();
    assert.ok(
      await until(() => hasSession(restarted!) && !hasSession(third!), 10_000),
      `back to the first:\n${lines.join("\n")}`,
    );
    assert.ok(hasSession(second!));
    assert.match(lines.join("\n"), /leaving a stand-in server/);
    assert.equal(fleet.connected, 2);
  } finally {
    await fleet.stop();
    for (const s of [second, third, restarted]) await s?.stop();
  }
});

test(`${rt}: fleet: one host name given alone is each of its addresses, verified for the name`, async () => {
  const net = await runtimeNet();
  const dns: Net = {
    ...net,
    runtime: net.runtime,
    lookup: () => Promise.resolve(["10.0.0.2", "10.0.0.1", "10.0.0.2"]),
  };
  const one = parseServer("burrow.example.com:7000");
  const got = await expandServers(dns, [one], { fingerprint: "AB" });
  assert.deepEqual(got.map((s) => s.server.addr), [
    { host: "10.0.0.1", port: 7000 },
    { host: "10.0.0.2", port: 7000 },
  ]);
  assert.ok(got.every((s) => s.tls?.serverName === "burrow.example.com"));
  // A list, an IP literal, or a name with one address: as given.
  const two = [one, parseServer("10.0.0.9:7000")];
  assert.deepEqual((await expandServers(dns, two, undefined)).map((s) => s.server), two);
  const single: Net = { ...dns, lookup: () => Promise.resolve(["10.0.0.3"]) };
  assert.deepEqual((await expandServers(single, [one], undefined)).map((s) => s.server), [one]);
  assert.equal(parseAgentConfig("servers_per_agent: 3", "a.yaml").serversPerAgent, 3);
  assert.throws(
    () => parseAgentConfig("servers_per_agent: 0", "a.yaml"),
    /a\.yaml: servers_per_agent: must be an integer in 1\.\.64/,
  );
  assert.equal(serversPerAgent(undefined, undefined), 2);
  assert.equal(serversPerAgent("3", 1), 3);
  assert.equal(serversPerAgent(undefined, 1), 1);
  for (const bad of ["0", "65", "1.5", "x"]) {
    assert.throws(
      () => serversPerAgent(bad, undefined),
      /--servers-per-agent must be an integer in 1\.\.64/,
    );
  }
});
