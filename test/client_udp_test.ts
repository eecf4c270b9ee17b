/**
 * The client proxy's SOCKS5 UDP ASSOCIATE (src/client_udp.ts, SPEC.md
 * §10.2) in this process, against a UDP echo on 127.0.0.1: the relay
 * address it answers, datagrams both ways, the lock to the program's first
 * address (or the request's DST.PORT), fragments and malformed datagrams
 * dropped and counted, and the association's life bound to its TCP
 * connection. Real clients (PySocks, the npm socks package) are in
 * udp_clients_test.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ClientProxy } from "../src/client.ts";
import { tokenCredential } from "../src/auth.ts";
import { targetOf } from "../src/ip.ts";
import type { DatagramSocket } from "../src/net.ts";
import { parseUdpDatagram } from "../src/socks5_decode.ts";
import { udpDatagram } from "../src/socks5_encode.ts";
import { parseRule } from "../src/policy.ts";
import {
  ALICE_TOKEN,
  memoryLogger,
  socks,
  testAgent,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

let t: Tunnel;
let echo: DatagramSocket;
let proxy: ClientProxy;
let lines: string[];

before(async () => {
  t = await tunnel({
    allow: ["127.0.0.1:*", "127.0.0.1:*/udp"],
    config: {
      grants: [{
        client: "alice",
        agents: ["office", "lab"],
        targets: ["127.0.0.1:*", "127.0.0.1:*/udp"],
      }],
    },
  });
  echo = await t.net.bindUdp({ host: "127.0.0.1" });
  (async () => {
    for (;;) {
      const d = await echo.receive();
      if (d === null) return;
      await echo.send(d.data, d.from).catch(() => {});
    }
  })();
  const logger = memoryLogger();
  lines = logger.lines;
  proxy = new ClientProxy(t.net, {
    listen: { host: "127.0.0.1", port: 0 },
    server: t.server.addrs.clients!,
    name: "alice",
    credential: tokenCredential(ALICE_TOKEN),
    agent: "office",
  }, logger.log);
  await proxy.start();
});

after(async () => {
  await proxy.stop();
  echo.close();
  await t.close();
});

/** A UDP ASSOCIATE to the proxy (no auth) naming `hintPort`; the TCP connection and the relay. */
async function associate(hintPort = 0) {
  const r = await socks(t.net, proxy.addr!, "", "", targetOf("0.0.0.0", hintPort), 3);
  assert.equal(r.reply, 0);
  return r;
}

const to = () => targetOf("127.0.0.1", echo.addr.port);

test("UDP ASSOCIATE: the relay is on the address the program connected to; datagrams go both ways", async () => {
  const r = await associate();
  const relay = relayOf(r);
  assert.equal(relay.host, "127.0.0.1");
  const a = await t.net.bindUdp({ host: "127.0.0.1" });
  try {
    await a.send(udpDatagram(to(), new TextEncoder().encode("ping")), relay);
    const back = parseUdpDatagram((await a.receive())!.data);
    assert.equal(new TextDecoder().decode(back.data), "ping");
    assert.deepEqual(back.target, to());
  } finally {
    a.close();
    r.conn.close();
  }
  assert.ok(await until(() => lines.some((l) => l.includes("udp association closed"))));
});

test("only the first source, then only it; fragments and malformed datagrams are dropped and counted", async () => {
  const r = await associate();
  const relay = relayOf(r);
  const [a, b] = [
    await t.net.bindUdp({ host: "127.0.0.1" }),
    await t.net.bindUdp({ host: "127.0.0.1" }),
  ];
  try {
    await a.send(udpDatagram(to(), new TextEncoder().encode("first")), relay);
    assert.equal(
      new TextDecoder().decode(parseUdpDatagram((await a.receive())!.data).data),
      "first",
    );
    await b.send(udpDatagram(to(), new TextEncoder().encode("other port")), relay);
    const frag = udpDatagram(to(), new TextEncoder().encode("fragment"));
    frag[2] = 1;
    await a.send(frag, relay);
    await a.send(new Uint8Array([0, 0, 0, 9, 1, 2]), relay); // an unknown address type
    await a.send(udpDatagram(to(), new TextEncoder().encode("last")), relay);
    assert.equal(
      new TextDecoder().decode(parseUdpDatagram((await a.receive())!.data).data),
      "last",
    );
  } finally {
    a.close();
    b.close();
    r.conn.close();
  }
  const closed = () =>
    lines.find((l) => l.includes("udp association closed") && l.includes("dropped_fragment=1"));
  assert.ok(await until(() => closed() !== undefined));
  assert.match(closed()!, /dropped_source=1/);
  assert.match(closed()!, /dropped_malformed=1/);
  assert.match(closed()!, /datagrams_up=2/);
});

test("a request that names its port: datagrams from another port are dropped, even the first", async () => {
  const a = await t.net.bindUdp({ host: "127.0.0.1" });
  const b = await t.net.bindUdp({ host: "127.0.0.1" });
  const r = await associate(a.addr.port);
  const relay = relayOf(r);
  try {
    await b.send(udpDatagram(to(), new TextEncoder().encode("not me")), relay);
    await a.send(udpDatagram(to(), new TextEncoder().encode("me")), relay);
    assert.equal(new TextDecoder().decode(parseUdpDatagram((await a.receive())!.data).data), "me");
  } finally {
    a.close();
    b.close();
    r.conn.close();
  }
  const closed = () =>
    lines.find((l) => l.includes("udp association closed") && l.includes("dropped_source=1"));
  assert.ok(await until(() => closed() !== undefined));
});

test("the association ends with the server's side: the program's TCP connection is closed", async () => {
  const lab = testAgent(t.net, t.server.addrs.agents!, "lab", {
    rules: parseRule("127.0.0.1:*/udp"),
  });
  lab.agent.start();
  await lab.agent.connected();
  const announced = () => t.server.agents.group("lab").some((s) => s.announced && !s.closed);
  assert.ok(await until(announced));
  const r = await socks(t.net, proxy.addr!, "lab", "x", targetOf("0.0.0.0", 0), 3);
  assert.equal(r.reply, 0);
  const before = lines.filter((l) => l.includes("udp association closed")).length;
  await lab.agent.stop();
  try {
    assert.equal(await r.conn.read().catch(() => null), null);
    assert.ok(
      await until(() => lines.filter((l) => l.includes("udp association closed")).length > before),
    );
  } finally {
    r.conn.close();
  }
});

/** The relay address of a UDP ASSOCIATE reply. */
function relayOf(r: Awaited<ReturnType<typeof socks>>) {
  assert.ok(r.bound, "the reply names the relay");
  return { host: r.bound.host, port: r.bound.port };
}
