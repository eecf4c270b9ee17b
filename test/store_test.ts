/**
 * The PostgreSQL state store on a real PostgreSQL 15 (test/pg.ts):
 * migrations applied once by servers starting together, presence (leases,
 * sessions written only when they start or end, expired leases ignored and
 * cleaned), the audit log in batches, the store key's checks. The fleet
 * tests (revocations across servers, an outage under a stream) are in
 * store_fleet_test.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { parseServerConfig } from "../src/config/mod.ts";
import { ConfigError, StoreError } from "../src/errors.ts";
import { Metrics } from "../src/metrics.ts";
import { KeyBox } from "../src/server/store_keys.ts";
import { PgStore, unreachable } from "../src/server/store_pg.ts";
import { storeFor } from "../src/server/store_open.ts";
import { TokenStore } from "../src/server/tokens.ts";
import { followStore } from "../src/server/tokens_sync.ts";
import { silent } from "../src/log.ts";
import { parseToken } from "../src/token.ts";
import { memoryLogger, runtimeNet, until } from "./helpers.ts";
import { type Pg, startPg } from "./pg.ts";

export const STORE_KEY = "8f".repeat(32);
let pg: Pg;

before(async () => {
  pg = await startPg(await runtimeNet());
});
after(async () => {
  await pg?.close();
});

/** A PostgreSQL store on `pg` with a short lease; opened. */
async function pgStore(opts: { key?: string; renewMs?: number; auditQueue?: number } = {}) {
  const { log, lines } = memoryLogger();
  const config = parseServerConfig(
    JSON.stringify({
      store: {
        postgres: pg.url,
        audit_queue: opts.auditQueue ?? 10000,
        lease: "1500ms",
        lease_renew: `${opts.renewMs ?? 200}ms`,
      },
    }),
    "(test)",
  ).store;
  const metrics = new Metrics();
  const store = new PgStore({
    url: pg.url,
    password: null,
    box: await KeyBox.from(opts.key ?? STORE_KEY, "test"),
    config,
  });
  await store.open({ log, metrics });
  return { store, lines, metrics };
}

const count = async (sql: string) => Number((await pg.psql(sql)).trim());

