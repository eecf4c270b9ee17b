/**
 * Regression tests for the attacker's review (issue "Hardening"): each test
 * failed before its fix. Real server, agent and client proxy on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenCredential } from "../src/auth.ts";
import { connectThrough } from "../src/client.ts";
import { encode } from "../src/encode.ts";
import { targetOf } from "../src/ip.ts";
import { Status, type Target } from "../src/messages.ts";
import type { Addr, Conn, Net } from "../src/net.ts";
import {
  ALICE_TOKEN,
  clientProxy,
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
const dom = (host: string, port: number): Target => ({ type: "domain", host, port });

/** Idle pool connections of `agent`, from /metrics. */
function idle(metrics: string, agent = "office"): number {
  const m = new RegExp(`burrow_pool_idle\\{agent="${agent}"\\} (\\d+)`).exec(metrics);
  return m ? Number(m[1]) : -1;
}

/** SOCKS5 CONNECT; returns the reply code (null: closed without one) and closes. */
async function reply(
  net: Net,
  proxy: Addr,
  user: string,
  pass: string,
  target: Target,
): Promise<number | null> {
  const s = await socks(net, proxy, user, pass, target);
  s.conn.close();
  return s.reply;
}

/** Bytes the peer sends until it closes, after writing `bytes` (and FIN when `end`). */
async function exchange(net: Net, addr: Addr, bytes: number[], end = false): Promise<Uint8Array> {
  const c = await net.dial(addr);
  try {
    await c.write(Uint8Array.from(bytes));
    if (end) await c.end();
    return await readAll(c);
  } finally {
    c.close();
  }
}

test(`${rt}: a NUL in a domain target is refused by the server, the client proxy and the agent`, async () => {
  const t = await tunnel({
    tls: true,
    allow: ["*.corp:*"],
    config: { grants: [{ client: "alice", agent: "office", targets: ["*.corp:*"] }] },
  });
  const trip = await tripwire(t.net);
  const proxy = await clientProxy(t);
  try {
    for (
      const host of [
        "127.0.0.1\0.corp",
        "localhost\0.corp",
        "127.0.0.1%00.corp",
        "a b.corp",
        "bücher.corp",
        "127.1",
      ]
    ) {
      const target = dom(host, trip.addr.port);
      assert.equal(
        await reply(t.net, t.socks, "alice", ALICE_TOKEN, target),
        Status.not_allowed,
        `SOCKS ${JSON.stringify(host)}`,
      );
      assert.equal(
        await reply(t.net, proxy.addr!, "", "", target),
        Status.not_allowed,
        `client proxy ${JSON.stringify(host)}`,
      );
    }
    assert.ok(
      t.logs.some((l) => l.includes("is not a valid host name") && l.includes("\\u0000")),
      "logged, escaped",
    );
    assert.equal(trip.hits(), 0, "nothing was dialed");
  } finally {
    await proxy.stop();
    trip.close();
    await t.close();
  }
});

test(`${rt}: the agent refuses hostile names and mapped addresses even when the server sends them`, async () => {
  const net = await runtimeNet();
  const trip = await tripwire(net);
  const server = await lyingServer(net, ["*.corp:*", "[::/0]:*"]);
  try {
    const targets: Target[] = [
      dom("127.0.0.1\0.corp", trip.addr.port),
      dom("localhost\0.corp", trip.addr.port),
      { type: "ipv6", host: "::ffff:127.0.0.1", port: trip.addr.port },
      dom("::ffff:127.0.0.1", trip.addr.port),
    ];
    for (const target of targets) {
      assert.equal(
        (await server.open(target)).status,
        Status.not_allowed,
        JSON.stringify(target.host),
      );
    }
    assert.equal(trip.hits(), 0);
  } finally {
    await server.close();
    trip.close();
  }
});

