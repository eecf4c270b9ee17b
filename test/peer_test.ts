/**
 * Streams forwarded between servers (SPEC.md §2.6): three servers of one
 * fleet, agents on two of them each (servers_per_agent 2); a client on any
 * server reaches any agent, over a peer link when its server holds no
 * session of the agent. Peer links are TLS pinned to the fleet's
 * certificates and proved with the fleet secret; the fleet view and its
 * actions reach the server that holds the session. The servers share a real
 * PostgreSQL 15 (test/pg.ts) as their store and find each other in its
 * presence.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SocksClient } from "socks";
import { restartOnly } from "../src/cli/server.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { encode } from "../src/encode.ts";
import { ConfigError } from "../src/errors.ts";
import { httpApp } from "../src/http/mod.ts";
import { targetOf } from "../src/ip.ts";
import type { Net } from "../src/net.ts";
import type { Server } from "../src/server/mod.ts";
import { ADMIN, fleetAgent, known, type Member, SECRET, startFleet } from "./fleet.ts";
import { type Pg, startPg } from "./pg.ts";
import { ALICE_TOKEN, echoTarget, readAll, runtime, runtimeNet, socks, until } from "./helpers.ts";

const rt = runtime;
let pg: Pg;

before(async () => {
  pg = await startPg(await runtimeNet());
});
after(async () => {
  await pg?.close();
});

const enc = new TextEncoder();
const dec = new TextDecoder();

const holds = (s: Server, agent: string) =>
  s.agents.group(agent).some((x) => x.announced && !x.closed);

/** One stream through `via` to the echo target as `alice@agent`: what came back before EOF. */
async function echoOnce(net: Net, via: Server, agent: string, port: number, text: string) {
  const s = await socks(
    net,
    via.addrs.socks!,
    `alice@${agent}`,
    ALICE_TOKEN,
    targetOf("127.0.0.1", port),
  );
  try {
    if (s.reply !== 0) return { reply: s.reply, back: "" };
    await s.conn.write(enc.encode(text));
    await s.conn.end(); // half-close: the echo still comes back, then EOF
    const rest = await readAll(s.conn);
    return { reply: 0, back: dec.decode(s.rest) + dec.decode(rest) };
  } finally {
    s.conn.close();
  }
}

async function fleetOfThree(net: Net) {
  const f = await startFleet(net, 3, { pg: pg.url });
  const servers = f.members.map((m) => m.server);
  const agents = ["office", "lab"].map((a) => fleetAgent(net, a, servers, f.pins));
  const ready = await until(
    () => ["office", "lab"].every((a) => servers.filter((s) => holds(s, a)).length === 2),
    15_000,
  ) && await known(f.members, "office", 2) && await known(f.members, "lab", 2);
  if (!ready) {
    for (const a of agents) await a.fleet.stop();
    await f.close();
    throw new Error("agents did not reach two servers each");
  }
  return {
    ...f,
    servers,
    async closeAll() {
      for (const a of agents) await a.fleet.stop();
      await f.close();
    },
  };
}

test(`${rt}: peers: clients on every server reach every agent; forwarded streams half-close`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const f = await fleetOfThree(net);
  try {
    for (const m of f.members) {
      for (const agent of ["office", "lab"]) {
        const text = `hello ${agent} via ${m.name} `.repeat(2000); // ~50 KB: many DATA frames
        const r = await echoOnce(net, m.server, agent, echo.addr.port, text);
        assert.equal(r.reply, 0, `${agent} via ${m.name}:\n${m.lines.slice(-5).join("\n")}`);
        assert.equal(r.back, text, `${agent} via ${m.name}: the echo, then EOF`);
      }
    }
    // Each agent is on two servers: the third forwarded its streams, once per link.
    for (const agent of ["office", "lab"]) {
      const other = f.members.find((m) => !holds(m.server, agent))!;
      assert.match(other.lines.join("\n"), /peer link up.*role=dialer/);
      assert.match(other.lines.join("\n"), new RegExp(`stream ended.*agent=${agent}`));
    }
    // The holder decided it again and relayed it: its audit line names the peer.
    assert.ok(
      f.members.some((m) => m.lines.some((l) => /stream ended/.test(l) && /via=[0-9a-z]+/.test(l))),
      "a holder's audit line says via which server",
    );
    // And the npm socks client, through a server without the agent.
    const other = f.members.find((m) => !holds(m.server, "office"))!;
    const { socket } = await SocksClient.createConnection({
      proxy: {
        host: "127.0.0.1",
        port: other.server.addrs.socks!.port,
        type: 5,
        userId: "alice@office",
        password: ALICE_TOKEN,
      },
      command: "connect",
      destination: { host: "127.0.0.1", port: echo.addr.port },
      timeout: 10000,
    });
    const got = new Promise<string>((resolve) => {
      let text = "";
      socket.on("data", (d: Uint8Array) => text += dec.decode(d));
      socket.on("end", () => resolve(text));
    });
    socket.end("ping through a peer");
    assert.equal(await got, "ping through a peer");
    socket.destroy();
  } finally {
    await f.closeAll();
    echo.close();
  }
});

