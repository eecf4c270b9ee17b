/**
 * UDP associations forwarded between servers (SPEC.md §2.5, §2.6): two
 * servers of one fleet on a real PostgreSQL 15 (test/pg.ts), the agent on
 * the first only; a UDP ASSOCIATE on the second (the npm socks client on
 * its SOCKS5 port, and a client proxy on its client port) goes over the
 * peer link as a FORWARD with protocol 17. Datagrams echo both ways; the
 * holder checks each one again with its own grant (narrower here than the
 * forwarder's) and drops and counts what it refuses, which never reaches
 * the target although the agent would allow it; the forwarder drops what
 * its own grant refuses. Both write the association's audit line, the
 * holder's naming the server it came from.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";
import { SocksClient } from "socks";
import { tokenCredential } from "../src/auth.ts";
import { ClientProxy } from "../src/client.ts";
import { targetOf } from "../src/ip.ts";
import type { DatagramSocket, Net } from "../src/net.ts";
import type { Server } from "../src/server/mod.ts";
import { parseUdpDatagram } from "../src/socks5_decode.ts";
import { udpDatagram } from "../src/socks5_encode.ts";
import { Link } from "../src/link.ts";
import { RuleProtocol } from "../src/messages.ts";
import { dialHandshake, peerKey } from "../src/server/peer_handshake.ts";
import { encodeUdpRecord, UdpRecordReader } from "../src/udp_records.ts";
import { Wire } from "../src/wire.ts";
import { NO_ADDR } from "../src/writer.ts";
import { holds, officeOnFirst, SECRET } from "./fleet.ts";
import { pgForFile } from "./pg.ts";
import {
  ALICE_TOKEN,
  memoryLogger,
  readAll,
  runtime,
  runtimeNet,
  socks,
  until,
} from "./helpers.ts";
import { receiveWithin, str, text, udpEcho, udpTripwire } from "./udp_helpers.ts";

const rt = runtime;
const db = pgForFile();

/** A UDP ASSOCIATE of the npm socks client as alice@office through `via`'s SOCKS5 port. */
async function npmAssociate(via: Server) {
  const client = new SocksClient({
    proxy: {
      host: "127.0.0.1",
      port: via.addrs.socks!.port,
      type: 5,
      userId: "alice@office",
      password: ALICE_TOKEN,
    },
    command: "associate",
    destination: { host: "0.0.0.0", port: 0 },
    timeout: 10_000,
  });
  return await new Promise<
    { remoteHost?: { host: string; port: number }; socket: { destroy(): void } }
  >((resolve, reject) => {
    client.on("established", resolve);
    client.on("error", reject);
    client.connect();
  });
}

/** Send `data` to 127.0.0.1:`port` through `relay` from `sock`, as the npm socks client frames it. */
function sendTo(
  sock: DatagramSocket,
  relay: { host: string; port: number },
  port: number,
  data: string,
) {
  const frame = SocksClient.createUDPFrame({
    remoteHost: { host: "127.0.0.1", port },
    data: Buffer.from(data),
  });
  return sock.send(frame, relay);
}

function fleetWithOffice(net: Net, echoPort: number) {
  // The forwarder (s2) grants UDP to all of 127.0.0.1; the holder (s1) only to the echo.
  const udp = (i: number) => i === 0 ? [`127.0.0.1:${echoPort}/udp`] : ["127.0.0.1:*/udp"];
  // The agent allows every UDP port of 127.0.0.1: only the holder's grant stops the tripwire's.
  return officeOnFirst(net, {
    pg: db.pg.url,
    config: (i) => ({
      grants: [{ client: "alice", agents: ["office"], targets: ["127.0.0.1:*", ...udp(i)] }],
    }),
  }, ["127.0.0.1:*", "127.0.0.1:*/udp"]);
}

test(`${rt}: peers: a UDP association through a server without the agent is forwarded; the holder checks each datagram`, async () => {
  const net = await runtimeNet();
  const echo = await udpEcho(net);
  const wire = await udpTripwire(net);
  const f = await fleetWithOffice(net, echo.addr.port);
  const { s1, s2 } = f;
  let sock: DatagramSocket | undefined;
  try {
    sock = await net.bindUdp({ host: "127.0.0.1" });
    assert.ok(!holds(s2.server, "office"));
    const info = await npmAssociate(s2.server); // before FORWARD carried UDP: reply 4, agent_offline
    const relay = info.remoteHost!;
    try {
      await sendTo(sock, relay, echo.addr.port, "one");
      let back = SocksClient.parseUDPFrame(Buffer.from(await receiveWithin(sock, 10_000)));
      assert.equal(back.data.toString(), "one");
      assert.equal(back.remoteHost.port, echo.addr.port);
      // Inside the forwarder's grant, outside the holder's: the holder drops it.
      await sendTo(sock, relay, wire.addr.port, "tripwire");
      // Outside the forwarder's own grant (127.0.0.2): it never leaves the forwarder.
      const far = SocksClient.createUDPFrame({
        remoteHost: { host: "127.0.0.2", port: echo.addr.port },
        data: Buffer.from("far"),
      });
      await sock.send(far, relay);
      // Records keep their order on the stream: once "two" is back, the others were decided.
      await sendTo(sock, relay, echo.addr.port, "two");
      back = SocksClient.parseUDPFrame(Buffer.from(await receiveWithin(sock, 10_000)));
      assert.equal(back.data.toString(), "two");
      const [a1] = [...s1.server.udp.live.values()];
      assert.equal(a1?.port, "peer", "the holder lists the association, from the peer port");
      assert.equal(s2.server.udp.live.size, 1);
      assert.equal(s1.server.udp.totals.dropped.refused, 1, "the holder dropped the tripwire's");
      assert.equal(s2.server.udp.totals.dropped.refused, 1, "the forwarder dropped 127.0.0.2's");
      assert.match(s1.server.metrics.render(), /burrow_udp_dropped_total\{reason="refused"\} 1/);
      assert.equal(s1.server.udp.totals.datagramsUp, 2);
      assert.equal(s2.server.udp.totals.datagramsUp, 3, "the forwarder passed three on");
      assert.equal(echo.got(), 2);
    } finally {
      info.socket.destroy();
    }
    // The association ends on both servers; each writes its audit line.
    assert.ok(
      await until(() => s1.server.udp.live.size === 0 && s2.server.udp.live.size === 0, 5000),
    );
    const line1 = s1.lines.find((l) => /udp association ended/.test(l)) ?? "";
    assert.match(line1, /port=peer/);
    assert.match(line1, new RegExp(`via=${s2.name}`));
    assert.match(line1, /dropped_refused=1/);
    assert.match(s2.lines.join("\n"), /udp association ended.*port=socks/);
    assert.equal(wire.hits(), 0, "the tripwire got nothing");
  } finally {
    sock?.close();
    await f.closeAll();
    echo.close();
    wire.close();
  }
});

