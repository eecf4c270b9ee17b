/**
 * UDP ASSOCIATE on the server's SOCKS5 port (SPEC.md §2.5, §8.2), end to
 * end with real sockets on loopback: the npm `socks` client and PySocks
 * echo through the tunnel to IPv4, IPv6 and name targets; the relay takes
 * datagrams only from the client's address and port, drops fragments and
 * malformed datagrams and counts them; `udp.listen` and `udp.advertise`;
 * the association ends with its TCP connection, leaving no descriptor
 * behind. Policy and the agent's own checks: test/udp_policy_test.ts; a
 * flood: test/udp_flood_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { SocksClient } from "socks";
import { udpDatagram } from "../src/socks5_encode.ts";
import { targetOf } from "../src/ip.ts";
import { normalizeIP } from "../src/host.ts";
import { ALICE_TOKEN, socks, until } from "./helpers.ts";
import { associate, openFds, receiveWithin, str, text, udpEcho, udpTunnel } from "./udp_helpers.ts";

test("udp: the npm socks client's associate echoes to IPv4, IPv6 and a name", async () => {
  const t = await udpTunnel();
  const e4 = await udpEcho(t.net, "127.0.0.1");
  // The same port on ::1, so that "localhost" reaches an echo whichever address it resolves to.
  const e6 = await udpEcho(t.net, "::1", e4.addr.port);
  const sock = await t.net.bindUdp({ host: "127.0.0.1" });
  const client = new SocksClient({
    proxy: {
      host: t.socks.host,
      port: t.socks.port,
      type: 5,
      userId: "alice",
      password: ALICE_TOKEN,
    },
    command: "associate",
    destination: { host: "0.0.0.0", port: 0 },
  });
  const info = await new Promise<
    { remoteHost?: { host: string; port: number }; socket: { destroy(): void } }
  >((resolve, reject) => {
    client.on("established", resolve);
    client.on("error", reject);
    client.connect();
  });
  try {
    const relay = info.remoteHost!;
    assert.equal(relay.host, "127.0.0.1");
    for (const host of ["127.0.0.1", "::1", "localhost"]) {
      const data = Buffer.from(`hello ${host}`);
      const frame = SocksClient.createUDPFrame({ remoteHost: { host, port: e4.addr.port }, data });
      await sock.send(frame, { host: relay.host, port: relay.port });
      const p = SocksClient.parseUDPFrame(Buffer.from(await receiveWithin(sock)));
      assert.equal(p.data.toString(), `hello ${host}`);
      assert.equal(p.remoteHost.port, e4.addr.port);
      if (host !== "localhost") assert.equal(normalizeIP(p.remoteHost.host), host);
    }
    assert.equal(e4.got() + e6.got(), 3);
    assert.ok(e6.got() >= 1);
    const totals = t.server.udp.totals;
    assert.equal(totals.datagramsUp, 3);
    assert.equal(totals.datagramsDown, 3);
    assert.equal(t.agent.udp.totals.datagramsUp, 3);
    const metrics = t.server.metrics.render();
    assert.match(metrics, /burrow_udp_datagrams_total\{direction="up"\} 3/);
    assert.match(metrics, /burrow_udp_associations 1/);
  } finally {
    info.socket.destroy();
    sock.close();
    e4.close();
    e6.close();
    await t.close();
  }
});

/** Run `python3 -c script args…`; resolves with its stdout (rejects on exit ≠ 0 or after 20 s). */
function python(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn("/usr/bin/python3", ["-c", script, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout!.on("data", (b: Uint8Array) => out += new TextDecoder().decode(b));
    p.stderr!.on("data", (b: Uint8Array) => err += new TextDecoder().decode(b));
    const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
    p.on("close", (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(out) : reject(new Error(`python3 exited ${code}: ${err}`));
    });
  });
}

const PYSOCKS = `
import socket, sys, socks
proxy, port, token, echo = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, proxy, port, username="alice", password=token)
s.settimeout(5)
s.bind(("127.0.0.1", 0))
for i in range(3):
    s.sendto(b"pysocks %d" % i, ("127.0.0.1", echo))
    data, addr = s.recvfrom(65535)
    print(data.decode(), addr[0], addr[1])
s.close()
`;

test("udp: PySocks UDP sockets echo through the SOCKS5 port", async () => {
  const t = await udpTunnel();
  const echo = await udpEcho(t.net);
  try {
    const out = await python(PYSOCKS, [
      t.socks.host,
      String(t.socks.port),
      ALICE_TOKEN,
      String(echo.addr.port),
    ]);
    const want = [0, 1, 2].map((i) => `pysocks ${i} 127.0.0.1 ${echo.addr.port}`);
    assert.deepEqual(out.trim().split("\n"), want);
    assert.equal(echo.got(), 3);
  } finally {
    echo.close();
    await t.close();
  }
});

test("udp: only the client's address, then only its port; fragments and garbage dropped, counted", async () => {
  const t = await udpTunnel();
  const echo = await udpEcho(t.net);
  const target = targetOf("127.0.0.1", echo.addr.port);
  const a = await associate(t);
  const sameIp = await t.net.bindUdp({ host: "127.0.0.1" });
  const otherIp = await t.net.bindUdp({ host: "127.0.0.2" });
  try {
    // Before any datagram: another IP is refused, the client's IP is taken and locks.
    await otherIp.send(udpDatagram(target, text("stranger")), a.relay);
    await a.send(target, text("one"));
    assert.equal(str((await a.receive()).data), "one");
    const d = t.server.udp.totals.dropped;
    // Locked: the same IP from another port, a fragment and garbage from the client.
    await sameIp.send(udpDatagram(target, text("other port")), a.relay);
    await a.send(target, text("fragment"), 1);
    await a.sock.send(Uint8Array.of(0, 0, 0, 9), a.relay);
    assert.ok(await until(() => d.source >= 2 && d.fragment >= 1 && d.malformed >= 1));
    await a.send(target, text("two"));
    assert.equal(str((await a.receive()).data), "two");
    assert.equal(echo.got(), 2, "no dropped datagram reached the target");
    assert.deepEqual([d.source, d.fragment, d.malformed], [2, 1, 1]);
    assert.match(t.server.metrics.render(), /burrow_udp_dropped_total\{reason="fragment"\} 1/);
  } finally {
    a.close();
    sameIp.close();
    otherIp.close();
    echo.close();
    await t.close();
  }
});

