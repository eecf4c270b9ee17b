/**
 * Tokens for machines (README "Tokens for machines"): the admin API's
 * /tokens routes and their limits, revocation closing open streams (or
 * letting them finish), `burrow tokens issue|list|revoke` against a
 * server process whose state_dir keeps keys and revocations over a restart,
 * and key rotation end to end with curl.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type Host, main } from "../src/cli/mod.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { httpApp } from "../src/http/mod.ts";
import { targetOf } from "../src/ip.ts";
import { fmt } from "../src/addr.ts";
import {
  ADMIN_TOKEN,
  burrow,
  curlThrough,
  echoTarget,
  runtime,
  runtimeNet,
  socks,
  testAgent,
  tunnel,
  until,
  webOk,
  writeServerYaml,
} from "./helpers.ts";

type App = ReturnType<typeof httpApp>;

async function call(app: App, method: string, path: string, body?: unknown) {
  const r = await app.fetch(
    new Request(`http://127.0.0.1/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
  return { status: r.status, body: await r.json() as Record<string, unknown> };
}

test("tokens config: max_ttl, max_active, revoke_closes_streams", () => {
  const parse = (tokens: unknown) => parseServerConfig(JSON.stringify({ tokens }), "s.yaml").tokens;
  assert.deepEqual(parse(undefined), {
    maxTtl: 720 * 3600,
    maxActive: 10000,
    revokeClosesStreams: true,
  });
  assert.deepEqual(parse({ max_ttl: "1h", max_active: 5, revoke_closes_streams: false }), {
    maxTtl: 3600,
    maxActive: 5,
    revokeClosesStreams: false,
  });
  assert.throws(() => parse({ max_ttl: "10ms" }), /tokens\.max_ttl: must be between 1s and 8784h/);
  assert.throws(() => parse({ ttl: "1h" }), /tokens\.ttl/);
});

test("admin API: issue, list and revoke tokens; the limits; revoking closes the token's open streams", async () => {
  const t = await tunnel({
    config: { admin: { token: ADMIN_TOKEN }, tokens: { max_ttl: "2h", max_active: 3 } },
  });
  const app = httpApp(t.server);
  const echo = await echoTarget(t.net);
  try {
    const issued = await call(app, "POST", "/tokens", { client: "alice", ttl: "1h" });
    assert.equal(issued.status, 201);
    const { id, token, expires_at } = issued.body as Record<string, string>;
    assert.match(id!, /^[0-9a-f]{32}$/);
    assert.ok(Math.abs(Date.parse(expires_at!) - Date.now() - 3600_000) < 5000);
    assert.ok(!t.logs.some((l) => l.includes(token!)), "the token is not logged");
    assert.ok(t.logs.some((l) => /msg="token issued"/.test(l) && l.includes(id!)));
    assert.equal((await call(app, "POST", "/tokens", { client: "nobody", ttl: "1h" })).status, 400);
    assert.equal((await call(app, "POST", "/tokens", { client: "alice", ttl: "3h" })).status, 400);
    assert.equal((await call(app, "POST", "/tokens", { client: "alice" })).status, 400);
    const list = await call(app, "GET", "/tokens");
    assert.deepEqual((list.body.tokens as { id: string }[]).map((x) => x.id), [id]);

    // A stream of the token is open; revoking the token closes it.
    const s = await socks(t.net, t.socks, "@office", token!, targetOf("127.0.0.1", echo.addr.port));
    assert.equal(s.reply, 0);
    assert.deepEqual(await call(app, "DELETE", `/tokens/${id}`), {
      status: 200,
      body: { revoked: id },
    });
    assert.ok(
      await until(() => t.logs.some((l) => /closed by revocation/.test(l))),
      t.logs.join("\n"),
    );
    assert.equal((await call(app, "DELETE", `/tokens/${id}`)).status, 404, "already revoked");
    assert.equal((await call(app, "DELETE", "/tokens/xyz")).status, 400);
    s.conn.close();

    // max_active: three active at most.
    const more = [];
    for (let i = 0; i < 3; i++) {
      more.push(await call(app, "POST", "/tokens", { client: "bob", ttl: 60 }));
    }
    assert.deepEqual(more.map((r) => r.status), [201, 201, 201]);
    assert.equal((await call(app, "POST", "/tokens", { client: "bob", ttl: 60 })).status, 429);
    assert.ok(t.logs.some((l) => /limit=tokens_max_active/.test(l)));
    const all = await call(app, "DELETE", "/clients/bob/tokens");
    assert.equal((all.body.revoked as string[]).length, 3);
    assert.equal((await call(app, "POST", "/tokens", { client: "bob", ttl: 60 })).status, 201);
  } finally {
    await echo.close();
    await t.close();
  }
});

test("tokens: with revoke_closes_streams: false a revoked token's open stream finishes", async () => {
  const t = await tunnel({
    config: { admin: { token: ADMIN_TOKEN }, tokens: { revoke_closes_streams: false } },
  });
  const echo = await echoTarget(t.net);
  try {
    const { id, token } = await t.server.tokens.issue("client", "alice", 60);
    const s = await socks(t.net, t.socks, "", token, targetOf("127.0.0.1", echo.addr.port));
    assert.equal(s.reply, null, "our client sends no auth for an empty user name");
    s.conn.close();
    const open = await socks(t.net, t.socks, "alice", token, targetOf("127.0.0.1", echo.addr.port));
    assert.equal(open.reply, 0);
    await t.server.tokens.revoke((x) => x.id === id);
    await open.conn.write(new TextEncoder().encode("still here"));
    const got = await open.conn.read();
    assert.equal(new TextDecoder().decode(got!), "still here");
    open.conn.close();
    const again = await socks(
      t.net,
      t.socks,
      "alice",
      token,
      targetOf("127.0.0.1", echo.addr.port),
    );
    again.conn.close();
    assert.equal(again.auth, 1, "a new stream is refused");
  } finally {
    await echo.close();
    await t.close();
  }
});

/**
 * A `burrow server` process on a server.yaml in a new temp dir: agent
 * office, client ci (issued tokens only) granted it, the admin API;
 * `start()` (again after a stop, on the same state_dir) gives its admin URL
 * and SOCKS5 address.
 */
