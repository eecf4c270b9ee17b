/**
 * The client proxy's internal DNS (src/dns_front.ts, SPEC.md §10.2) in
 * this process: a server, an agent that announces a nameserver, a
 * ClientProxy with `dns`, and a DNS server of the test's own on 127.0.0.1
 * (UDP) that answers each query with its name in a TXT-like payload, or
 * stays silent. Real clients against a real dnsmasq are in
 * udp_clients_test.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { tokenCredential } from "../src/auth.ts";
import type { Agent, AgentOptions } from "../src/agent.ts";
import { ClientProxy } from "../src/client.ts";
import { messageId, REFUSED, SERVFAIL } from "../src/dns_message.ts";
import { targetOf } from "../src/ip.ts";
import type { Target } from "../src/messages.ts";
import type { Addr, DatagramSocket, Net } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import {
  ALICE_TOKEN,
  memoryLogger,
  runtimeNet,
  testAgent,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

/** A query (RD, one question of type 16) for `name` with `id`. */
function query(id: number, name: string): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  return new Uint8Array([
    id >> 8,
    id & 0xff,
    1,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...labels,
    0,
    0,
    16,
    0,
    1,
  ]);
}

/** The name a {@link query} asks for. */
function nameOf(msg: Uint8Array): string {
  const parts: string[] = [];
  for (let at = 12; msg[at]! > 0; at += 1 + msg[at]!) {
    parts.push(new TextDecoder().decode(msg.subarray(at + 1, at + 1 + msg[at]!)));
  }
  return parts.join(".");
}

/** The test's DNS server: answers with QR set and the query's bytes, unless `silent`. */
async function fakeDns(net: Net) {
  const sock = await net.bindUdp({ host: "127.0.0.1" });
  const seen: Uint8Array[] = [];
  const state = { silent: false };
  (async () => {
    for (;;) {
      const d = await sock.receive();
      if (d === null) return;
      seen.push(d.data);
      if (state.silent) continue;
      const answer = d.data.slice();
      answer[2]! |= 0x80;
      await sock.send(answer, d.from).catch(() => {});
    }
  })();
  return { sock, seen, state, target: targetOf("127.0.0.1", sock.addr.port) };
}

let t: Tunnel;
let dns: Awaited<ReturnType<typeof fakeDns>>;

before(async () => {
  dns = await fakeDns(await runtimeNet());
  t = await tunnel({
    allow: ["127.0.0.1:*", "127.0.0.1:*/udp"],
    agent: { nameserver: () => Promise.resolve(dns.target) },
    config: {
      grants: [{
        client: "alice",
        agents: ["office", "lab"],
        targets: ["127.0.0.1:*", "127.0.0.1:*/udp"],
      }],
    },
  });
});

after(async () => {
  await t.close();
  dns.sock.close();
});

/** A client proxy with only `--dns` (on a free port) for `server` (null: the agent's). */
async function withDns(
  server: Target | null,
  more: { timeoutMs?: number; maxPending?: number } = {},
  agent = "office",
) {
  const { log, lines } = memoryLogger();
  const proxy = new ClientProxy(t.net, {
    listen: null,
    dns: { listen: { host: "127.0.0.1", port: 0 }, server, ...more },
    server: t.server.addrs.clients!,
    name: "alice",
    credential: tokenCredential(ALICE_TOKEN),
    agent,
  }, log);
  await proxy.start();
  return { proxy, lines, addr: proxy.dns!.addr! };
}

/** Ask `at` over UDP from a socket of its own; the answer. */
async function ask(sock: DatagramSocket, at: Addr, msg: Uint8Array): Promise<Uint8Array> {
  await sock.send(msg, at);
  return (await sock.receive())!.data;
}

test("the agent's nameserver (reported in INSTANCE, given in CHECK) answers over UDP, with the program's id", async () => {
  const { proxy, addr } = await withDns(null);
  const a = await t.net.bindUdp({ host: "127.0.0.1" });
  const b = await t.net.bindUdp({ host: "127.0.0.1" });
  try {
    // Two programs with the same id at once: each gets its own answer back.
    const [ra, rb] = await Promise.all([
      ask(a, addr, query(7, "one.corp")),
      ask(b, addr, query(7, "two.corp")),
    ]);
    assert.equal(messageId(ra), 7);
    assert.equal(messageId(rb), 7);
    assert.equal(nameOf(ra), "one.corp");
    assert.equal(nameOf(rb), "two.corp");
    assert.equal(ra[2]! & 0x80, 0x80);
    // The server inside saw two different ids: they were rewritten.
    const ids = dns.seen.slice(-2).map((m) => messageId(m));
    assert.notEqual(ids[0], ids[1]);
    assert.equal(proxy.dns!.stats.answers >= 2, true);
  } finally {
    a.close();
    b.close();
    await proxy.stop();
  }
});