test("udp: a request's DST.PORT locks the port from the start", async () => {
  const t = await udpTunnel();
  const echo = await udpEcho(t.net);
  const target = targetOf("127.0.0.1", echo.addr.port);
  const client = await t.net.bindUdp({ host: "127.0.0.1" });
  // Named in the request: a port that is not the socket's own.
  const a = await associate(t, "127.0.0.1", targetOf("127.0.0.1", client.addr.port));
  try {
    await a.send(target, text("wrong port"));
    assert.ok(await until(() => t.server.udp.totals.dropped.source === 1));
    await client.send(udpDatagram(target, text("right port")), a.relay);
    assert.ok(await until(() => echo.got() === 1));
  } finally {
    a.close();
    client.close();
    echo.close();
    await t.close();
  }
});

test("udp: udp.listen's port range and udp.advertise; no free port answers 0x01", async () => {
  const probe = await udpTunnel();
  const free = await probe.net.bindUdp({ host: "127.0.0.1" });
  const port = free.addr.port;
  free.close();
  await probe.close();
  const t = await udpTunnel(undefined, undefined, {
    config: { udp: { listen: `127.0.0.1:${port}-${port}`, advertise: "127.0.0.9" } },
  });
  try {
    const r = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf("0.0.0.0", 0), 3);
    assert.equal(r.reply, 0);
    assert.deepEqual(r.bound, targetOf("127.0.0.9", port));
    const second = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf("0.0.0.0", 0), 3);
    assert.equal(second.reply, 1);
    second.conn.close();
    assert.ok(t.logs.some((l) => l.includes("limit=udp_ports")));
    r.conn.close();
    // The port comes back with the association's end.
    assert.ok(await until(() => t.server.udp.live.size === 0));
    const third = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf("0.0.0.0", 0), 3);
    assert.equal(third.reply, 0);
    third.conn.close();
  } finally {
    await t.close();
  }
});

test("udp: the association ends with its TCP connection; no descriptor is left", async () => {
  const t = await udpTunnel();
  const echo = await udpEcho(t.net);
  const target = targetOf("127.0.0.1", echo.addr.port);
  try {
    const warm = await associate(t); // the first association's one-time costs (pool, link)
    await warm.send(target, text("warm"));
    await warm.receive();
    warm.close();
    assert.ok(await until(() => t.server.udp.live.size === 0 && t.agent.udp.open === 0));
    const before = openFds();
    const a = await associate(t);
    await a.send(target, text("ping"));
    assert.equal(str((await a.receive()).data), "ping");
    assert.equal(t.server.udp.live.size, 1);
    assert.equal(t.agent.udp.open, 1);
    assert.equal(t.agent.udp.sockets, 1);
    // The dashboard's read model lists it.
    const [view] = t.server.snapshot().associations ?? [];
    assert.deepEqual(
      [view?.client, view?.agent, view?.port, view?.relay, view?.datagrams_up],
      ["alice", "office", "socks", `${a.relay.host}:${a.relay.port}`, 1],
    );
    a.close();
    assert.ok(await until(() => t.server.udp.live.size === 0 && t.agent.udp.open === 0));
    assert.ok(await until(() => t.agent.udp.sockets === 0));
    // The relay socket, the agent's socket and the test's own: all closed.
    if (before >= 0) {
      assert.ok(await until(() => openFds() <= before), `fds ${openFds()} > ${before}`);
    }
    assert.ok(
      t.logs.some((l) => l.includes("udp association ended") && l.includes("datagrams_up=1")),
    );
  } finally {
    echo.close();
    await t.close();
  }
});

test("udp: an association on a pool connection of its own (no link) carries datagrams too", async () => {
  const t = await udpTunnel(undefined, undefined, { agent: { link: false } });
  const echo = await udpEcho(t.net);
  try {
    const a = await associate(t);
    await a.send(targetOf("127.0.0.1", echo.addr.port), text("no link"));
    const back = await a.receive();
    assert.equal(str(back.data), "no link");
    assert.deepEqual(back.from, targetOf("127.0.0.1", echo.addr.port));
    a.close();
  } finally {
    echo.close();
    await t.close();
  }
});

test("udp: the bandwidth hook counts datagrams: one it refuses is dropped, counted", async () => {
  const t = await udpTunnel();
  const echo = await udpEcho(t.net);
  const seen: Array<[string, string, number, boolean]> = [];
  t.server.udp.bandwidth = (client, agent, bytes, up) => {
    seen.push([client, agent, bytes, up]);
    return bytes <= 100;
  };
  try {
    const a = await associate(t);
    const to = targetOf("127.0.0.1", echo.addr.port);
    await a.send(to, new Uint8Array(200));
    await a.send(to, text("small"));
    assert.equal(str((await a.receive()).data), "small");
    assert.equal(t.server.udp.totals.dropped.bandwidth, 1);
    assert.equal(echo.got(), 1);
    assert.deepEqual(seen, [
      ["alice", "office", 200, true],
      ["alice", "office", 5, true],
      ["alice", "office", 5, false],
    ]);
    a.close();
  } finally {
    echo.close();
    await t.close();
  }
});
