/**
 * Servers sharing a PostgreSQL store (README "Shared state: the store"), on
 * a real PostgreSQL 15 (test/pg.ts): three servers starting together, a
 * revocation on one refusing the token on another, agents' presence, the
 * signing keys encrypted in the table, a missing or wrong store key, and
 * PostgreSQL stopped and started under a running stream.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fromBase64, toHex } from "../src/auth.ts";
import type { Host } from "../src/cli/mod.ts";
import { startServer } from "../src/cli/server.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { ConfigError } from "../src/errors.ts";
import { httpApp } from "../src/http/mod.ts";
import { targetOf } from "../src/ip.ts";
import type { Conn, Net } from "../src/net.ts";
import type { Server } from "../src/server/mod.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  echoTarget,
  memoryLogger,
  runtime,
  runtimeNet,
  socks,
  testAgent,
  until,
} from "./helpers.ts";
import { type Pg, startPg } from "./pg.ts";

const ADMIN = "admin-token-0123456789abcdef";
const STORE_KEY = "5a".repeat(32);
let pg: Pg;
let net: Net;
let host: Host;

before(async () => {
  net = await runtimeNet();
  host = (await import(`../runtimes/${runtime}/main.ts`) as { host: Host }).host;
  pg = await startPg(net);
});
after(async () => {
  await pg?.close();
});

function config(extra: Record<string, unknown> = {}) {
  return {
    listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "", http: "" },
    heartbeat: { interval: "200ms", timeout: "1s" },
    pool: { min: 1, max: 8, wait: "2s", idle: "600ms" },
    admin: { token: ADMIN },
    store: { postgres: pg.url },
    agents: [{ name: "office", token: AGENT_TOKEN }],
    clients: [{ name: "alice", token: ALICE_TOKEN }, { name: "ci" }],
    grants: [
      { client: "alice", agent: "office", targets: ["127.0.0.1:*"] },
      { client: "ci", agent: "office", targets: ["127.0.0.1:*"] },
    ],
    ...extra,
  };
}

/** An admin API answer: the fields these tests read. */
interface Answer {
  id: string;
  token: string;
  error?: string;
  message?: string;
}

interface Member {
  server: Server;
  lines: string[];
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Answer }>;
  stop(): Promise<void>;
}