test("TCP: queries on one connection, each with its two-byte length, answered in turn", async () => {
  const { proxy, addr } = await withDns(dns.target);
  const conn = await t.net.dial(addr);
  try {
    const frame = (m: Uint8Array) => new Uint8Array([m.length >> 8, m.length & 0xff, ...m]);
    await conn.write(new Uint8Array([...frame(query(1, "a.corp")), ...frame(query(2, "b.corp"))]));
    let buf = new Uint8Array(0);
    const got: Uint8Array[] = [];
    for (let i = 0; i < 100 && got.length < 2; i++) {
      const c = await conn.read();
      if (c === null) break;
      buf = new Uint8Array([...buf, ...c]);
      while (buf.length >= 2 && buf.length >= 2 + ((buf[0]! << 8) | buf[1]!)) {
        const n = (buf[0]! << 8) | buf[1]!;
        got.push(buf.slice(2, 2 + n));
        buf = buf.slice(2 + n);
      }
    }
    const byId = new Map(got.map((m) => [messageId(m), nameOf(m)]));
    assert.deepEqual([...byId].sort(), [[1, "a.corp"], [2, "b.corp"]]);
  } finally {
    conn.close();
    await proxy.stop();
  }
});

test("no answer within the timeout: SERVFAIL; over the pending limit: REFUSED (limit=dns_pending)", async () => {
  dns.state.silent = true;
  const { proxy, addr, lines } = await withDns(dns.target, { timeoutMs: 300, maxPending: 2 });
  const socks = await Promise.all([0, 1, 2].map(() => t.net.bindUdp({ host: "127.0.0.1" })));
  try {
    await socks[0]!.send(query(10, "slow.corp"), addr);
    await socks[1]!.send(query(11, "slow.corp"), addr);
    assert.ok(await until(() => proxy.dns!.pending === 2));
    const third = await ask(socks[2]!, addr, query(12, "third.corp"));
    assert.equal(third[3]! & 0x0f, REFUSED);
    assert.equal(nameOf(third), "third.corp");
    assert.ok(lines.some((l) => l.includes("limit=dns_pending")));
    const first = (await socks[0]!.receive())!.data;
    assert.equal(messageId(first), 10);
    assert.equal(first[3]! & 0x0f, SERVFAIL);
    assert.equal(proxy.dns!.stats.timeouts >= 1, true);
  } finally {
    dns.state.silent = false;
    for (const s of socks) s.close();
    await proxy.stop();
  }
});

/** A started agent `lab` (no nameserver unless given) that allows UDP to 127.0.0.1. */
async function lab(opts: Partial<AgentOptions> = {}) {
  const a = testAgent(t.net, t.server.addrs.agents!, "lab", {
    rules: parseRule("127.0.0.1:*/udp"),
    ...opts,
  });
  a.agent.start();
  await a.agent.connected();
  const announced = () => t.server.agents.group("lab").some((s) => s.announced && !s.closed);
  assert.ok(await until(announced));
  return a.agent;
}

test("the association is opened again after it ended (the agent reconnected)", async () => {
  const first = await lab();
  const { proxy, addr, lines } = await withDns(dns.target, {}, "lab");
  const sock = await t.net.bindUdp({ host: "127.0.0.1" });
  let second: Agent | undefined;
  try {
    assert.equal(nameOf(await ask(sock, addr, query(20, "before.corp"))), "before.corp");
    await first.stop();
    assert.ok(await until(() => lines.some((l) => l.includes("dns association ended"))));
    second = await lab();
    assert.equal(nameOf(await ask(sock, addr, query(21, "after.corp"))), "after.corp");
    assert.equal(lines.filter((l) => l.includes("dns association open")).length, 2);
  } finally {
    sock.close();
    await proxy.stop();
    await second?.stop();
  }
});

test("a DNS server outside the grant: the association opens, the datagrams are dropped, SERVFAIL", async () => {
  const { proxy, addr } = await withDns(targetOf("127.0.0.2", 53), { timeoutMs: 300 });
  const sock = await t.net.bindUdp({ host: "127.0.0.1" });
  try {
    const r = await ask(sock, addr, query(30, "nope.corp"));
    assert.equal(r[3]! & 0x0f, SERVFAIL);
  } finally {
    sock.close();
    await proxy.stop();
  }
});

test("a message that is no query (QR set, or shorter than a header) is dropped and counted", async () => {
  const { proxy, addr } = await withDns(dns.target);
  const sock = await t.net.bindUdp({ host: "127.0.0.1" });
  try {
    const response = query(40, "x.corp");
    response[2]! |= 0x80;
    await sock.send(response, addr);
    await sock.send(new Uint8Array(5), addr);
    assert.ok(await until(() => proxy.dns!.stats.malformed === 2));
    assert.equal(nameOf(await ask(sock, addr, query(41, "y.corp"))), "y.corp");
  } finally {
    sock.close();
    await proxy.stop();
  }
});

test("no --dns-server and an agent that reported no nameserver: SERVFAIL, and the reason logged once", async () => {
  const agent = await lab();
  const { proxy, addr, lines } = await withDns(null, {}, "lab");
  const sock = await t.net.bindUdp({ host: "127.0.0.1" });
  try {
    const r = await ask(sock, addr, query(50, "none.corp"));
    assert.equal(r[3]! & 0x0f, SERVFAIL);
    const r2 = await ask(sock, addr, query(51, "none.corp"));
    assert.equal(r2[3]! & 0x0f, SERVFAIL);
    const why = lines.filter((l) => l.includes("dns unavailable"));
    assert.equal(why.length, 1);
    assert.match(why[0]!, /reported no nameserver/);
  } finally {
    sock.close();
    await proxy.stop();
    await agent.stop();
  }
});
