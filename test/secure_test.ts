/**
 * Credentials and limits: Ed25519 agents, replay, revocation by reload, the
 * client proxy and its policy, no secret on the wire, slow-loris and
 * half-open handshakes, rate limits.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { ed25519Credential, generateKeyPair, toBase64, tokenCredential } from "../src/auth.ts";
import { ClientProxy, connectThrough } from "../src/client.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { targetOf } from "../src/ip.ts";
import { Status } from "../src/messages.ts";
import { deadline } from "../src/time.ts";
import type { Conn } from "../src/net.ts";
import { Wire } from "../src/wire.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  BOB_TOKEN,
  echoTarget,
  memoryLogger,
  readAll,
  recorder,
  runtime,
  socks,
  socksTo,
  testAgent,
  tripwire,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** The first whole frame of `type` in `bytes` (BRRW magic, type at 5, length at 8). */
function frameOf(bytes: Uint8Array, type: number): Uint8Array | undefined {
  for (let i = 0; i + 12 <= bytes.length; i++) {
    if (
      bytes[i] === 0x42 && bytes[i + 1] === 0x52 && bytes[i + 2] === 0x52 &&
      bytes[i + 3] === 0x57 && bytes[i + 5] === type
    ) {
      const len = new DataView(bytes.buffer, bytes.byteOffset + i + 8, 4).getUint32(0);
      return i + 12 + len <= bytes.length ? bytes.slice(i, i + 12 + len) : undefined;
    }
  }
  return undefined;
}

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function secretForms(secret: string): Uint8Array[] {
  const raw = new TextEncoder().encode(secret);
  const hex = Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
  return [secret, hex, hex.toUpperCase(), toBase64(raw), toBase64(raw).replace(/=+$/, "")]
    .map((s) => new TextEncoder().encode(s))
    .concat([raw]);
}

test(`${rt}: an Ed25519 agent authenticates with only its public key on the server`, async () => {
  const kp = await generateKeyPair();
  const t = await tunnel({
    config: {
      agents: [{ name: "office", public_key: kp.publicKey }, { name: "lab", token: AGENT_TOKEN }],
    },
    agent: { credential: ed25519Credential(kp.privateKey) },
  });
  const echo = await echoTarget(t.net);
  try {
    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, 0);
    await s.conn.write(Uint8Array.of(42));
    assert.deepEqual([...(await s.conn.read())!], [42]);
    s.conn.close();
    // A different key is refused.
    const other = await generateKeyPair();
    const { agent: wrong, lines } = testAgent(t.net, t.server.addrs.agents!, "office", {
      credential: ed25519Credential(other.privateKey),
      backoffBaseMs: 5000,
    });
    wrong.start();
    assert.ok(await until(() => lines.some((l) => l.includes("server refused our credentials"))));
    await wrong.stop();
    // So is a name the server does not know.
    const { agent: ghost, lines: lines2 } = testAgent(t.net, t.server.addrs.agents!, "ghost", {
      backoffBaseMs: 5000,
    });
    ghost.start();
    assert.ok(await until(() => lines2.some((l) => l.includes("server refused our credentials"))));
    await ghost.stop();
    assert.ok(
      t.logs.some((l) => l.includes("authentication failed") && l.includes("unknown name")),
    );
    assert.equal(t.server.health().agents, 1);
  } finally {
    echo.close();
    await t.close();
  }
});

for (
  const [name, type, link] of [["POOL_HELLO", 0x20, false], ["LINK_HELLO", 0x23, true]] as const
) {
  test(`${rt}: a recorded ${name} cannot be replayed`, async () => {
    const t = await tunnel({ startAgent: false });
    const rec = await recorder(t.net, t.server.addrs.agents!);
    const { agent } = testAgent(t.net, rec.addr, "office", { link });
    try {
      agent.start();
      await agent.connected();
      assert.ok(await until(() => agent.poolSize >= 2));
      // Find the hello frame in the recording and replay it verbatim.
      assert.ok(await until(() => frameOf(rec.bytes(), type) !== undefined), `recorded a ${name}`);
      const c = await t.net.dial(t.server.addrs.agents!);
      await c.write(frameOf(rec.bytes(), type)!);
      const msg = await new Wire(c).recv();
      assert.equal(msg?.type, "ERROR");
      assert.equal(msg?.type === "ERROR" && msg.code, 12, "replayed");
      c.close();
    } finally {
      await agent.stop();
      rec.close();
      await t.close();
    }
  });
}

