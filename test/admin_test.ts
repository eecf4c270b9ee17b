/**
 * Operating a server: the `admin:` config, /readyz, the admin API (auth,
 * agents, clients, live streams with byte counts, closing a stream,
 * disconnecting an agent), the audit log, `--log-format json` and
 * `burrow status`.
 */
import { VERSION_MAX } from "../src/messages.ts";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { toHex, tokenHash } from "../src/auth.ts";
import { type Host, main } from "../src/cli/mod.ts";
import { startServer } from "../src/cli/server.ts";
import { renderStatus, table } from "../src/cli/status.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { ConfigError } from "../src/errors.ts";
import { httpApp } from "../src/http/mod.ts";
import { targetOf } from "../src/ip.ts";
import { createLogger, formatJson } from "../src/log.ts";
import type { Snapshot } from "../src/server/snapshot.ts";
import {
  ADMIN_TOKEN,
  ALICE_TOKEN,
  burrow,
  echoTarget,
  memoryLogger,
  runtime,
  socks,
  tunnel,
  until,
  writeServerYaml,
} from "./helpers.ts";

const rt = runtime;

type App = ReturnType<typeof httpApp>;

async function call(
  app: App,
  method: string,
  path: string,
  token: string | null = ADMIN_TOKEN,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> | null }> {
  const r = await app.fetch(
    new Request(`http://127.0.0.1${path}`, {
      method,
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
    }),
  );
  const text = await r.text();
  let body: Record<string, unknown> | null = null;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = null;
  }
  return { status: r.status, headers: r.headers, body };
}

/** The audit line with `msg` whose fields include all of `want`. */
function auditLine(lines: string[], msg: string, want: string[]): string | undefined {
  return lines.find((l) => l.includes(`msg="${msg}"`) && want.every((w) => l.includes(w)));
}

test("admin config: token or token_hash, path-precise errors", () => {
  const base = { agents: [{ name: "a", token: "12345678" }] };
  const parse = (admin: unknown) =>
    parseServerConfig(JSON.stringify({ ...base, admin }), "s.yaml").admin;
  assert.equal(parseServerConfig(JSON.stringify(base), "s.yaml").admin, null);
  const a = parse({ token: ADMIN_TOKEN })!;
  assert.ok(a.check(ADMIN_TOKEN));
  assert.ok(!a.check(ADMIN_TOKEN + "x"));
  assert.ok(!a.check(""));
  assert.equal(a.metricsAuth, null, "unset: decided by the listener");
  const h = parse({ token_hash: `sha256:${toHex(tokenHash(ADMIN_TOKEN))}`, metrics_auth: true })!;
  assert.ok(h.check(ADMIN_TOKEN));
  assert.ok(!h.check("nope"));
  assert.equal(h.metricsAuth, true);
  const cases: Array<[unknown, RegExp]> = [
    [{}, /^s\.yaml: admin: needs exactly one of token and token_hash/],
    [{ token: ADMIN_TOKEN, token_hash: "sha256:00" }, /^s\.yaml: admin: needs exactly one/],
    [{ token: "short" }, /^s\.yaml: admin\.token: must be at least 16 characters$/],
    [{ token_hash: "md5:abc" }, /^s\.yaml: admin\.token_hash: must be sha256:<64 hex digits>/],
    [
      { token: ADMIN_TOKEN, metrics_auth: "yes" },
      /^s\.yaml: admin\.metrics_auth: must be true or false$/,
    ],
    [{ token: ADMIN_TOKEN, tokn: 1 }, /^s\.yaml: admin\.tokn: unknown key/],
    ["on", /^s\.yaml: admin: must be a mapping$/],
  ];
  for (const [admin, re] of cases) {
    assert.throws(
      () => parse(admin),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  }
});

test(`${rt}: without admin: the API is off (404) and says how to enable it; /metrics and /healthz stay open`, async () => {
  const t = await tunnel();
  try {
    const app = httpApp(t.server);
    const r = await call(app, "GET", "/api/v1/agents");
    assert.equal(r.status, 404);
    assert.equal(r.body?.error, "admin_disabled");
    assert.match(String(r.body?.message), /admin: \{token_hash/);
    assert.equal((await call(app, "GET", "/metrics", null)).status, 200);
    assert.equal((await call(app, "GET", "/healthz", null)).status, 200);
    // The dashboard page itself is static and carries no data.
    const page = await app.fetch(new Request("http://127.0.0.1/"));
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'sha256-/);
    assert.match(await page.text(), /<title>burrow<\/title>/);
  } finally {
    await t.close();
  }
});

test(`${rt}: /readyz is 503 before start and while stopping, 200 when listening`, async () => {
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN } } });
  const app = httpApp(t.server);
  try {
    const ready = await call(app, "GET", "/readyz", null);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: "ready" });
    // A server not started yet.
    const { Server } = await import("../src/server/mod.ts");
    const fresh = new Server(t.net, t.server.config, memoryLogger().log);
    const starting = await call(httpApp(fresh), "GET", "/readyz", null);
    assert.equal(starting.status, 503);
    assert.deepEqual(starting.body, { status: "starting" });
  } finally {
    await t.close();
  }
  const stopped = await call(app, "GET", "/readyz", null);
  assert.equal(stopped.status, 503);
  assert.deepEqual(stopped.body, { status: "stopping" });
  assert.equal((await call(app, "GET", "/healthz", null)).status, 503);
});

