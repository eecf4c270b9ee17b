/**
 * Login checks forwarded between servers (SPEC.md §2.3, §2.6, §5.26): two
 * servers of one fleet on a real PostgreSQL 15 (test/pg.ts), the agent on
 * the first only. A client proxy pointed at the second makes its login
 * check there; the second asks the first over the peer link
 * (FORWARD_CHECK), which decides it with its own grant and answers with the
 * nameserver its agent reported, so `--dns` without `--dns-server` resolves
 * through it. A client the second grants but the first does not is refused
 * by the first.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenCredential } from "../src/auth.ts";
import { ClientProxy, connectThrough } from "../src/client.ts";
import { targetOf } from "../src/ip.ts";
import { Reason, Status } from "../src/messages.ts";
import type { DatagramSocket, Net } from "../src/net.ts";
import { holds, type Member, officeOnFirst } from "./fleet.ts";
import { pgForFile } from "./pg.ts";
import { ALICE_TOKEN, BOB_TOKEN, memoryLogger, runtime, runtimeNet } from "./helpers.ts";
import { receiveWithin, udpEcho } from "./udp_helpers.ts";

const rt = runtime;
const db = pgForFile();

/** A DNS query for `a.corp`, type TXT, with `id`. */
const query = (id: number) =>
  Uint8Array.of(
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
    1,
    97,
    4,
    99,
    111,
    114,
    112,
    0,
    0,
    16,
    0,
    1,
  );

/** A nameserver inside: answers each query with itself, QR set. */
const answer = (q: Uint8Array) => {
  const a = q.slice();
  a[2]! |= 0x80;
  return a;
};

/**
 * Two servers; agent "office" on the first only, reporting `ns` as its
 * nameserver. alice is granted office on both, bob on the second only.
 */
function fleetWithOffice(net: Net, ns: { host: string; port: number }) {
  const both = ["127.0.0.1:*", "127.0.0.1:*/udp"];
  return officeOnFirst(
    net,
    {
      pg: db.pg.url,
      config: (i) => ({
        clients: [{ name: "alice", token: ALICE_TOKEN }, { name: "bob", token: BOB_TOKEN }],
        grants: [
          { client: "alice", agents: ["office"], targets: both },
          ...(i === 0 ? [] : [{ client: "bob", agents: ["office"], targets: both }]),
        ],
      }),
    },
    both,
    { nameserver: () => Promise.resolve(targetOf(ns.host, ns.port)) },
  );
}

/** A client proxy as `name` for agent office through `s2`, with `--dns` and no `--dns-server`. */
function proxyAt(net: Net, f: { s2: Member; pins: string[] }, name: string, token: string) {
  const { log, lines } = memoryLogger();
  const opts = {
    listen: null,
    dns: { listen: { host: "127.0.0.1", port: 0 }, server: null },
    server: { ...f.s2.server.addrs.clients!, tls: { fingerprint: f.pins[1]! } },
    name,
    credential: tokenCredential(token),
    agent: "office",
  };
  return { proxy: new ClientProxy(net, opts, log), lines, opts };
}

test(`${rt}: peers: a login check at a server without the agent is decided by its holder, with the agent's nameserver`, async () => {
  const net = await runtimeNet();
  const dns = await udpEcho(net, "127.0.0.1", 0, answer);
  const f = await fleetWithOffice(net, dns.addr);
  const { proxy, lines, opts } = proxyAt(net, f, "alice", ALICE_TOKEN);
  let sock: DatagramSocket | undefined;
  try {
    assert.ok(!holds(f.s2.server, "office"));
    const r = await connectThrough(net, opts, "office", null);
    assert.ok(!r.ok && r.error.answered, "a check is answered without a stream");
    assert.equal(r.error.status, Status.succeeded, r.error.message);
    assert.deepEqual(r.error.bound, targetOf("127.0.0.1", dns.addr.port), "the agent's nameserver");
    await proxy.start();
    await proxy.checkLogin();
    const log = lines.join("\n");
    assert.match(log, /login checked/);
    assert.doesNotMatch(log, /cannot be used now/);
    // --dns without --dns-server: the query goes to that nameserver, through both servers.
    sock = await net.bindUdp({ host: "127.0.0.1" });
    await sock.send(query(0x1234), proxy.dns!.addr!);
    const back = await receiveWithin(sock, 10_000);
    assert.deepEqual([...back.subarray(0, 2)], [0x12, 0x34]);
    assert.equal(back[2]! & 0x80, 0x80);
    assert.equal(dns.got(), 1);
    // Both servers log the check; the holder's names the server it came from.
    const asked = f.s2.lines.filter((l) => /login check/.test(l));
    assert.ok(asked.length >= 2, asked.join("\n")); // ours, the proxy's (and the DNS front's)
    for (const l of asked) assert.match(l, new RegExp(`result=ok.*holder=${f.s1.name}`));
    const held = f.s1.lines.filter((l) => /login check/.test(l));
    assert.equal(held.length, asked.length, held.join("\n"));
    for (const l of held) {
      (assert.match(l, /result=ok/), assert.match(l, new RegExp(`via=${f.s2.name}`)));
    }
  } finally {
    sock?.close();
    await proxy.stop();
    await f.closeAll();
    dns.close();
  }
});

test(`${rt}: peers: a forwarded login check of a client its holder does not grant is refused there`, async () => {
  const net = await runtimeNet();
  const dns = await udpEcho(net, "127.0.0.1", 0, answer);
  const f = await fleetWithOffice(net, dns.addr);
  const { proxy, lines, opts } = proxyAt(net, f, "bob", BOB_TOKEN);
  try {
    const r = await connectThrough(net, opts, "office", null);
    assert.ok(!r.ok && r.error.answered);
    assert.equal(r.error.status, Status.not_allowed, r.error.message);
    assert.equal(r.error.reason, Reason.not_granted);
    await proxy.checkLogin();
    assert.match(lines.join("\n"), /the agent cannot be used now.*reason=not_granted/);
    const refusal = f.s1.lines.find((l) => /login check/.test(l)) ?? "";
    assert.match(refusal, /client=bob/);
    assert.match(refusal, new RegExp(`via=${f.s2.name}`));
    assert.equal(dns.got(), 0);
  } finally {
    await proxy.stop();
    await f.closeAll();
    dns.close();
  }
});