test(`${rt}: no secret crosses the wire on plain TCP (agent and client proxy)`, async () => {
  const t = await tunnel({ startAgent: false });
  const echo = await echoTarget(t.net);
  const recA = await recorder(t.net, t.server.addrs.agents!);
  const recC = await recorder(t.net, t.server.addrs.clients!);
  const { agent } = testAgent(t.net, recA.addr, "office");
  try {
    agent.start();
    await agent.connected();
    const r = await connectThrough(
      t.net,
      { server: recC.addr, name: "alice", credential: tokenCredential(ALICE_TOKEN) },
      "office",
      targetOf("127.0.0.1", echo.addr.port),
    );
    assert.ok(r.ok, r.ok ? "" : r.error.message);
    await r.value.conn.write(new TextEncoder().encode("payload"));
    assert.equal(new TextDecoder().decode((await r.value.conn.read())!), "payload");
    r.value.conn.close();
    // Everything of the stream has crossed the recorders once the server has ended it.
    assert.ok(await until(() => t.server.router.streams.size === 0));
    const wire = new Uint8Array([...recA.bytes(), ...recC.bytes()]);
    assert.ok(wire.length > 200, "something was recorded");
    assert.ok(contains(wire, new TextEncoder().encode("payload")), "the recorder sees the data");
    for (const secret of [AGENT_TOKEN, ALICE_TOKEN]) {
      for (const form of secretForms(secret)) {
        assert.ok(
          !contains(wire, form),
          `secret form on the wire: ${new TextDecoder().decode(form)}`,
        );
      }
    }
  } finally {
    await agent.stop();
    recA.close();
    recC.close();
    echo.close();
    await t.close();
  }
});

test(`${rt}: revoking an agent by reload ends it; other agents' live streams continue`, async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  const { agent: lab, lines } = testAgent(t.net, t.server.addrs.agents!, "lab");
  try {
    lab.start();
    await lab.connected();
    const live = await socksTo(t, echo.addr.port);
    assert.equal(live.reply, 0);
    // Revoke "lab" (drop it from the config); alice's stream goes through "office" and must survive.
    const cfg = t.server.config;
    const next = parseServerConfig(
      JSON.stringify({
        listen: { agents: "127.0.0.1:0" },
        heartbeat: { interval: "200ms", timeout: "1s" },
        pool: { min: 2, max: 32, wait: "2s", idle: "600ms" },
        agents: [{ name: "office", token: AGENT_TOKEN }],
        clients: [{ name: "alice", token: ALICE_TOKEN }],
        grants: [{ client: "alice", agent: "office", targets: ["127.0.0.1:*", "localhost:*"] }],
      }),
      "(reloaded)",
    );
    next.listen = cfg.listen;
    t.server.reload(next);
    assert.ok(
      await until(() => lines.some((l) => l.includes("server refused our credentials"))),
      "lab refused after reload",
    );
    await live.conn.write(new TextEncoder().encode("still alive"));
    assert.equal(new TextDecoder().decode((await live.conn.read())!), "still alive");
    live.conn.close();
    assert.equal(t.server.health().agents, 1);
    // bob no longer exists: refused at authentication.
    const b = await socks(
      t.net,
      t.socks,
      "bob@office",
      BOB_TOKEN,
      targetOf("127.0.0.1", echo.addr.port),
    );
    assert.equal(b.auth, 1);
    b.conn.close();
  } finally {
    await lab.stop();
    echo.close();
    await t.close();
  }
});

test(`${rt}: the client proxy relays and gets the same policy as the SOCKS5 port`, async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  const wire = await tripwire(t.net);
  const { log } = memoryLogger();
  const proxies: ClientProxy[] = [];
  const proxy = async (name: string, token: string, agent = "") => {
    const p = new ClientProxy(t.net, {
      listen: { host: "127.0.0.1", port: 0 },
      server: t.server.addrs.clients!,
      name,
      credential: tokenCredential(token),
      agent,
    }, log);
    await p.start();
    proxies.push(p);
    return p.addr!;
  };
  try {
    const alice = await proxy("alice", ALICE_TOKEN);
    // No authentication locally; the agent is the one alice is granted.
    const ok = await socks(t.net, alice, "", "", targetOf("127.0.0.1", echo.addr.port));
    assert.equal(ok.reply, 0);
    await ok.conn.write(Uint8Array.of(7));
    assert.deepEqual([...(await ok.conn.read())!], [7]);
    ok.conn.close();
    const cases: Array<[string, string, string, string, number]> = [
      ["unknown client", "mallory", ALICE_TOKEN, "", Status.not_allowed],
      ["wrong token", "alice", "wrong-token-123", "", Status.not_allowed],
      ["client with two agents names none", "bob", BOB_TOKEN, "", Status.not_allowed],
      ["not granted the agent", "alice", ALICE_TOKEN, "lab", Status.not_allowed],
      ["target outside the grant", "bob", BOB_TOKEN, "office", Status.not_allowed],
    ];
    for (const [why, name, token, agent, want] of cases) {
      const p = await proxy(name, token);
      // A local SOCKS5 user name names the agent; none means the default.
      const r = await socks(t.net, p, agent, "x", targetOf("127.0.0.1", wire.addr.port));
      assert.equal(r.reply, want, why);
      r.conn.close();
    }
    const off = await proxy("bob", BOB_TOKEN);
    const r = await socks(t.net, off, "lab", "x", targetOf("127.0.0.1", 80));
    assert.equal(r.reply, Status.host_unreachable, "agent offline");
    r.conn.close();
    assert.equal(wire.hits(), 0);
  } finally {
    for (const p of proxies) await p.stop();
    wire.close();
    echo.close();
    await t.close();
  }
});

