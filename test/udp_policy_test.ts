/**
 * Policy for UDP (SPEC.md §2.5, §7.3): every datagram's target is checked
 * on the server (grant and announcement, UDP rules only) and again on the
 * agent, which never trusts the server: a datagram to a target outside
 * either never leaves the agent (UDP tripwires), and each drop is counted.
 * The association opens only for a client with some UDP rule; a TCP rule
 * never lets a datagram through. A client proxy's association (CONNECT with
 * protocol 17) carries records on its connection and gets the same checks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenCredential } from "../src/auth.ts";
import { targetOf } from "../src/ip.ts";
import { Status } from "../src/messages.ts";
import { encodeUdpRecord, UdpRecordReader, type UdpRecordValue } from "../src/udp_records.ts";
import { dialServer, login, Wire } from "../src/wire.ts";
import type { Conn } from "../src/net.ts";
import { ALICE_TOKEN, lyingServer, runtimeNet, socks, until } from "./helpers.ts";
import { associate, str, text, udpEcho, udpTripwire, udpTunnel } from "./udp_helpers.ts";

/** The next record on `conn` (after `rest`), or null at its end. */
function recordsOf(conn: Conn, rest: Uint8Array): () => Promise<UdpRecordValue | null> {
  const r = new UdpRecordReader();
  r.push(rest);
  return async () => {
    for (;;) {
      const x = r.next();
      if (x) return x;
      const chunk = await conn.read();
      if (chunk === null) return null;
      r.push(chunk);
    }
  };
}

test("udp policy: the server drops a datagram outside the grant; the tripwire hears nothing", async () => {
  const echo = await udpEcho(await runtimeNet());
  const echoPort = echo.addr.port;
  const t = await udpTunnel([`127.0.0.1:${echoPort}/udp`, "127.0.0.1:*"]);
  const wire = await udpTripwire(t.net);
  // The grant's TCP rule covers the tripwire's port: it lets no datagram through.
  try {
    const a = await associate(t);
    await a.send(targetOf("127.0.0.1", wire.addr.port), text("not granted"));
    await a.send(targetOf("127.0.0.1", echoPort), text("granted"));
    assert.equal(str((await a.receive()).data), "granted");
    assert.equal(t.server.udp.totals.dropped.refused, 1);
    assert.equal(wire.hits(), 0);
    assert.equal(t.agent.udp.totals.dropped.refused, 0, "it never reached the agent");
    a.close();
  } finally {
    wire.close();
    echo.close();
    await t.close();
  }
});

test("udp policy: a client with no UDP rule gets no association; a TCP rule lets no datagram through", async () => {
  const t = await udpTunnel(["127.0.0.1:*"]);
  try {
    const r = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf("0.0.0.0", 0), 3);
    assert.equal(r.reply, Status.not_allowed);
    r.conn.close();
    assert.equal(t.server.udp.live.size, 0);
  } finally {
    await t.close();
  }
});

test("udp policy: the agent's own allowlist, narrower than the server: the tripwire hears nothing", async () => {
  const net = await runtimeNet();
  const echo = await udpEcho(net);
  const trip = await udpTripwire(net);
  const trip6 = await udpTripwire(net, "::1");
  // A lying server opens an association and sends whatever it likes.
  const lying = await lyingServer(net, [`127.0.0.1:${echo.addr.port}/udp`, "127.0.0.1:*"]);
  try {
    const res = await lying.open(targetOf("0.0.0.0", 0), "alice", 17);
    assert.equal(res.status, 0);
    assert.deepEqual(res.bound, targetOf("0.0.0.0", 0));
    const pool = lying.last();
    const next = recordsOf(pool.conn, pool.rest());
    for (
      const addr of [
        targetOf("127.0.0.1", trip.addr.port), // outside: another port
        targetOf("::1", trip6.addr.port), // outside: another family
        { type: "domain" as const, host: "localhost", port: trip.addr.port }, // a name, outside
        { type: "domain" as const, host: "127.0.0.1\u0000.corp", port: echo.addr.port }, // no form
      ]
    ) await pool.conn.write(encodeUdpRecord(addr, text("tripwire")));
    await pool.conn.write(encodeUdpRecord(targetOf("127.0.0.1", echo.addr.port), text("allowed")));
    const back = await next();
    assert.ok(back);
    assert.equal(str(back.data), "allowed");
    assert.deepEqual(back.addr, targetOf("127.0.0.1", echo.addr.port));
    assert.equal(lying.agent.udp.totals.dropped.refused, 4);
    assert.equal(trip.hits() + trip6.hits(), 0);
    assert.equal(echo.got(), 1);
  } finally {
    echo.close();
    trip.close();
    trip6.close();
    await lying.close();
  }
});