test(`${rt}: admin API: 401 without the token, agents and clients with stable fields`, async () => {
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN } } });
  try {
    const app = httpApp(t.server);
    for (const token of [null, "wrong-token-0123456789", ""]) {
      const r = await call(app, "GET", "/api/v1/agents", token);
      assert.equal(r.status, 401);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="burrow"');
      assert.equal(r.body?.error, "unauthorized");
    }
    assert.ok(t.server.metrics.get("burrow_auth_failures_total", { role: "admin" }) >= 2);
    // ANNOUNCE follows WELCOME: wait for the rules.
    assert.ok(await until(() => t.server.agentViews()[0]?.rules.length === 2));
    const agents = await call(app, "GET", "/api/v1/agents");
    assert.equal(agents.status, 200);
    assert.equal(agents.headers.get("cache-control"), "no-store");
    const list = agents.body?.agents as Array<Record<string, unknown>>;
    assert.equal(list.length, 1);
    const a = list[0]!;
    assert.deepEqual(Object.keys(a).sort(), [
      "bytes_down",
      "bytes_up",
      "connected_since",
      "id",
      "instance",
      "name",
      "pool",
      "protocol",
      "remote",
      "rules",
      "session",
      "software",
      "streams",
    ]);
    assert.equal(a.name, "office");
    assert.equal(a.id, t.agent.session!.agentId);
    assert.match(String(a.instance), /^[0-9a-f]{32}$/, "the agent's instance id");
    assert.match(String(a.session), /^[0-9a-f]{8}$/);
    assert.equal(a.protocol, VERSION_MAX);
    assert.equal(typeof a.software, "string");
    assert.match(String(a.remote), /^127\.0\.0\.1:\d+$/);
    assert.ok(Math.abs(Date.parse(String(a.connected_since)) - Date.now()) < 60_000);
    assert.deepEqual(a.rules, ["127.0.0.1/32:*", "localhost:*"]);
    assert.deepEqual(Object.keys(a.pool as object).sort(), [
      "idle",
      "outstanding",
      "target",
      "waiting",
    ]);
    assert.equal(a.streams, 0);
    const one = await call(app, "GET", "/api/v1/agents/office");
    assert.equal((one.body?.agent as { name: string }).name, "office");
    assert.equal((await call(app, "GET", "/api/v1/agents/lab")).status, 404);

    const clients = (await call(app, "GET", "/api/v1/clients")).body?.clients as Array<
      Record<string, unknown>
    >;
    assert.deepEqual(clients.map((c) => c.name), ["alice", "bob"]);
    assert.deepEqual(clients[1], {
      name: "bob",
      id: null,
      configured: true,
      streams: 0,
      bytes_up: 0,
      bytes_down: 0,
      rate_up: 0,
      rate_down: 0,
      limit_up: null,
      limit_down: null,
    });
    const server = (await call(app, "GET", "/api/v1/server")).body?.server as Record<
      string,
      unknown
    >;
    assert.equal(server.runtime, rt);
    assert.equal(server.ready, true);
    assert.equal((await call(app, "GET", "/api/v1/nothing")).status, 404);
    assert.equal((await call(app, "GET", "/api/v1/nothing", null)).status, 401);
  } finally {
    await t.close();
  }
});