test(`${rt}: peers: a holder stops; CONNECTs from every server still reach its agents`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const f = await fleetOfThree(net);
  try {
    const holder = f.members.find((m) => holds(m.server, "office"))!;
    await f.stop(holder);
    for (const m of f.members.filter((x) => x.up)) {
      for (let i = 0; i < 5; i++) {
        const r = await echoOnce(net, m.server, "office", echo.addr.port, `after ${i}`);
        assert.equal(r.reply, 0, `office via ${m.name} after ${holder.name} stopped`);
        assert.equal(r.back, `after ${i}`);
      }
    }
  } finally {
    await f.closeAll();
    echo.close();
  }
});

/** Office on the first server only; a CONNECT for it on the second: the second's reply. */
async function fromSecond(net: Net, members: Member[], pins: string[], port: number) {
  const agent = fleetAgent(net, "office", [members[0]!.server], [pins[0]!], 1);
  try {
    assert.ok(await until(() => holds(members[0]!.server, "office"), 10_000));
    assert.ok(
      await known(members, "office", 1),
      JSON.stringify(members.map((m) => [m.name, [...m.server.store.presence.agents()]])),
    );
    return await echoOnce(net, members[1]!.server, "office", port, "x");
  } finally {
    await agent.fleet.stop();
  }
}

test(`${rt}: peers: a peer with another fleet secret is refused, and both logs say why`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const f = await startFleet(net, 2, {
    pg: pg.url,
    secret: (i) => i === 1 ? "another-secret-0123456789" : SECRET,
  });
  try {
    const r = await fromSecond(net, f.members, f.pins, echo.addr.port);
    assert.equal(r.reply, 4, "host unreachable: the holder could not be reached");
    const [s1, s2] = f.members as [Member, Member];
    assert.match(
      s1.lines.join("\n"),
      new RegExp(`peer refused.*${s2.name} proved no fleet secret of ours`),
    );
    assert.match(s2.lines.join("\n"), new RegExp(`peer link refused.*peer=${s1.name}`));
    assert.equal(echo.accepted(), 0);
  } finally {
    await f.close();
    echo.close();
  }
});

test(`${rt}: peers: a peer whose certificate is not pinned is refused before any byte`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  // The second trusts only its own certificate: the first's is not the fleet's to it.
  const f = await startFleet(net, 2, {
    pg: pg.url,
    pins: (i, all) => i === 1 ? [all[1]!] : all,
  });
  try {
    const r = await fromSecond(net, f.members, f.pins, echo.addr.port);
    assert.equal(r.reply, 4);
    const [s1, s2] = f.members as [Member, Member];
    assert.match(
      s2.lines.join("\n"),
      new RegExp(`peer refused: its certificate is not the fleet's.*peer=${s1.name}`),
    );
    assert.doesNotMatch(s1.lines.join("\n"), /peer link up/);
    assert.equal(echo.accepted(), 0);
  } finally {
    await f.close();
    echo.close();
  }
});

async function admin(server: Server, method: string, path: string) {
  const r = await httpApp(server).fetch(
    new Request(`http://127.0.0.1${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}` },
    }),
  );
  return { status: r.status, body: await r.json() as Record<string, unknown> };
}