test(`${rt}: IPv6 rules do not reach IPv4 through mapped addresses; IPv4 rules do`, async () => {
  const trip = await tripwire(await runtimeNet());
  const t6 = await tunnel({
    allow: ["[::/0]:*"],
    config: { grants: [{ client: "alice", agent: "office", targets: ["[::/0]:*"] }] },
  });
  try {
    const mapped: Target = { type: "ipv6", host: "::ffff:127.0.0.1", port: trip.addr.port };
    assert.equal(await reply(t6.net, t6.socks, "alice", ALICE_TOKEN, mapped), Status.not_allowed);
    assert.equal(trip.hits(), 0);
  } finally {
    trip.close();
    await t6.close();
  }
  const t4 = await tunnel({
    allow: ["127.0.0.0/8:*"],
    config: { grants: [{ client: "alice", agent: "office", targets: ["127.0.0.0/8:*"] }] },
  });
  const echo = await echoTarget(t4.net);
  try {
    const s = await socks(t4.net, t4.socks, "alice", ALICE_TOKEN, {
      type: "ipv6",
      host: "::ffff:127.0.0.1",
      port: echo.addr.port,
    });
    assert.equal(s.reply, Status.succeeded);
    await s.conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode((await s.conn.read())!), "ping");
    s.conn.close();
  } finally {
    echo.close();
    await t4.close();
  }
});