test("store config: postgres URL, key and password files, audit settings", () => {
  const parse = (store: unknown) =>
    parseServerConfig(JSON.stringify({ store }), "/etc/burrow/s.yaml", true).store;
  assert.deepEqual(parse(undefined), {
    postgres: null,
    passwordFile: null,
    keyFile: null,
    audit: true,
    auditRetention: 720 * 3600,
    auditQueue: 10000,
    leaseMs: 10_000,
    leaseRenewMs: 2000,
  });
  const s = parse({
    postgres: "postgres://burrow@db:5432/burrow",
    password_file: "pw",
    key_file: "/k",
    audit_retention: "24h",
  });
  assert.equal(s.passwordFile, "/etc/burrow/pw");
  assert.equal(s.keyFile, "/k");
  assert.equal(s.auditRetention, 86400);
  assert.throws(() => parse({ postgres: "mysql://x" }), /store\.postgres: must be a postgres:\/\//);
  assert.throws(() => parse({ key_file: "k" }), /store\.key_file: only applies with/);
  assert.throws(() => parse({ audit_retention: "1s" }), /store\.audit_retention/);
  assert.throws(() => parse({ postgress: "x" }), /store\.postgress: unknown key/);
  // The lease's timing: renewed more often than it lasts, twice at least.
  const pgUrl = "postgres://burrow@db/burrow";
  const lease = parse({ postgres: pgUrl, lease: "30s", lease_renew: "5s" });
  assert.deepEqual([lease.leaseMs, lease.leaseRenewMs], [30_000, 5000]);
  assert.throws(
    () => parse({ postgres: pgUrl, lease: "3s", lease_renew: "2s" }),
    /: store\.lease: must be at least twice store\.lease_renew$/,
  );
  assert.throws(
    () => parse({ postgres: pgUrl, lease: "3s" }), // renewed every 2s by default
    /store\.lease: must be at least twice store\.lease_renew/,
  );
  assert.throws(
    () => parse({ postgres: pgUrl, lease_renew: "50ms" }),
    /store\.lease_renew: must be 100ms or more/,
  );
  assert.throws(() => parse({ postgres: pgUrl, lease: "1h" }), /store\.lease: must be 10m or less/);
  assert.throws(
    () => parse({ postgres: pgUrl, lease: "soon" }),
    /store\.lease: Cannot parse duration/,
  );
  assert.throws(() => parse({ lease: "30s" }), /store\.lease: only applies with store\.postgres/);
});

test("storeFor: the store key is needed, 32 bytes, from the environment or key_file", async () => {
  const config = parseServerConfig(
    JSON.stringify({ store: { postgres: "postgres://x@127.0.0.1:1/db" } }),
    "(test)",
  );
  const host = (env: Record<string, string>) => ({
    readTextFile: () => Promise.reject(new Error("no such file")),
    env: (n: string) => env[n],
    tokenFile: { read: () => Promise.resolve(null), write: () => Promise.resolve() },
  });
  await assert.rejects(
    storeFor(config, host({})),
    (e: Error) =>
      e instanceof ConfigError && /set BURROW_STORE_KEY or store\.key_file/.test(e.message),
  );
  await assert.rejects(
    storeFor(config, host({ BURROW_STORE_KEY: "short" })),
    (e: Error) =>
      e instanceof ConfigError &&
      /BURROW_STORE_KEY: the store key must be 32 bytes/.test(e.message),
  );
  const store = await storeFor(config, host({ BURROW_STORE_KEY: STORE_KEY }));
  assert.equal(store.kind, "postgres");
  await store.close();
});

test("an outage is a failure to reach PostgreSQL, not a query it refused nor a bug", () => {
  const coded = (code: string, name = "Error") => Object.assign(new Error(code), { code, name });
  assert.ok(unreachable(coded("ECONNREFUSED")));
  assert.ok(unreachable(coded("CONNECTION_CLOSED")));
  assert.ok(unreachable(coded("57P01", "PostgresError")), "admin shutdown");
  assert.ok(unreachable(coded("28P01", "PostgresError")), "password refused");
  assert.ok(!unreachable(coded("42P01", "PostgresError")), "no such table: a bug");
  assert.ok(!unreachable(coded("UNDEFINED_VALUE")), "postgres.js refusing a value: a bug");
  assert.ok(!unreachable(new StoreError("signing key 1 does not open")));
  assert.ok(!unreachable(new TypeError("x is undefined")));
});

test("migrations: three servers starting at once apply each one once", async () => {
  const all = await Promise.all([pgStore(), pgStore(), pgStore()]);
  try {
    const migrated = all.flatMap((s) => s.lines).filter((l) => /schema migrated/.test(l));
    assert.equal(migrated.length, 1, "one server migrated, the others found it done");
    assert.equal(await count("SELECT count(*) FROM burrow_schema_migrations"), 1);
    const again = await pgStore();
    assert.ok(!again.lines.some((l) => /schema migrated/.test(l)));
    await again.store.close();
  } finally {
    await Promise.all(all.map((s) => s.store.close()));
  }
});

test("store key: a wrong key refuses to start", async () => {
  const first = await pgStore();
  await first.store.close();
  await assert.rejects(
    pgStore({ key: "17".repeat(32) }),
    (e: Error) => e instanceof ConfigError && /store key .* is not the one/.test(e.message),
  );
});

test("presence: sessions and leases reach the other servers; a dead server's lease expires and is cleaned", async () => {
  const a = await pgStore();
  const b = await pgStore();
  try {
    const placed = (agent: string) => b.store.presence.agents().get(agent)?.map((p) => p.server);
    let changes = 0;
    b.store.presence.onChange(() => changes++);
    a.store.presence.advertise("127.0.0.1:7443");
    a.store.presence.up("office", "aa".repeat(16));
    assert.ok(await until(() => placed("office")?.[0] === a.store.serverId, 2000));
    assert.ok(changes > 0);
    // The session's start as a wrote it (the fleet view shows it for a server that does not answer).
    const start = a.store.presence.agents().get("office")![0]!.since;
    assert.ok(Math.abs(b.store.presence.agents().get("office")![0]!.since - start) < 1, "since");
    // The lease taken away (its sessions with it): a writes both anew, the session's start kept.
    const id = a.store.serverId;
    await pg.psql(`DELETE FROM burrow_servers WHERE id = '${id}'`);
    const since = () =>
      pg.psql(`SELECT (extract(epoch FROM since) * 1000)::float8 FROM burrow_sessions
        WHERE server_id = '${id}'`).then((t) => t.trim());
    for (let i = 0; i < 50 && await since() === ""; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(a.lines.some((l) => /presence lease was lost/.test(l)), a.lines.join("\n"));
    assert.ok(Math.abs(Number(await since()) - start) < 1, `${await since()} against ${start}`);
    assert.ok(
      await until(
        () =>
          b.store.presence.servers().some((s) =>
            s.id === a.store.serverId && s.advertise === "127.0.0.1:7443"
          ),
        2000,
      ),
    );
    a.store.presence.down("office", "aa".repeat(16));
    assert.ok(await until(() => placed("office") === undefined, 2000));

    // A server that stopped renewing (killed): its lease expires, its sessions go with it.
    await pg.psql(`INSERT INTO burrow_servers (id, advertise, expires)
      VALUES ('dead', '10.0.0.9:7443', now() + interval '1 second');
      INSERT INTO burrow_sessions (server_id, session, agent) VALUES ('dead', 's1', 'lab');
      NOTIFY burrow, '{"s":"dead","w":"servers"}'`);
    assert.ok(await until(() => placed("lab")?.[0] === "dead", 2000), "seen while live");
    assert.ok(await until(() => placed("lab") === undefined, 4000), "gone once expired");
    assert.ok(await until(() => b.store.presence.servers().every((s) => s.id !== "dead"), 2000));
    // Cleaned (every few renewals): the lease and its sessions are deleted.
    const gone = async () => await count("SELECT count(*) FROM burrow_sessions") === 0;
    for (let i = 0; i < 50 && !await gone(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await count("SELECT count(*) FROM burrow_servers WHERE id = 'dead'"), 0);
    assert.equal(await count("SELECT count(*) FROM burrow_sessions"), 0);

    // A server that stops gives its lease up at once.
    await a.store.close();
    assert.ok(await until(() => b.store.presence.servers().length === 1, 2000));
  } finally {
    await a.store.close();
    await b.store.close();
  }
});

test("presence: 1000 idle agent sessions cost no writes", async () => {
  const a = await pgStore({ renewMs: 100 });
  try {
    await pg.psql("SELECT pg_stat_statements_reset()"); // count this test's statements only
    for (let i = 0; i < 1000; i++) {
      a.store.presence.up(`agent${i}`, i.toString(16).padStart(32, "0"));
    }
    const rows = () =>
      count(`SELECT count(*) FROM burrow_sessions WHERE server_id = '${a.store.serverId}'`);
    for (let i = 0; i < 100 && await rows() < 1000; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await rows(), 1000);
    const inserts = await count(`SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
      WHERE query ILIKE 'INSERT INTO burrow_sessions%'`);
    assert.ok(inserts <= 3, `1000 sessions written in a few statements, not ${inserts}`);
    await pg.psql("SELECT pg_stat_statements_reset()");
    await new Promise((r) => setTimeout(r, 1500)); // 15 renewals, idle
    const stats = await pg.psql(`SELECT calls, regexp_replace(query, '\\s+', ' ', 'g')
      FROM pg_stat_statements WHERE query ~* '^\\s*(INSERT|UPDATE|DELETE)'`);
    const writes = stats.trim().split("\n").filter((l) => l !== "");
    const sessionWrites = writes.filter((l) => /burrow_sessions/.test(l));
    assert.deepEqual(sessionWrites, [], "no session row written while idle");
    const renewals = writes.filter((l) => /UPDATE burrow_servers/.test(l));
    assert.equal(renewals.length, 1, `the lease was renewed: ${stats}`);
    assert.ok(Number(renewals[0]!.split("|")[0]) >= 5, stats);
  } finally {
    await a.store.close();
  }
});

test("tokens across servers: a person's groups and a rotated key reach the other", async () => {
  const a = await pgStore();
  const b = await pgStore();
  try {
    const [ta, tb] = [new TokenStore(a.store), new TokenStore(b.store)];
    followStore(ta, a.store, silent);
    followStore(tb, b.store, silent);
    await Promise.all([ta.load(), tb.load()]);
    const p = await ta.issue("person", "ann@example.com", 600, ["ops", "dev"]);
    assert.ok(await until(() => tb.person("ann@example.com")?.groups.join() === "ops,dev", 2000));
    assert.equal((await tb.check(p.token))?.ok, true);
    const rotated = await ta.rotate();
    const q = await ta.issue("client", "alice", 600);
    assert.equal(parseToken(q.token)!.keyId, rotated);
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      ok = (await tb.check(q.token))?.ok === true;
      if (!ok) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(ok, "b verifies a token of the new key");
    assert.equal((await tb.check(p.token))?.ok, true, "the retired key's token still passes");
  } finally {
    await a.store.close();
    await b.store.close();
  }
});

test("audit log: lines land in the table in batches; lines past the retention are deleted", async () => {
  const a = await pgStore();
  try {
    // A server starting deletes what is past the retention (720h).
    await pg.psql(`INSERT INTO burrow_audit (at, server_id, level, msg, fields)
      VALUES (now() - interval '31 days', 'old', 'info', 'stream ended', '{}')`);
    const old = () => count("SELECT count(*) FROM burrow_audit WHERE server_id = 'old'");
    assert.equal(await old(), 1);
    await (await pgStore()).store.close();
    assert.equal(await old(), 0);
    await pg.psql("SELECT pg_stat_statements_reset()");
    const before = await count("SELECT count(*) FROM burrow_audit");
    for (let i = 0; i < 1200; i++) {
      a.store.audit({
        at: Date.now(),
        level: "info",
        msg: "stream ended",
        fields: { stream: i, client: "alice", target: "10.0.0.1:22" },
      });
    }
    const rows = () => count("SELECT count(*) FROM burrow_audit");
    for (let i = 0; i < 100 && await rows() < before + 1200; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await rows(), before + 1200);
    const calls = await count(`SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
      WHERE query ILIKE 'INSERT INTO burrow_audit%'`);
    assert.ok(
      calls >= 3 && calls <= 5,
      `1200 lines in batches of at most 500: ${calls} statements`,
    );
    const one = await pg.psql(`SELECT msg, fields->>'client', fields->>'stream', server_id
      FROM burrow_audit WHERE (fields->>'stream')::int = 7 ORDER BY id DESC LIMIT 1`);
    assert.equal(one.trim(), `stream ended|alice|7|${a.store.serverId}`);
  } finally {
    await a.store.close();
  }
});

test("outage: writes refused, logged once, audit lines kept up to audit_queue (the rest dropped and counted), all caught up when PostgreSQL is back", async () => {
  const a = await pgStore({ auditQueue: 10 });
  const line = (i: number) => ({
    at: Date.now(),
    level: "info" as const,
    msg: "stream ended",
    fields: { stream: i, outage: "yes" },
  });
  try {
    await pg.stop();
    try {
      await assert.rejects(
        a.store.tokens.revoked(["00".repeat(16)]),
        /cannot revoke a token: the state store is unreachable/,
      );
      assert.ok(await until(() => !a.store.up, 5000));
      await assert.rejects(a.store.tokens.load(), /the state store is unreachable \(since /);
      for (let i = 0; i < 25; i++) a.store.audit(line(i));
      assert.equal(a.metrics.get("burrow_audit_dropped_total"), 15);
      assert.equal(a.metrics.get("burrow_limit_hits_total", { limit: "audit_queue" }), 1);
      assert.equal(a.lines.filter((l) => /limit=audit_queue/.test(l)).length, 1);
      assert.equal(a.lines.filter((l) => /state store unreachable/.test(l)).length, 1);
    } finally {
      await pg.start();
    }
    assert.ok(await until(() => a.lines.some((l) => /reachable again/.test(l)), 10000));
    assert.ok(a.store.up);
    const kept = () => count("SELECT count(*) FROM burrow_audit WHERE fields->>'outage' = 'yes'");
    for (let i = 0; i < 50 && await kept() < 10; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await kept(), 10, "the queued lines, written once the store is back");
    await a.store.tokens.revoked(["00".repeat(16)]); // writes work again
  } finally {
    await a.store.close();
  }
});