test(`${rt}: admin API: live stream bytes, DELETE a stream, audit lines`, async () => {
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN } } });
  const echo = await echoTarget(t.net);
  try {
    const app = httpApp(t.server);
    const target = targetOf("127.0.0.1", echo.addr.port);
    // A stream that ends by itself.
    const s1 = await socks(t.net, t.socks, "alice", ALICE_TOKEN, target);
    assert.equal(s1.reply, 0);
    await s1.conn.write(new Uint8Array(1000));
    let got = 0;
    while (got < 1000) got += (await s1.conn.read())?.length ?? 1000;
    await s1.conn.end();
    await s1.conn.read();
    s1.conn.close();
    assert.ok(await until(() => t.server.router.streams.size === 0));
    const ok = auditLine(t.logs, "stream ended", [
      "client=alice",
      "agent=office",
      `target=127.0.0.1:${echo.addr.port}`,
      "up=1000",
      "down=1000",
      "result=ok",
    ]);
    assert.ok(ok, "audit line of a stream that ended");
    assert.match(ok, /level=info/);
    assert.match(ok, / ms=\d+/);

    // A live stream: its bytes each way, then closed by the operator.
    const s2 = await socks(t.net, t.socks, "alice", ALICE_TOKEN, target);
    assert.equal(s2.reply, 0);
    await s2.conn.write(new Uint8Array(300));
    got = 0;
    while (got < 300) got += (await s2.conn.read())?.length ?? 300;
    const streams = (await call(app, "GET", "/api/v1/streams")).body?.streams as Array<
      Record<string, unknown>
    >;
    assert.equal(streams.length, 1);
    const st = streams[0]!;
    assert.deepEqual(Object.keys(st).sort(), [
      "agent",
      "bytes_down",
      "bytes_up",
      "client",
      "client_id",
      "id",
      "port",
      "since",
      "target",
    ]);
    assert.equal(st.client, "alice");
    assert.equal(st.agent, "office");
    assert.equal(st.target, `127.0.0.1:${echo.addr.port}`);
    assert.equal(st.port, "socks");
    assert.equal(st.bytes_up, 300);
    assert.equal(st.bytes_down, 300);
    const clients = (await call(app, "GET", "/api/v1/clients")).body?.clients as Array<
      Record<string, unknown>
    >;
    const alice = clients.find((c) => c.name === "alice")!;
    assert.equal(alice.streams, 1);
    assert.equal(alice.bytes_up, 1300); // finished + live
    assert.equal(alice.bytes_down, 1300);
    const snap = (await call(app, "GET", "/api/v1/snapshot")).body as unknown as Snapshot;
    assert.equal(snap.agents[0]!.streams, 1);
    assert.equal(snap.agents[0]!.bytes_up, 1300);
    assert.equal(snap.streams[0]!.id, st.id);
    assert.equal((await call(app, "GET", `/api/v1/streams/${st.id}`)).status, 200);

    const del = await call(app, "DELETE", `/api/v1/streams/${st.id}`);
    assert.equal(del.status, 200);
    assert.deepEqual(del.body, { closed: st.id });
    assert.equal(await s2.conn.read(), null, "the client's connection ends");
    assert.ok(await until(() => t.server.router.streams.size === 0));
    assert.ok(
      auditLine(t.logs, "stream ended", [`stream=${st.id}`, "up=300", 'result="closed by admin"']),
    );
    assert.equal((await call(app, "DELETE", `/api/v1/streams/${st.id}`)).status, 404);
    assert.equal((await call(app, "DELETE", "/api/v1/streams/abc")).status, 404);

    // A refused CONNECT has its audit line too.
    const s3 = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf("10.1.2.3", 80));
    assert.equal(s3.reply, 2);
    s3.conn.close();
    const refused = auditLine(t.logs, "connect refused", [
      "client=alice",
      "target=10.1.2.3:80",
      "up=0",
      "down=0",
      'result="target outside the grant"',
    ]);
    assert.ok(refused, "audit line of a refusal");
    assert.match(refused, / ms=\d+/);
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: admin API: disconnect an agent; it comes back with a new session`, async () => {
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN } } });
  try {
    const app = httpApp(t.server);
    const before = t.server.agentViews()[0]!.session;
    const r = await call(app, "DELETE", "/api/v1/agents/office");
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { disconnected: "office" });
    assert.ok(t.logs.some((l) => l.includes('msg="agent disconnected by admin"')));
    assert.ok(
      await until(() => {
        const a = t.server.agentViews()[0];
        return a !== undefined && a.session !== before;
      }),
      "the agent reconnects with a new session",
    );
    assert.equal((await call(app, "DELETE", "/api/v1/agents/nobody")).status, 404);
  } finally {
    await t.close();
  }
});

test(`${rt}: admin.metrics_auth puts /metrics behind the token`, async () => {
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN, metrics_auth: true } } });
  try {
    const app = httpApp(t.server);
    const open = await call(app, "GET", "/metrics", null);
    assert.equal(open.status, 401);
    assert.equal(open.headers.get("www-authenticate"), 'Bearer realm="burrow"');
    const r = await app.fetch(
      new Request("http://127.0.0.1/metrics", {
        headers: { authorization: `bearer ${ADMIN_TOKEN}` },
      }),
    );
    assert.equal(r.status, 200);
    assert.match(await r.text(), /# TYPE burrow_build_info gauge/);
  } finally {
    await t.close();
  }
});

test("log: --log-format json writes one JSON object per line with the same fields", () => {
  const lines: string[] = [];
  const log = createLogger({ sink: (l) => lines.push(l), format: "json" }).with({ client: "a" });
  log.info("stream ended", { up: 3, down: 4, result: "ok", gone: undefined });
  log.debug("hidden");
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(o), ["ts", "level", "msg", "client", "up", "down", "result"]);
  assert.equal(o.level, "info");
  assert.equal(o.msg, "stream ended");
  assert.equal(o.up, 3);
  assert.ok(!Number.isNaN(Date.parse(String(o.ts))));
  // A field cannot overwrite ts, level or msg.
  const x = JSON.parse(formatJson("warn", "m", { msg: "forged", level: "x", n: Infinity })) as {
    msg: string;
    level: string;
    n: string;
  };
  assert.deepEqual([x.msg, x.level, x.n], ["m", "warn", "Infinity"]);
});

test("status: tables are aligned", () => {
  assert.deepEqual(table(["A", "NUM"], [["long name", "1"], ["b", "22"]], new Set([1])), [
    "A          NUM",
    "long name    1",
    "b           22",
  ]);
  const now = Date.parse("2030-01-01T00:10:00Z");
  const snap: Snapshot = {
    server: {
      version: "0.1.0",
      runtime: "node",
      runtime_version: "20",
      protocol: { min: 1, max: 1 },
      started_at: "2030-01-01T00:00:00Z",
      ready: true,
    },
    agents: [],
    clients: [],
    refusals: [],
    streams: [{
      id: 7,
      client: "alice",
      client_id: 1,
      agent: "office",
      target: "10.0.0.1:22",
      port: "socks",
      since: "2030-01-01T00:09:30Z",
      bytes_up: 2048,
      bytes_down: 5,
    }],
  };
  const out = renderStatus(snap, now);
  assert.equal(out[0], "burrow 0.1.0 on node 20, ready, up 10m00s");
  assert.ok(out.includes("AGENTS (0)"));
  const i = out.indexOf("STREAMS (1)");
  assert.match(out[i + 1]!, /^ID +CLIENT +AGENT +TARGET +PORT +AGE +UP +DOWN$/);
  assert.match(out[i + 2]!, /^ 7 +alice +office +10\.0\.0\.1:22 +socks +30s +2\.0 KiB +5 B$/);
  // In a fleet, an agent of a server that did not answer: what presence knows, no counts.
  const fleet = renderStatus({
    ...snap,
    agents: [{
      name: "lab",
      session: "0a1b2c3d",
      server: "9f8e",
      connected_since: "2030-01-01T00:08:00Z",
      source: "presence",
      reachable: false,
    }],
  }, now);
  const j = fleet.indexOf("AGENTS (1)");
  assert.match(
    fleet[j + 2]!,
    /^lab +- +0a1b2c3d +- +unreachable \(presence\) +2m00s +- +- +- +-$/,
  );
});

test(`${rt}: burrow status against a running server; --log-format json on the CLI`, async () => {
  const { host } = await import(`../runtimes/${rt}/main.ts`) as { host: Host };
  const dir = mkdtempSync(join(tmpdir(), "burrow-status-"));
  const cfg = writeServerYaml(dir, {
    listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "", http: "127.0.0.1:0" },
    clients: [{ name: "alice", token: ALICE_TOKEN }],
    admin: { token: ADMIN_TOKEN },
  });
  const tokenFile = join(dir, "admin.token");
  writeFileSync(tokenFile, `token: ${ADMIN_TOKEN}\n`);
  // In process: status prints the tables.
  const { log } = memoryLogger();
  const config = parseServerConfig(
    JSON.stringify({
      listen: { agents: "127.0.0.1:0", socks: "", clients: "", http: "127.0.0.1:0" },
      agents: [{ name: "office", token: "agent-token-0123456789" }],
      admin: { token: ADMIN_TOKEN },
    }),
    "(test)",
  );
  const s = await startServer(host, config, log);
  const proc = burrow(rt, ["server", "-c", cfg, "--no-watch", "--log-format", "json"]);
  try {
    const printed: string[] = [];
    const capture: Host = { ...host, print: (l) => void printed.push(l) };
    const url = `http://127.0.0.1:${s.http!.addr.port}`;
    assert.equal(await main(capture, ["status", "--url", url, "--token-file", tokenFile]), 0);
    assert.match(printed[0]!, new RegExp(`^burrow \\S+ on ${rt} \\S+, ready, up \\d+s$`));
    assert.ok(printed.includes("AGENTS (0)"));
    assert.ok(printed.includes("STREAMS (0)"));
    printed.length = 0;
    assert.equal(
      await main(capture, ["status", "--url", url, "--token", ADMIN_TOKEN, "--json"]),
      0,
    );
    assert.equal((JSON.parse(printed.join("\n")) as Snapshot).server.ready, true);
    assert.equal(await main(capture, ["status", "--url", url, "--token", "wrong-token-xxxx"]), 2);

    // A server process with --log-format json: every line is a JSON object.
    const line = await proc.waitFor(/\{[^\n]*"msg":"http endpoint"[^\n]*\}/);
    const http = JSON.parse(line) as { level: string; health: string; admin: string };
    assert.equal(http.level, "info");
    const base = http.health.replace(/\/healthz$/, "");
    assert.equal(http.admin, `${base}/`);
    await proc.waitFor(/"msg":"server listening"/);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    printed.length = 0;
    assert.equal(await main(capture, ["status", "--url", base, "--token", ADMIN_TOKEN]), 0);
    assert.ok(printed.some((l) => / ready, /.test(l)));
    for (const l of proc.output().split("\n").filter((l) => l.startsWith("{"))) {
      const o = JSON.parse(l) as Record<string, unknown>;
      assert.equal(typeof o.ts, "string");
      assert.equal(typeof o.msg, "string");
    }
  } finally {
    await proc.stop();
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