test(`${rt}: peers: the admin API of any server shows the fleet, and DELETE acts where the session is`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const f = await fleetOfThree(net);
  try {
    const other = f.members.find((m) => !holds(m.server, "office"))!;
    const holders = f.members.filter((m) => holds(m.server, "office"));
    // A live stream on a holder, opened through the server without the agent.
    const s = await socks(
      net,
      other.server.addrs.socks!,
      "alice@office",
      ALICE_TOKEN,
      targetOf("127.0.0.1", echo.addr.port),
    );
    assert.equal(s.reply, 0);
    const { body } = await admin(other.server, "GET", "/api/v1/snapshot");
    const agents = body.agents as Array<{ name: string; server: string }>;
    assert.deepEqual(
      agents.filter((a) => a.name === "office").map((a) => a.server).sort(),
      holders.map((m) => m.name).sort(),
    );
    assert.equal(agents.filter((a) => a.name === "lab").length, 2);
    const fleet = body.fleet as { servers: string[]; unreachable: string[] };
    assert.deepEqual(fleet.servers.sort(), f.members.map((m) => m.name).sort());
    assert.deepEqual(fleet.unreachable, []);
    const streams = body.streams as Array<{ id: number; agent: string; server: string }>;
    // Both ends of the forwarded stream: on the server it came in and on the holder.
    const mine = streams.filter((x) => x.agent === "office");
    assert.equal(mine.length, 2, JSON.stringify(streams));
    assert.ok(mine.some((x) => x.server === other.name));
    const remote = mine.find((x) => x.server !== other.name)!;
    // Close it on the holder, from the server without the agent.
    const del = await admin(
      other.server,
      "DELETE",
      `/api/v1/streams/${remote.id}?server=${remote.server}`,
    );
    assert.equal(del.status, 200, JSON.stringify(del.body));
    await readAll(s.conn).catch(() => null); // the stream ended (EOF or reset)
    s.conn.close();
    // Disconnect the agent from a server that holds none of its sessions.
    const gone = await admin(other.server, "DELETE", "/api/v1/agents/office");
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.ok(
      await until(() =>
        holders.some((m) => m.lines.some((l) => /agent disconnected by admin/.test(l)))
      ),
    );
    const none = await admin(other.server, "DELETE", "/api/v1/agents/nobody");
    assert.equal(none.status, 404);
  } finally {
    await f.closeAll();
    echo.close();
  }
});

test("peer config: every key checked, path-precise errors", () => {
  const parse = (peer: unknown) => parseServerConfig(JSON.stringify({ peer }), "s.yaml", true);
  const pin = "AB".repeat(32);
  const ok = parse({
    listen: ":7003",
    advertise: "eu-1.internal:7003",
    token_file: "fleet.secret",
    fingerprint: pin,
  }).peer!;
  assert.equal(ok.streamsPerLink, 1024);
  assert.equal(ok.idleMs, 60_000);
  assert.deepEqual(ok.listen, { host: "0.0.0.0", port: 7003 });
  assert.equal(ok.fingerprint.length, 1);
  const base = { listen: ":7003", advertise: "a:7003", token_file: "f", fingerprint: pin };
  for (
    const [peer, re] of [
      [{ ...base, listen: undefined }, /^s\.yaml: peer\.listen: is required/],
      [{ ...base, advertise: "nope" }, /^s\.yaml: peer\.advertise: Cannot parse address/],
      [{ ...base, fingerprint: undefined }, /^s\.yaml: peer: needs fingerprint .* or ca/],
      [{ ...base, fingerprint: ["zz"] }, /^s\.yaml: peer\.fingerprint\[0\]: must be a SHA-256/],
      [{ ...base, streams_per_link: 0 }, /^s\.yaml: peer\.streams_per_link: must be an integer/],
      [{ ...base, name: "a" }, /^s\.yaml: peer\.name: unknown key/],
      [{ ...base, secret: "x" }, /^s\.yaml: peer\.secret: unknown key/],
    ] as const
  ) {
    assert.throws(
      () => parse(peer),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      String(re),
    );
  }
});