test("udp policy: an agent with no UDP rule for the client refuses the association", async () => {
  const net = await runtimeNet();
  const lying = await lyingServer(net, ["127.0.0.1:*", "bob=127.0.0.1:53/udp"]);
  try {
    assert.equal(
      (await lying.open(targetOf("0.0.0.0", 0), "alice", 17)).status,
      Status.not_allowed,
    );
    assert.equal((await lying.open(targetOf("0.0.0.0", 0), "bob", 17)).status, 0);
  } finally {
    await lying.close();
  }
});

test("udp policy: a client proxy's CONNECT with protocol 17 carries records, checked per datagram", async () => {
  const echo = await udpEcho(await runtimeNet());
  const t = await udpTunnel([`127.0.0.1:${echo.addr.port}/udp`]);
  const trip = await udpTripwire(t.net);
  const conn = await dialServer(t.net, t.server.addrs.clients!);
  const wire = new Wire(conn);
  try {
    await login(wire, "client", "alice", tokenCredential(ALICE_TOKEN), "test", true);
    await wire.send({
      type: "CONNECT",
      agent: "office",
      protocol: 17,
      target: targetOf("0.0.0.0", 0),
    });
    await wire.expect("CLIENT_READY");
    const r = await wire.expect("CONNECT_RESULT");
    assert.equal(r.status, 0);
    assert.deepEqual(r.bound, targetOf("0.0.0.0", 0));
    const next = recordsOf(conn, wire.rest());
    await conn.write(encodeUdpRecord(targetOf("127.0.0.1", trip.addr.port), text("refused")));
    await conn.write(encodeUdpRecord(targetOf("127.0.0.1", echo.addr.port), text("through")));
    const back = await next();
    assert.equal(back && str(back.data), "through");
    assert.equal(t.server.udp.totals.dropped.refused, 1);
    assert.equal(trip.hits(), 0);
    // A malformed record ends the association (a protocol error on the stream).
    await conn.write(Uint8Array.of(0, 1, 0));
    assert.equal(await next(), null);
    assert.ok(await until(() => t.server.udp.live.size === 0 && t.agent.udp.open === 0));
  } finally {
    conn.close();
    trip.close();
    echo.close();
    await t.close();
  }
});

test("udp policy: the agent passes back only replies from where it sent; an idle socket closes", async () => {
  const net = await runtimeNet();
  // An echo that notes each datagram's source port: the agent's socket.
  const echo = await net.bindUdp({ host: "127.0.0.1" });
  const froms: number[] = [];
  (async () => {
    for (let d = await echo.receive(); d !== null; d = await echo.receive()) {
      froms.push(d.from.port);
      await echo.send(d.data, d.from).catch(() => {});
    }
  })();
  const stranger = await net.bindUdp({ host: "127.0.0.1" });
  const lying = await lyingServer(net, [`127.0.0.1:${echo.addr.port}/udp`], { udpIdleMs: 300 });
  try {
    assert.equal((await lying.open(targetOf("0.0.0.0", 0), "alice", 17)).status, 0);
    const pool = lying.last();
    const next = recordsOf(pool.conn, pool.rest());
    const to = targetOf("127.0.0.1", echo.addr.port);
    await pool.conn.write(encodeUdpRecord(to, text("one")));
    assert.equal(str((await next())!.data), "one");
    const udp = lying.agent.udp;
    assert.equal(udp.sockets, 1);
    // A host the association never sent to: dropped at the agent.
    await stranger.send(text("unasked"), { host: "127.0.0.1", port: froms[0]! });
    assert.ok(await until(() => udp.totals.dropped.unsolicited === 1));
    // udp_idle without a datagram: the socket closes; the next datagram opens another.
    assert.ok(await until(() => udp.sockets === 0));
    await pool.conn.write(encodeUdpRecord(to, text("two")));
    assert.equal(str((await next())!.data), "two");
    assert.equal(udp.sockets, 1);
    assert.equal(froms.length, 2);
    assert.equal(udp.totals.datagramsDown, 2);
  } finally {
    echo.close();
    stranger.close();
    await lying.close();
  }
});