function serverProcess() {
  const dir = mkdtempSync(join(tmpdir(), "burrow-tokens-"));
  const cfg = writeServerYaml(dir, {
    listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "", http: "127.0.0.1:0" },
    clients: [{ name: "ci" }],
    grants: [{ client: "ci", agent: "office", targets: ["127.0.0.1:*"] }],
    admin: { token: ADMIN_TOKEN },
  });
  const start = async () => {
    const proc = burrow(runtime, ["server", "-c", cfg, "--no-watch"]);
    const http = await proc.waitFor(/msg="http endpoint"[^\n]*/);
    const socksAt = await proc.waitFor(/socks=127\.0\.0\.1:\d+/);
    const agentsAt = await proc.waitFor(/agents=127\.0\.0\.1:\d+/);
    return {
      proc,
      url: /health=(http:\/\/[^ ]+)\/healthz/.exec(http)![1]!,
      socks: { host: "127.0.0.1", port: Number(socksAt.split(":")[1]) },
      agents: { host: "127.0.0.1", port: Number(agentsAt.split(":")[1]) },
    };
  };
  return { dir, start, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

test(`${runtime}: burrow tokens issue, list and revoke; state_dir keeps them over a restart`, async () => {
  const { host } = await import(`../runtimes/${runtime}/main.ts`) as { host: Host };
  const { dir, start, remove } = serverProcess();
  let s = await start();
  try {
    const printed: string[] = [];
    const capture: Host = { ...host, print: (l) => void printed.push(l) };
    const admin = ["--url", s.url, "--token", ADMIN_TOKEN];
    assert.equal(
      await main(capture, ["tokens", "issue", "--client", "ci", "--ttl", "1h", ...admin]),
      0,
    );
    const kept = printed.pop()!;
    assert.equal(
      await main(capture, ["tokens", "issue", "--client", "ci", "--ttl", "1h", ...admin]),
      0,
    );
    const dropped = printed.pop()!;
    printed.length = 0;
    assert.equal(await main(capture, ["tokens", "list", ...admin]), 0);
    assert.match(printed[0]!, /^ID +KIND +SUBJECT +ISSUED +EXPIRES +STATE$/);
    assert.equal(printed.filter((l) => / client +ci .* active$/.test(l)).length, 2);
    const ids = printed.slice(1).map((l) => l.split(" ")[0]!);
    printed.length = 0;
    const net = await runtimeNet();
    const auth = async (token: string) => {
      const r = await socks(net, s.socks, "@office", token, targetOf("127.0.0.1", 9));
      r.conn.close();
      return r.auth;
    };
    assert.equal(await auth(dropped), 0);
    // Revoke the second one by its id (the list is oldest first).
    assert.equal(await main(capture, ["tokens", "revoke", ids[1]!, ...admin]), 0);
    assert.deepEqual(printed, [`revoked ${ids[1]}`]);
    assert.equal(await auth(dropped), 1);
    assert.equal(statSync(join(dir, "state", "tokens.json")).mode & 0o777, 0o600);
    await s.proc.stop();
    s = await start();
    assert.equal(await auth(dropped), 1, "still revoked after a restart");
    assert.equal(await auth(kept), 0, "the key survived the restart");
    printed.length = 0;
    assert.equal(
      await main(capture, ["tokens", "rotate", "--url", s.url, "--token", ADMIN_TOKEN]),
      0,
    );
    assert.match(printed[0]!, /^signing key [0-9a-f]{8}$/);
    assert.equal(await auth(kept), 0, "the old key is still accepted");
    assert.equal(
      await main(capture, [
        "tokens",
        "revoke",
        "--all",
        "ci",
        "--url",
        s.url,
        "--token",
        ADMIN_TOKEN,
      ]),
      0,
    );
    assert.equal(await auth(kept), 1);
  } finally {
    await s.proc.stop();
    remove();
  }
});

test(`${runtime}: after rotation, curl: the previous key's token works within its lifetime; once the key is gone it is refused as a wrong password`, async () => {
  const net = await runtimeNet();
  const { dir, start, remove } = serverProcess();
  const s = await start();
  const web = await webOk(net);
  const { agent } = testAgent(net, s.agents, "office");
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${s.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return await r.json() as Record<string, unknown>;
  };
  const curl = (user: string) => curlThrough(fmt(s.socks), web.addr.port, user);
  const keys = () =>
    (JSON.parse(readFileSync(join(dir, "state", "tokens.json"), "utf8")).keys as unknown[]).length;
  try {
    agent.start();
    await agent.connected();
    // A token of the first key, valid 6 s.
    const old = await api("POST", "/tokens", { client: "ci", ttl: "6s" }) as Record<string, string>;
    assert.deepEqual(await curl(`:${old.token}`), { code: 0, out: "ok" }, s.proc.output());
    const rotated = await api("POST", "/tokens/rotate");
    assert.match(String(rotated.key_id), /^[0-9a-f]{8}$/);
    const fresh = await api("POST", "/tokens", { client: "ci", ttl: "1h" }) as Record<
      string,
      string
    >;
    // Within its lifetime, the previous key's token is still accepted.
    assert.deepEqual(await curl(`:${old.token}`), { code: 0, out: "ok" }, "previous key");
    assert.deepEqual(await curl(`:${fresh.token}`), { code: 0, out: "ok" }, "new key");
    assert.equal(keys(), 2, "both keys kept");
    // Its tokens' lifetime passes: the key is dropped (at the next change of the store).
    assert.ok(await until(() => Date.now() > Date.parse(old.expires_at!) + 1000, 10_000));
    await api("POST", "/tokens", { client: "ci", ttl: "1h" });
    assert.equal(keys(), 1, "the rotated-out key is gone from state_dir");
    const refused = await curl(`:${old.token}`);
    const wrong = await curl("ci:not-a-token-of-anyone");
    assert.notEqual(refused.code, 0, "refused");
    assert.equal(refused.code, wrong.code, "as a wrong password");
    assert.ok(
      await until(() =>
        s.proc.output().split("\n").some((l) =>
          /socks authentication failed/.test(l) && /reason="unknown key"/.test(l) &&
          l.includes(`token=${old.id}`)
        )
      ),
      s.proc.output(),
    );
    assert.ok(!s.proc.output().includes(old.token!), "the token's text is not logged");
    assert.deepEqual(await curl(`:${fresh.token}`), { code: 0, out: "ok" }, "the new key's token");
  } finally {
    web.close();
    await agent.stop();
    await s.proc.stop();
    remove();
  }
});