test(`${rt}: pool connections lost before their hello are asked for again (no pool leak)`, async () => {
  const t = await tunnel({
    config: {
      limits: { auth_failures_per_minute: 3, auth_block: "1s" },
      pool: { min: 2, max: 8, wait: "2s", idle: "600ms", open_timeout: "800ms" },
    },
    agent: { link: false }, // dialed pool connections, each with its hello
  });
  const echo = await echoTarget(t.net);
  try {
    assert.ok(await until(() => idle(t.server.metrics.render()) === 2), "pool filled");
    // Three bad agent logins from 127.0.0.1 block the agent port for that
    // address: the agent's pool connections are closed before their hello.
    for (let i = 0; i < 3; i++) {
      const { agent } = testAgent(t.net, t.server.addrs.agents!, "lab", {
        credential: tokenCredential("wrong-token-123"),
      });
      agent.start();
      await until(
        () => t.server.metrics.get("burrow_auth_failures_total", { role: "agent" }) > i,
        3000,
      );
      await agent.stop();
    }
    const target = targetOf("127.0.0.1", echo.addr.port);
    // Use up the pool while the block lasts.
    await Promise.all(
      Array.from({ length: 4 }, () => reply(t.net, t.socks, "alice", ALICE_TOKEN, target)),
    );
    // Once the block ends, the pool returns to its target and every stream works.
    assert.ok(
      await until(() => idle(t.server.metrics.render()) >= 2, 6000),
      "pool refilled after the block",
    );
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      if ((await reply(t.net, t.socks, "alice", ALICE_TOKEN, target)) === Status.succeeded) ok++;
    }
    assert.equal(ok, 20);
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: failed SOCKS logins block the SOCKS port only, never the agent port`, async () => {
  const t = await tunnel({
    config: {
      limits: { auth_failures_per_minute: 5, auth_block: "3s" },
      pool: { min: 2, max: 8, wait: "2s", idle: "600ms" },
    },
  });
  const echo = await echoTarget(t.net);
  try {
    for (let i = 0; i < 12; i++) {
      const s = await socks(
        t.net,
        t.socks,
        "alice",
        "wrong-password",
        targetOf("127.0.0.1", echo.addr.port),
      );
      s.conn.close();
    }
    const blocked = await socksTo(t, echo.addr.port);
    blocked.conn.close();
    assert.equal(blocked.auth, null, "the SOCKS port is blocked for 127.0.0.1");
    // Streams through the client port use (and refill) the pool over the agent port.
    const target = targetOf("127.0.0.1", echo.addr.port);
    const opts = {
      server: t.server.addrs.clients!,
      name: "alice",
      credential: tokenCredential(ALICE_TOKEN),
    };
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      const r = await connectThrough(t.net, opts, "office", target);
      if (r.ok) {
        ok++;
        r.value.conn.close();
      }
    }
    assert.equal(ok, 20);
    assert.ok(
      await until(() => idle(t.server.metrics.render()) >= 2, 3000),
      "the pool is back at its target",
    );
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: pending handshakes are capped per source and budgeted per port`, async () => {
  const t = await tunnel({
    config: { limits: { pending_handshakes: 6, pending_handshakes_per_source: 4 } },
  });
  const idleSocks: Conn[] = [];
  const lab = testAgent(t.net, t.server.addrs.agents!, "lab");
  try {
    for (let i = 0; i < 4; i++) idleSocks.push(await t.net.dial(t.socks));
    assert.ok(
      await until(() => t.server.admission.pending("socks") === 4),
      "four handshakes pending",
    );
    // A fifth from the same source is closed at once: nothing comes back.
    assert.equal((await exchange(t.net, t.socks, [5, 1, 2])).length, 0);
    assert.ok(
      t.logs.some((l) =>
        l.includes("limit=pending_handshakes_per_source") && l.includes("port=socks")
      ),
    );
    // The agent port has its own budget: another agent logs in meanwhile.
    lab.agent.start();
    await lab.agent.connected();
    assert.equal(t.server.admission.pending("agents"), 0);
  } finally {
    for (const c of idleSocks) c.close();
    await lab.agent.stop();
    await t.close();
  }
});

test(`${rt}: a token typed as the SOCKS user name is not logged`, async () => {
  const t = await tunnel();
  try {
    const secret = "Zm9vYmFyYmF6cXV4LTEyMzQ1Njc4";
    const s = await socks(t.net, t.socks, secret, "whatever-password", targetOf("127.0.0.1", 9));
    s.conn.close();
    assert.equal(s.auth, 1);
    assert.ok(await until(() => t.logs.some((l) => l.includes("socks authentication failed"))));
    const line = t.logs.find((l) => l.includes("socks authentication failed"))!;
    assert.ok(!line.includes(secret), line);
    assert.match(line, /user_bytes=28/);
    const known = await socks(
      t.net,
      t.socks,
      "alice@office",
      "wrong-password",
      targetOf("127.0.0.1", 9),
    );
    known.conn.close();
    assert.ok(
      await until(() =>
        t.logs.some((l) => l.includes("user=alice@office") && l.includes("bad token"))
      ),
    );
  } finally {
    await t.close();
  }
});

test(`${rt}: over TLS the client proxy reports every refusal as 0x02`, async () => {
  const t = await tunnel({ tls: true });
  const proxy = await clientProxy(t);
  try {
    const codes: Array<number | null> = [];
    for (let i = 0; i < 20; i++) {
      codes.push(await reply(t.net, proxy.addr!, "", "", targetOf("10.0.0.1", 80)));
    }
    assert.deepEqual(codes, Array(20).fill(Status.not_allowed));
  } finally {
    await proxy.stop();
    await t.close();
  }
});

test(`${rt}: an unknown address type gets reply 0x08 on the SOCKS port and the client proxy`, async () => {
  const t = await tunnel();
  const proxy = await clientProxy(t);
  try {
    const user = [...new TextEncoder().encode("alice")];
    const pass = [...new TextEncoder().encode(ALICE_TOKEN)];
    const viaServer = await exchange(t.net, t.socks, [
      ...[5, 1, 2],
      ...[1, user.length, ...user, pass.length, ...pass],
      ...[5, 1, 0, 9, 1, 2, 3, 4, 0, 80],
    ]);
    assert.deepEqual([...viaServer.subarray(0, 2)], [5, 2], "method selection");
    assert.deepEqual([...viaServer.subarray(2, 4)], [1, 0], "login ok");
    assert.deepEqual([...viaServer.subarray(4, 6)], [5, Status.address_type_not_supported]);
    const viaProxy = await exchange(t.net, proxy.addr!, [5, 1, 0, ...[
      5,
      1,
      0,
      9,
      1,
      2,
      3,
      4,
      0,
      80,
    ]]);
    assert.deepEqual([...viaProxy.subarray(0, 4)], [5, 0, 5, Status.address_type_not_supported]);
  } finally {
    await proxy.stop();
    await t.close();
  }
});

test(`${rt}: a frame truncated by EOF is closed without a reply (SPEC.md §3)`, async () => {
  const t = await tunnel();
  try {
    const hello = encode({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 1,
      authMethod: 1,
      name: "office",
      software: "x",
    });
    const got = await exchange(t.net, t.server.addrs.agents!, [
      ...hello.subarray(0, hello.length - 3),
    ], true);
    assert.equal(got.length, 0, "no ERROR frame");
    assert.ok(await until(() => t.logs.some((l) => l.includes("truncated"))));
  } finally {
    await t.close();
  }
});

test(`${rt}: --plain against a TLS server says that the server speaks TLS`, async () => {
  const t = await tunnel({ tls: true });
  const plain = testAgent(t.net, t.server.addrs.agents!, "lab");
  try {
    plain.agent.start();
    assert.ok(
      await until(() => plain.lines.some((l) => /speaks TLS, drop --plain/.test(l)), 5000),
      plain.lines.join("\n"),
    );
  } finally {
    await plain.agent.stop();
    await t.close();
  }
});