test(`${rt}: peers: a client proxy's UDP association (CONNECT protocol 17) is forwarded too`, async () => {
  const net = await runtimeNet();
  const echo = await udpEcho(net);
  const f = await fleetWithOffice(net, echo.addr.port);
  const { log } = memoryLogger();
  const proxy = new ClientProxy(net, {
    listen: { host: "127.0.0.1", port: 0 },
    server: { ...f.s2.server.addrs.clients!, tls: { fingerprint: f.pins[1]! } },
    name: "alice",
    credential: tokenCredential(ALICE_TOKEN),
    agent: "office",
  }, log);
  let sock: DatagramSocket | undefined;
  try {
    await proxy.start();
    sock = await net.bindUdp({ host: "127.0.0.1" });
    const r = await socks(net, proxy.addr!, "", "", targetOf("0.0.0.0", 0), 3);
    assert.equal(r.reply, 0, "the association was opened through the second server");
    const relay = { host: r.bound!.host, port: r.bound!.port };
    for (const word of ["alpha", "beta"]) {
      await sock.send(udpDatagram(targetOf("127.0.0.1", echo.addr.port), text(word)), relay);
      const p = parseUdpDatagram(await receiveWithin(sock, 10_000));
      assert.equal(str(p.data), word);
      assert.equal(p.target.port, echo.addr.port);
    }
    assert.equal(echo.got(), 2);
    assert.equal([...f.s1.server.udp.live.values()][0]?.port, "peer");
    assert.equal([...f.s2.server.udp.live.values()][0]?.port, "clients");
    r.conn.close();
    assert.ok(await until(() => f.s1.server.udp.live.size === 0, 5000));
    assert.match(f.s1.lines.join("\n"), /udp association ended.*port=peer.*datagrams_up=2/);
  } finally {
    sock?.close();
    await proxy.stop();
    await f.closeAll();
    echo.close();
  }
});

/** A peer link of our own to `s`'s peer port, proved with the fleet secret, as server "rogue". */
async function peerLink(net: Net, s: Server, pin: string) {
  const conn = await net.dial({ ...s.fleet!.addr, tls: { fingerprint: pin } });
  const hs = await dialHandshake(conn, "rogue", peerKey(SECRET), 5000);
  const link = new Link(hs.conn, { onGrant: () => {} }, hs.rest);
  assert.ok(await until(() => link.credit > 0, 5000), "the acceptor granted streams");
  return link;
}

/** A FORWARD of a UDP association on `link`; its stream, once answered with status 0. */
async function forwardUdp(link: Link) {
  const wire = new Wire(link.open());
  await wire.send({
    type: "FORWARD",
    client: "alice",
    agent: "office",
    protocol: RuleProtocol.udp,
    target: NO_ADDR,
  });
  const res = await wire.expect("CONNECT_RESULT");
  assert.equal(res.status, 0);
  return wire;
}

test(`${rt}: peers: a malformed record on a forwarded association ends it alone, a protocol error on the peer port`, async () => {
  const net = await runtimeNet();
  const echo = await udpEcho(net);
  const f = await fleetWithOffice(net, echo.addr.port);
  let link: Link | undefined;
  try {
    link = await peerLink(net, f.s1.server, f.pins[0]!);
    const bad = await forwardUdp(link);
    const good = await forwardUdp(link);
    await good.conn.write(encodeUdpRecord(targetOf("127.0.0.1", echo.addr.port), text("before")));
    await bad.conn.write(Uint8Array.of(0, 1, 0xff)); // len_body 1: under the smallest address
    assert.equal(await readAll(bad.conn).catch(() => ""), "", "the holder ended the bad one");
    assert.ok(
      await until(() =>
        /burrow_protocol_errors_total\{[^}]*port="peer"[^}]*\} 1/.test(f.s1.server.metrics.render())
      ),
    );
    await good.conn.write(encodeUdpRecord(targetOf("127.0.0.1", echo.addr.port), text("after")));
    const back = new UdpRecordReader();
    const words: string[] = [];
    for (let i = 0; i < 10 && words.length < 2; i++) {
      const chunk = await good.conn.read();
      if (chunk === null) break;
      back.push(chunk);
      for (let r = back.next(); r !== null; r = back.next()) words.push(str(r.data));
    }
    assert.deepEqual(words, ["before", "after"], "the other association on the link goes on");
    assert.match(f.s1.lines.join("\n"), /bad datagram record.*via=rogue/);
  } finally {
    link?.close();
    await f.closeAll();
    echo.close();
  }
});
