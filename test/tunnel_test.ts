/**
 * The tunnel in one process: server + agent on this runtime's sockets, real
 * SOCKS5 over 127.0.0.1. Processes, curl and mixed runtimes are in
 * e2e_test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SocksClient } from "socks";
import { tokenCredential, transcript } from "../src/auth.ts";
import { encode } from "../src/encode.ts";
import { targetOf } from "../src/ip.ts";
import { ErrorCode, Status } from "../src/messages.ts";
import { parseRule } from "../src/policy.ts";
import { Wire } from "../src/wire.ts";
import type { Conn } from "../src/net.ts";
import { Reader } from "../src/reader.ts";
import { greeting, request, userpassRequest } from "../src/socks5_encode.ts";
import { parseMethodSelection, parseReply, parseUserpassReply } from "../src/socks5_decode.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  BOB_TOKEN,
  echoTarget,
  lyingServer,
  readAll,
  runtime,
  runtimeNet,
  socks,
  socksTo,
  testAgent,
  tripwire,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

function pattern(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function idle(metrics: string, agent: string): number {
  const m = new RegExp(`burrow_pool_idle\\{agent="${agent}"\\} (\\d+)`).exec(metrics);
  return m ? Number(m[1]) : -1;
}

test(`${rt}: a SOCKS5 client that authenticated counts as pool demand before its CONNECT`, async () => {
  const t = await tunnel({
    config: { pool: { min: 1, max: 32, wait: "2s", idle: "30s" } },
    agent: { link: false }, // a link's pool rests at pool_max anyway
  });
  const echo = await echoTarget(t.net);
  const conns: Conn[] = [];
  try {
    assert.ok(await until(() => idle(t.server.metrics.render(), "office") === 1), "resting pool");
    const readers: Reader[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await t.net.dial(t.socks);
      conns.push(c);
      const rd = new Reader(c);
      readers.push(rd);
      await c.write(greeting([2]));
      assert.equal((await rd.parse(parseMethodSelection, "method")).method, 2);
      await c.write(userpassRequest("alice", ALICE_TOKEN));
      assert.equal((await rd.parse(parseUserpassReply, "auth")).status, 0);
    }
    // A wrong password is no demand; neither is a client naming an agent it is not granted.
    const bad = await socks(
      t.net,
      t.socks,
      "alice",
      "wrong-token-0123456789",
      targetOf("127.0.0.1", 1),
    );
    bad.conn.close();
    assert.equal(bad.auth, 1);
    assert.ok(
      await until(() => idle(t.server.metrics.render(), "office") === 5),
      `the pool grew to the 5 clients before any CONNECT: ${
        idle(t.server.metrics.render(), "office")
      }`,
    );
    for (const [i, c] of conns.entries()) {
      await c.write(request(1, targetOf("127.0.0.1", echo.addr.port)));
      assert.equal((await readers[i]!.parse(parseReply, "reply")).reply, 0);
      await c.write(Uint8Array.of(i));
      const rest = readers[i]!.rest();
      assert.deepEqual([...(rest.length > 0 ? rest : (await c.read())!)], [i]);
    }
  } finally {
    for (const c of conns) c.close();
    echo.close();
    await t.close();
  }
});

test(`${rt}: tunnel relays 4 MiB both ways and keeps half-close`, async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  try {
    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, 0);
    const data = pattern(4 * 1024 * 1024);
    const reading = readAll(s.conn);
    for (let o = 0; o < data.length; o += 65536) await s.conn.write(data.subarray(o, o + 65536));
    await s.conn.end(); // half-close: the echo still answers everything
    const back = await reading;
    assert.equal(back.length, data.length);
    assert.ok(back.every((b, i) => b === data[i]), "echoed bytes differ");
    s.conn.close();
    // Ids assigned by the server go to the agent and into the logs.
    assert.ok(t.agent.session!.agentId >= 1);
    assert.ok(
      t.logs.some((l) =>
        l.includes('msg="agent connected"') && l.includes(`agent_id=${t.agent.session!.agentId}`)
      ),
    );
    // The stream's audit line, once the server has seen it end.
    assert.ok(
      await until(() =>
        t.logs.some((l) => l.includes('msg="stream ended"') && /client=alice client_id=\d+/.test(l))
      ),
    );
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: a domain name target is resolved by the agent (socks npm client)`, async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  try {
    const { socket } = await SocksClient.createConnection({
      proxy: {
        host: "127.0.0.1",
        port: t.socks.port,
        type: 5,
        userId: "alice",
        password: ALICE_TOKEN,
      },
      command: "connect",
      destination: { host: "localhost", port: echo.addr.port },
      timeout: 10000,
    });
    const got = new Promise<string>((resolve) =>
      socket.once("data", (d: Uint8Array) => resolve(new TextDecoder().decode(d)))
    );
    socket.write("ping");
    assert.equal(await got, "ping");
    socket.destroy();
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: policy refusals get the right reply and dial nothing`, async () => {
  const t = await tunnel({ allow: ["127.0.0.1:*", "localhost:*"] });
  const wire = await tripwire(t.net);
  const target = targetOf("127.0.0.1", wire.addr.port);
  try {
    const cases: Array<[string, string, string, number | null, number | null]> = [
      ["unknown client", "mallory", ALICE_TOKEN, 1, null],
      ["wrong token", "alice", "not-the-token", 1, null],
      ["client with two agents names none", "bob", BOB_TOKEN, 0, Status.not_allowed],
      ["client not granted the agent", "alice@lab", ALICE_TOKEN, 0, Status.not_allowed],
      ["target outside the grant", "bob@office", BOB_TOKEN, 0, Status.not_allowed],
      ["agent offline", "bob@lab", BOB_TOKEN, 0, Status.host_unreachable],
    ];
    // bob's grant covers ports 1-1024 only; the tripwire's port is higher.
    assert.ok(wire.addr.port > 1024);
    for (const [why, user, pass, auth, reply] of cases) {
      const r = await socks(
        t.net,
        t.socks,
        user,
        pass,
        why === "agent offline" ? targetOf("127.0.0.1", 80) : target,
      );
      assert.equal(r.auth, auth, `${why}: auth status`);
      assert.equal(r.reply, reply, `${why}: reply`);
      r.conn.close();
    }
    assert.equal(wire.hits(), 0, "a refused CONNECT reached the target");
    assert.ok(
      t.logs.some((l) => l.includes("connect refused") && l.includes("target outside the grant")),
    );
    assert.ok(
      !t.logs.some((l) =>
        l.includes(ALICE_TOKEN) || l.includes(BOB_TOKEN) || l.includes(AGENT_TOKEN)
      ),
      "a token was logged",
    );
  } finally {
    wire.close();
    await t.close();
  }
});

test(`${rt}: target outside the agent's allowlist is refused`, async () => {
  const t = await tunnel({ allow: ["127.0.0.1:1-1000"] });
  const wire = await tripwire(t.net);
  try {
    const r = await socksTo(t, wire.addr.port);
    assert.equal(r.reply, Status.not_allowed);
    r.conn.close();
    assert.equal(wire.hits(), 0);
  } finally {
    wire.close();
    await t.close();
  }
});

test(`${rt}: an agent that does not answer OPEN in time gives reply 0x06, and the pool goes on`, async () => {
  // The agent's dial to one port hangs (a target that drops SYNs): its
  // OPEN_RESULT never comes within the server's open timeout.
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const stalled: Array<(e: Error) => void> = [];
  const STALL = 1;
  const stalling = {
    ...net,
    dial: (o: Parameters<typeof net.dial>[0]) =>
      o.port === STALL ? new Promise<Conn>((_, reject) => stalled.push(reject)) : net.dial(o),
  };
  const t = await tunnel({ config: { pool: { open_timeout: "300ms" } }, startAgent: false });
  const { agent } = testAgent(stalling, t.server.addrs.agents!, "office");
  agent.start();
  try {
    await agent.connected();
    const r = await socksTo(t, STALL);
    assert.equal(r.reply, Status.ttl_expired);
    r.conn.close();
    assert.equal(stalled.length, 1, "the agent was dialing");
    assert.ok(
      t.logs.some((l) => /connect refused.*agent did not answer OPEN in time/.test(l)),
      t.logs.join("\n"),
    );
    // The next stream takes another pool connection and works.
    const ok = await socksTo(t, echo.addr.port);
    assert.equal(ok.reply, Status.succeeded);
    ok.conn.close();
  } finally {
    for (const reject of stalled) reject(new Error("test over"));
    await agent.stop();
    echo.close();
    await t.close();
  }
});

test(`${rt}: the agent enforces its allowlist even when the server asks`, async () => {
  const net = await runtimeNet();
  const wire = await tripwire(net);
  const server = await lyingServer(net, ["127.0.0.1:1-1000"]);
  try {
    const res = await server.open(targetOf("127.0.0.1", wire.addr.port));
    assert.equal(res.status, Status.not_allowed);
    assert.equal(wire.hits(), 0);
  } finally {
    await server.close();
    wire.close();
  }
});

test(`${rt}: SOCKS5 method, command and version errors`, async () => {
  const t = await tunnel();
  try {
    // No acceptable method: 0xFF.
    const c = await t.net.dial(t.socks);
    await c.write(Uint8Array.of(5, 1, 0));
    assert.deepEqual([...(await readAll(c))], [5, 0xff]);
    c.close();
    // BIND: 0x07. UDP ASSOCIATE is served (test/udp_test.ts): for alice, whose
    // grant has no /udp rule, 0x02.
    for (const [cmd, reply] of [[2, Status.command_not_supported], [3, Status.not_allowed]]) {
      const r = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf("127.0.0.1", 80), cmd);
      assert.equal(r.reply, reply);
      r.conn.close();
    }
    // SOCKS4 and garbage: closed without a reply, server keeps serving.
    for (
      const junk of [
        Uint8Array.of(4, 1, 0, 80, 127, 0, 0, 1, 0),
        pattern(300, 3),
        Uint8Array.of(5, 0),
      ]
    ) {
      const j = await t.net.dial(t.socks);
      await j.write(junk);
      if (junk.length === 2) await j.end();
      assert.equal((await readAll(j)).length, 0);
      j.close();
    }
    assert.ok(await until(() => t.logs.some((l) => l.includes("bad socks handshake"))));
  } finally {
    await t.close();
  }
});

test(`${rt}: hostile bytes on the agent port get an ERROR and a close`, async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  try {
    const cases: Array<[string, Uint8Array, string]> = [
      ["bad magic", new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), "bad_magic"],
      [
        "huge length",
        Uint8Array.of(0x42, 0x52, 0x52, 0x57, 1, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff),
        "frame_too_large",
      ],
      [
        "wrong framing version",
        Uint8Array.of(0x42, 0x52, 0x52, 0x57, 9, 1, 0, 0, 0, 0, 0, 0),
        "unsupported_frame_version",
      ],
      [
        "unknown type",
        Uint8Array.of(0x42, 0x52, 0x52, 0x57, 1, 0x7e, 0, 0, 0, 0, 0, 0),
        "unknown_type",
      ],
    ];
    for (const [why, bytes, code] of cases) {
      const c = await t.net.dial(t.server.addrs.agents!);
      await c.write(bytes);
      const w = new Wire(c);
      const msg = await w.recv().catch(() => null);
      assert.equal(msg?.type, "ERROR", why);
      assert.equal(
        msg?.type === "ERROR" && msg.code,
        (await import("../src/messages.ts")).ErrorCode[code as "bad_magic"],
        why,
      );
      assert.equal(await c.read().catch(() => null), null, `${why}: not closed`);
      c.close();
    }
    // A truncated hello, then EOF.
    const c = await t.net.dial(t.server.addrs.agents!);
    const hello = encode({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 1,
      authMethod: 1,
      name: "office",
      software: "x",
    });
    await c.write(hello.subarray(0, hello.length - 3));
    await c.end();
    await readAll(c);
    c.close();
    // Everyone else is still served.
    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, 0);
    s.conn.close();
    assert.ok(
      t.logs.some((l) => l.includes("protocol error, closing") && l.includes("frame_too_large")),
    );
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: an agent offering another protocol version is refused with a clear message`, async () => {
  const t = await tunnel({ startAgent: false });
  try {
    for (const [min, max] of [[2, 2], [2, 9]]) {
      const w = new Wire(await t.net.dial(t.server.addrs.agents!));
      await w.send({
        type: "AGENT_HELLO",
        minVersion: min!,
        maxVersion: max!,
        authMethod: 1,
        name: "office",
        software: "future",
      });
      const msg = await w.recv();
      w.conn.close();
      assert.deepEqual(msg, {
        type: "ERROR",
        code: ErrorCode.unsupported_version,
        message: `Cannot negotiate: the server speaks protocol 1, the agent offered ${min}..${max}`,
      });
    }
  } finally {
    await t.close();
  }
});

test(`${rt}: a recorded agent handshake cannot be replayed`, async () => {
  const t = await tunnel({ startAgent: false });
  try {
    // Record one real exchange...
    const w1 = new Wire(await t.net.dial(t.server.addrs.agents!));
    await w1.send({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 1,
      authMethod: 1,
      name: "office",
      software: "t",
    });
    const ch = await w1.expect("CHALLENGE");
    const proof = await tokenCredential(AGENT_TOKEN).prove(
      transcript("agent", ch.version, ch.nonce, "office"),
    );
    await w1.send({ type: "AUTH", proof });
    await w1.expect("WELCOME");
    w1.conn.close();
    // ...and replay its AUTH on a new connection.
    const w2 = new Wire(await t.net.dial(t.server.addrs.agents!));
    await w2.send({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 1,
      authMethod: 1,
      name: "office",
      software: "t",
    });
    await w2.expect("CHALLENGE");
    await w2.send({ type: "AUTH", proof });
    const msg = await w2.recv();
    assert.equal(msg?.type, "ERROR");
    assert.equal(msg?.type === "ERROR" && msg.code, 9);
    w2.conn.close();
  } finally {
    await t.close();
  }
});

test(`${rt}: pool serves a CONNECT right after connect, a burst of 200, then shrinks`, async () => {
  // Dialed pool connections: a link's pool rests at pool_max (link_agent_test).
  const t = await tunnel({ agent: { link: false } });
  const echo = await echoTarget(t.net);
  try {
    const first = await socksTo(t, echo.addr.port);
    assert.equal(first.reply, 0);
    first.conn.close();
    const burst = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const s = await socksTo(t, echo.addr.port);
      if (s.reply !== 0) {
        s.conn.close();
        return false;
      }
      await s.conn.write(Uint8Array.of(i & 0xff));
      const b = await s.conn.read();
      s.conn.close();
      return b !== null && b[0] === (i & 0xff);
    }));
    assert.equal(burst.filter(Boolean).length, 200, "every CONNECT of the burst succeeded");
    // Pool grew for the burst, then shrinks back to pool.min (2) once idle.
    assert.ok(await until(() => idle(t.server.metrics.render(), "office") > 2, 3000), "pool grew");
    assert.ok(
      await until(() => idle(t.server.metrics.render(), "office") === 2, 8000),
      "pool shrank back to min",
    );
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: a silent agent is dropped for its heartbeat timeout`, async () => {
  const t = await tunnel({ startAgent: false });
  try {
    // Authenticate by hand, then never answer PING.
    const w = new Wire(await t.net.dial(t.server.addrs.agents!));
    await w.send({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 1,
      authMethod: 1,
      name: "office",
      software: "t",
    });
    const ch = await w.expect("CHALLENGE");
    await w.send({
      type: "AUTH",
      proof: await tokenCredential(AGENT_TOKEN).prove(transcript("agent", 1, ch.nonce, "office")),
    });
    await w.expect("WELCOME");
    await w.send({ type: "ANNOUNCE", rules: parseRule("*") });
    assert.equal(t.server.health().agents, 1);
    assert.ok(await until(() => t.server.health().agents === 0, 10_000), "session dropped");
    assert.ok(t.logs.some((l) => l.includes("agent heartbeat timeout")), t.logs.join("\n"));
    const r = await socksTo(t, 80);
    assert.equal(r.reply, Status.host_unreachable);
    r.conn.close();
    w.conn.close();
  } finally {
    await t.close();
  }
});

test(`${rt}: agent keeps its id and a second session replaces the first`, async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  const { agent: second } = testAgent(t.net, t.server.addrs.agents!, "office");
  try {
    const id1 = t.agent.session!.agentId;
    second.start();
    const s2 = await second.connected();
    assert.equal(s2.agentId, id1, "same name, same id");
    assert.equal(t.server.health().agents, 1, "no silent duplicate");
    await second.stop();
    // The first agent reconnects (it was replaced) and keeps the id.
    assert.ok(await until(() => t.server.health().agents === 1, 5000));
    assert.ok(
      await until(() => t.agent.session !== undefined && t.agent.session.agentId === id1, 5000),
    );
    const r = await socksTo(t, echo.addr.port);
    assert.equal(r.reply, 0);
    r.conn.close();
  } finally {
    echo.close();
    await second.stop();
    await t.close();
  }
});