test(`${rt}: slow-loris and half-open handshakes are closed at the handshake timeout; fds return to baseline`, async () => {
  const t = await tunnel({ config: { handshake_timeout: "400ms" } });
  try {
    assert.ok(await until(() => t.agent.poolSize >= 2), "the agent's pool is up");
    const base = fdCount();
    const ports = [t.socks, t.server.addrs.agents!, t.server.addrs.clients!];
    const conns: Conn[] = [];
    for (const p of ports) {
      conns.push(await t.net.dial(p)); // half-open: sends nothing
      conns.push(await t.net.dial(p)); // slow loris: a byte at a time
    }
    const drip = setInterval(() => {
      for (let i = 1; i < conns.length; i += 2) conns[i]!.write(Uint8Array.of(5)).catch(() => {});
    }, 100);
    try {
      // The server closes each (how soon: bench/timeouts.ts); the deadline only ends a hang.
      const ends = conns.map((c) => readAll(c).catch(() => new Uint8Array(0)));
      await deadline(Promise.all(ends), 20_000, "closing the handshakes");
    } finally {
      clearInterval(drip);
      for (const c of conns) c.close();
    }
    assert.ok(t.logs.some((l) => l.includes("limit=handshake_timeout")));
    assert.ok(t.server.metrics.get("burrow_limit_hits_total", { limit: "handshake_timeout" }) >= 6);
    assert.ok(await until(() => fdCount() <= base, 3000), `fds ${fdCount()} > baseline ${base}`);
  } finally {
    await t.close();
  }
});

test(`${rt}: failed authentications are rate-limited per source address`, async () => {
  const t = await tunnel({ config: { limits: { auth_failures_per_minute: 3, auth_block: "2s" } } });
  const echo = await echoTarget(t.net);
  try {
    for (let i = 0; i < 3; i++) {
      const r = await socks(
        t.net,
        t.socks,
        "alice",
        "bad-token-" + i,
        targetOf("127.0.0.1", echo.addr.port),
      );
      assert.equal(r.auth, 1);
      r.conn.close();
    }
    // Blocked now, even with the right token.
    const r = await socksTo(t, echo.addr.port);
    assert.equal(r.reply, null);
    r.conn.close();
    assert.ok(t.logs.some((l) => l.includes("limit=auth_failures")));
    assert.ok(!t.logs.some((l) => l.includes("bad-token-")), "a tried token was logged");
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: stream and handshake limits refuse with a logged, counted reason`, async () => {
  const t = await tunnel({ config: { limits: { streams_per_client: 1, pending_handshakes: 3 } } });
  const echo = await echoTarget(t.net);
  try {
    const one = await socksTo(t, echo.addr.port);
    assert.equal(one.reply, 0);
    const two = await socksTo(t, echo.addr.port);
    assert.equal(two.reply, Status.general_failure);
    two.conn.close();
    one.conn.close();
    assert.equal(
      t.server.metrics.get("burrow_limit_hits_total", { limit: "streams_per_client" }),
      1,
    );
    // Three idle handshakes fill the pending limit; a fourth is closed at once.
    const idle = [await t.net.dial(t.socks), await t.net.dial(t.socks), await t.net.dial(t.socks)];
    assert.ok(await until(() => t.server.admission.pending("socks") === 3));
    const fourth = await t.net.dial(t.socks);
    assert.equal((await readAll(fourth)).length, 0);
    fourth.close();
    for (const c of idle) c.close();
    assert.ok(t.logs.some((l) => l.includes("limit=pending_handshakes")));
    // Once they are gone, service resumes.
    assert.ok(
      await until(() =>
        t.server.metrics.get("burrow_limit_hits_total", { limit: "pending_handshakes" }) >= 1
      ),
    );
    assert.ok(await until(() => t.server.admission.pending("socks") === 0));
    const again = await socksTo(t, echo.addr.port);
    assert.equal(again.reply, 0);
    again.conn.close();
  } finally {
    echo.close();
    await t.close();
  }
});