/** A server of the fleet, started as `burrow server` starts one, with `key` (null: none) in the environment. */
async function member(key: string | null = STORE_KEY): Promise<Member> {
  const { log, lines } = memoryLogger();
  const h: Host = {
    ...host,
    env: (n) => n === "BURROW_STORE_KEY" ? key ?? undefined : host.env(n),
  };
  const s = await startServer(h, parseServerConfig(JSON.stringify(config()), "(fleet)"), log);
  const app = httpApp(s.server);
  return {
    server: s.server,
    lines,
    stop: s.stop,
    async call(method, path, body) {
      const r = await app.fetch(
        new Request(`http://127.0.0.1/api/v1${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }),
      );
      return { status: r.status, body: await r.json() as Answer };
    },
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Write `text` on `conn` and read it back from the echo target. */
async function echo(conn: Conn, text: string): Promise<string> {
  await conn.write(enc.encode(text));
  let got = "";
  while (got.length < text.length) {
    const chunk = await conn.read();
    if (chunk === null) break;
    got += dec.decode(chunk);
  }
  return got;
}

test("fleet: servers start together, share tokens and presence; a revocation on one refuses the token on another within 1 s; keys are encrypted in the table", async () => {
  const fleet = await Promise.all([member(), member(), member()]);
  const [a, b, c] = fleet as [Member, Member, Member];
  const target = await echoTarget(net);
  const agent = testAgent(net, b.server.addrs.agents!, "office").agent;
  const conns: Conn[] = [];
  try {
    const migrated = fleet.flatMap((m) => m.lines).filter((l) => /schema migrated/.test(l));
    assert.equal(migrated.length, 1, "one server applied the migrations");
    assert.equal(Number(await pg.psql("SELECT count(*) FROM burrow_schema_migrations")), 1);

    // Presence: the agent's session on b is seen by a and c.
    agent.start();
    await agent.connected();
    const at = (m: Member) => m.server.store.presence.agents().get("office")?.map((p) => p.server);
    for (const m of [a, c]) {
      assert.ok(await until(() => at(m)?.[0] === b.server.store.presence.serverId, 3000));
    }
    assert.ok(await until(() => a.server.store.presence.servers().length === 3, 3000));

    // A token issued on a is good on b (as soon as b has read it).
    const issued = await a.call("POST", "/tokens", { client: "ci", ttl: "1h" });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const { id, token } = issued.body;
    assert.ok(await until(() => b.server.tokens.list().some((t) => t.id === id), 2000));
    const tgt = targetOf("127.0.0.1", target.addr.port);
    const open = await socks(net, b.server.addrs.socks!, "ci", token, tgt);
    conns.push(open.conn);
    assert.equal(open.reply, 0);
    assert.equal(await echo(open.conn, "before"), "before");

    // Revoked on a: refused on b within 1 s, and b closes its open stream.
    assert.equal((await a.call("DELETE", `/tokens/${id}`)).status, 200);
    assert.ok(await until(() => b.server.tokens.revoked(id), 1000), "b has the revocation");
    const again = await socks(net, b.server.addrs.socks!, "ci", token, tgt);
    conns.push(again.conn);
    assert.notEqual(again.auth, 0, "the revoked token is refused on b");
    assert.ok(await until(() => b.lines.some((l) => /closed by revocation/.test(l)), 2000));
    assert.ok(c.server.tokens.list().some((t) => t.id === id && t.revoked));

    // The signing key: in the table sealed, never in clear.
    const [key] = await a.server.store.tokens.keys();
    const der = toHex(fromBase64(key!.privateKey));
    const rows = await pg.psql(
      "SELECT encode(private_key, 'hex') || ' ' || row_to_json(k)::text FROM burrow_keys k",
    );
    assert.equal(rows.trim().split("\n").length, 1, "one key for the fleet");
    assert.ok(!rows.includes(der), "the private key's bytes are not in the row");
    assert.ok(!rows.includes(der.slice(-64)), "nor its 32-byte seed");
    assert.ok(!rows.includes(key!.privateKey), "nor its base64");
    assert.ok(rows.includes(key!.publicKey), "the public key is there in clear");

    // The agent leaves: its session row goes, the others see it gone.
    await agent.stop();
    assert.ok(await until(() => at(a) === undefined && at(c) === undefined, 3000));
  } finally {
    for (const x of conns) x.close();
    await agent.stop();
    target.close();
    await Promise.all(fleet.map((m) => m.stop()));
  }
});

test("fleet: without the store key, or with another, the server refuses to start", async () => {
  await assert.rejects(
    member(null),
    (e: Error) => e instanceof ConfigError && /needs the store key/.test(e.message),
  );
  await assert.rejects(
    member("11".repeat(32)),
    (e: Error) =>
      e instanceof ConfigError && /is not the one the state store's signing keys/.test(e.message),
  );
  // The CLI says it in one line.
  const dir = mkdtempSync(join(tmpdir(), "burrow-store-"));
  try {
    writeFileSync(join(dir, "server.yaml"), JSON.stringify({ ...config(), tls: "off" }));
    const p = burrow(runtime, ["server", "-c", join(dir, "server.yaml")], {
      BURROW_STORE_KEY: "",
    });
    const code = await p.exited;
    assert.equal(code, 2, p.output());
    const out = p.output().trim().split("\n");
    assert.equal(out.length, 1, p.output());
    assert.match(out[0]!, /^burrow: store\.postgres needs the store key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fleet: PostgreSQL stopped and started under a running stream", async () => {
  const [a, b] = await Promise.all([member(), member()]);
  const target = await echoTarget(net);
  const agent = testAgent(net, a.server.addrs.agents!, "office").agent;
  const conns: Conn[] = [];
  const tgt = targetOf("127.0.0.1", target.addr.port);
  try {
    agent.start();
    await agent.connected();
    const one = (await a.call("POST", "/tokens", { client: "ci", ttl: "1h" })).body;
    const two = (await a.call("POST", "/tokens", { client: "ci", ttl: "1h" })).body;
    assert.ok(await until(() => b.server.tokens.list().length >= 2, 2000));
    const open = await socks(net, a.server.addrs.socks!, "ci", one.token, tgt);
    conns.push(open.conn);
    assert.equal(open.reply, 0);
    assert.equal(await echo(open.conn, "up"), "up");

    await pg.stop();
    const down = (m: Member) => m.lines.some((l) => /state store unreachable/.test(l));
    assert.ok(await until(() => down(a) && down(b), 5000), "both servers saw the outage");
    assert.equal(await echo(open.conn, "still flowing"), "still flowing");
    // What the policy allows goes on: a new stream with a token a has in memory.
    const during = await socks(net, a.server.addrs.socks!, "ci", two.token, tgt);
    conns.push(during.conn);
    assert.equal(during.reply, 0);
    assert.equal(await echo(during.conn, "new"), "new");
    // What needs the store is refused, logged once for the whole outage.
    for (let i = 0; i < 3; i++) {
      const r = await a.call("POST", "/tokens", { client: "ci", ttl: "1h" });
      assert.equal(r.status, 503);
      assert.equal(r.body.error, "store_unavailable");
      assert.match(r.body.message!, /cannot issue a token: the state store is unreachable/);
    }
    assert.equal((await b.call("DELETE", `/tokens/${two.id}`)).status, 503);
    assert.equal(a.lines.filter((l) => /state store unreachable/.test(l)).length, 1);
    assert.equal(b.server.store.up, false);

    await pg.start();
    const back = (m: Member) => m.lines.some((l) => /state store reachable again/.test(l));
    assert.ok(await until(() => back(a) && back(b), 10000), "both servers reconnected");
    assert.equal(await echo(open.conn, "after"), "after");
    // A revocation made on b after the restart reaches a.
    assert.equal((await b.call("DELETE", `/tokens/${one.id}`)).status, 200);
    assert.ok(await until(() => a.server.tokens.revoked(one.id), 1000));
    assert.ok(await until(() => a.lines.some((l) => /closed by revocation/.test(l)), 2000));

    // A change a was never told of (no NOTIFY) while its connections were cut: read on reconnect.
    await pg.psql(`UPDATE burrow_tokens SET revoked = true WHERE id = '${two.id}';
      SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
      WHERE application_name = 'burrow ${a.server.store.presence.serverId}'`);
    assert.ok(await until(() => a.server.tokens.revoked(two.id), 5000), "re-read after reconnect");
    assert.ok(!b.server.tokens.revoked(two.id), "b was not cut off and not told");

    // The audit lines are in the table: both streams closed by revocations on a.
    const audited = () =>
      pg.psql(`SELECT count(*) FROM burrow_audit WHERE msg = 'stream ended'
        AND fields->>'result' = 'closed by revocation'
        AND server_id = '${a.server.store.presence.serverId}'`).then(Number);
    for (let i = 0; i < 50 && await audited() < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await audited(), 2);
  } finally {
    for (const x of conns) x.close();
    await agent.stop();
    target.close();
    await a.stop();
    await b.stop();
  }
});