test(`${rt}: peers: garbage or a silent connection on the peer port is closed, and logged`, async () => {
  const net = await runtimeNet();
  const f = await startFleet(net, 1, { pg: pg.url });
  const [s1] = f.members;
  try {
    const at = s1!.server.fleet!.addr;
    const tls = { fingerprint: f.pins[0]! };
    // A TLS client that sends what no peer sends.
    const junk = await net.dial({ ...at, tls });
    await junk.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await readAll(junk).catch(() => null); // closed by the server
    junk.close();
    assert.ok(await until(() => s1!.lines.some((l) => /peer refused/.test(l))));
    // A CLIENT_HELLO where a PEER_HELLO belongs: refused as unexpected.
    const wrong = await net.dial({ ...at, tls });
    await wrong.write(
      encode({
        type: "CLIENT_HELLO",
        minVersion: 1,
        maxVersion: 1,
        authMethod: 1,
        name: "alice",
        software: "x",
      }),
    );
    await readAll(wrong).catch(() => null);
    wrong.close();
    assert.ok(
      await until(() =>
        s1!.lines.some((l) => /peer refused.*Expected PEER_HELLO, got CLIENT_HELLO/.test(l))
      ),
    );
    assert.ok(!s1!.lines.some((l) => /peer link up/.test(l)));
  } finally {
    await f.close();
  }
});

test(`${rt}: peers: an idle peer link is closed after peer.idle; the next CONNECT dials it again`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const f = await startFleet(net, 2, { pg: pg.url, peer: { idle: "300ms" } });
  const [s1, s2] = f.members as [Member, Member];
  const agent = fleetAgent(net, "office", [s1.server], [f.pins[0]!], 1);
  const ups = () => s2.lines.filter((l) => /peer link up.*role=dialer/.test(l)).length;
  try {
    assert.ok(await until(() => holds(s1.server, "office"), 10_000));
    assert.ok(await known(f.members, "office", 1));
    assert.equal((await echoOnce(net, s2.server, "office", echo.addr.port, "one")).back, "one");
    assert.equal((await echoOnce(net, s2.server, "office", echo.addr.port, "two")).back, "two");
    assert.equal(ups(), 1, "one link for both streams");
    assert.ok(await until(() => s2.lines.some((l) => /peer link idle, closing/.test(l)), 5000));
    assert.equal((await echoOnce(net, s2.server, "office", echo.addr.port, "three")).back, "three");
    assert.equal(ups(), 2, "dialed again after it was closed");
  } finally {
    await agent.fleet.stop();
    await f.close();
    echo.close();
  }
});

test(`${rt}: peers: peer.streams_per_link bounds the streams on a link; one more waits, then is refused`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const f = await startFleet(net, 2, {
    pg: pg.url,
    peer: { streams_per_link: 1 },
    config: { pool: { min: 2, max: 32, wait: "500ms", idle: "600ms" } },
  });
  const [s1, s2] = f.members as [Member, Member];
  const agent = fleetAgent(net, "office", [s1.server], [f.pins[0]!], 1);
  try {
    assert.ok(await until(() => holds(s1.server, "office"), 10_000));
    assert.ok(await known(f.members, "office", 1));
    const target = targetOf("127.0.0.1", echo.addr.port);
    const first = await socks(net, s2.server.addrs.socks!, "alice@office", ALICE_TOKEN, target);
    assert.equal(first.reply, 0);
    const second = await socks(net, s2.server.addrs.socks!, "alice@office", ALICE_TOKEN, target);
    assert.equal(second.reply, 4, "no stream granted on the link within pool.wait");
    second.conn.close();
    assert.match(s2.lines.join("\n"), /limit hit.*limit=peer_streams_per_link/);
    // The first goes on; once it ends, its place is granted again.
    await first.conn.write(enc.encode("still here"));
    assert.equal(dec.decode((await first.conn.read())!), "still here");
    first.conn.close();
    let third = { reply: 4 as number | null, back: "" };
    for (let i = 0; i < 50 && third.reply !== 0; i++) {
      third = await echoOnce(net, s2.server, "office", echo.addr.port, "again");
    }
    assert.equal(third.back, "again");
  } finally {
    await agent.fleet.stop();
    await f.close();
    echo.close();
  }
});

test("peer config: a change of peer: takes a restart (a reload keeps the one in force)", () => {
  const cfg = (idle: string) =>
    parseServerConfig(
      JSON.stringify({
        peer: {
          listen: ":7003",
          advertise: "a:7003",
          token_file: "f",
          fingerprint: "AB".repeat(32),
          idle,
        },
      }),
      "s.yaml",
    );
  assert.deepEqual(restartOnly(cfg("60s"), cfg("60s")), []);
  assert.deepEqual(restartOnly(cfg("60s"), cfg("5s")), ["peer"]);
});
