/**
 * Issued tokens (SPEC.md §6.4): the codec, the store's keys, rotation,
 * revocation and persistence, and tokens as SOCKS5 passwords on a real
 * server (our client and curl).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fmt } from "../src/addr.ts";
import { targetOf } from "../src/ip.ts";
import { randomBytes } from "../src/auth.ts";
import { type TokenFile, TokenStore } from "../src/server/tokens.ts";
import { parseToken, tokenBody, tokenText } from "../src/token.ts";
import { ALICE_TOKEN, curlThrough, echoTarget, socks, tunnel, until, webOk } from "./helpers.ts";

function memoryFile(): TokenFile & { text: string | null } {
  const f = {
    text: null as string | null,
    read: () => Promise.resolve(f.text),
    write: (t: string) => {
      f.text = t;
      return Promise.resolve();
    },
  };
  return f;
}

function clock(start = 1_800_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test("token: a token's text is base64url of at most 255 characters and parses back", async () => {
  const store = new TokenStore();
  const long = "p".repeat(96);
  const { id, token, expiresAt } = await store.issue("person", long, 3600);
  assert.ok(token.length <= 255, `${token.length} characters`);
  assert.match(token, /^[A-Za-z0-9_-]+$/);
  const t = parseToken(token)!;
  assert.equal(t.id, id);
  assert.equal(t.subject, long);
  assert.equal(t.kind, "person");
  assert.equal(t.expiresAt, expiresAt);
  assert.throws(() => tokenBody({ ...t, id: randomBytes(16), subject: "q".repeat(97) }), /1\.\.96/);
});

test("token: static tokens and near-misses are not tokens", async () => {
  const store = new TokenStore();
  const { token } = await store.issue("client", "alice", 60);
  assert.equal(parseToken(ALICE_TOKEN), null);
  assert.equal(parseToken(token + "A"), null, "one character more");
  assert.equal(parseToken(token.slice(0, -1)), null, "one character less");
  assert.equal(parseToken(token.replace(/^./, "B")), null, "version 1 only");
  // A last character with stray bits encodes the same bytes: one text per token only.
  const last = token.at(-1)!;
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const stray = alphabet[(alphabet.indexOf(last) + 1) % 64]!;
  if (token.length % 4 !== 0) assert.equal(parseToken(token.slice(0, -1) + stray), null);
});

test("token store: refusals name their reason; a remembered token is still checked for expiry and revocation", async () => {
  const c = clock();
  const store = new TokenStore(null, c.now);
  const a = await store.issue("client", "alice", 60);
  const b = await store.issue("client", "bob", 600);
  assert.equal((await store.check(a.token))?.ok, true);
  assert.equal((store.check(a.token) as { ok: boolean }).ok, true, "remembered: answered at once");
  await store.revoke((t) => t.id === a.id);
  assert.deepEqual(pick(await store.check(a.token)), { ok: false, error: "revoked" });
  c.t += 600;
  assert.deepEqual(pick(await store.check(b.token)), { ok: false, error: "expired" });
  // A forged signature under a known key, and a token of a key this server never had.
  const t = parseToken(b.token)!;
  const forged = tokenText(t.signed, randomBytes(64));
  assert.deepEqual(pick(await store.check(forged)), { ok: false, error: "bad signature" });
  const other = await new TokenStore(null, c.now).issue("client", "alice", 60);
  assert.deepEqual(pick(await store.check(other.token)), { ok: false, error: "unknown key" });
  assert.equal(store.check(ALICE_TOKEN), null);
});

test("token store: after rotation the old key is accepted until its tokens expire, then dropped", async () => {
  const c = clock();
  const file = memoryFile();
  const store = new TokenStore(file, c.now);
  const old = await store.issue("client", "alice", 100);
  const oldKey = parseToken(old.token)!.keyId;
  const newKey = await store.rotate();
  assert.notEqual(newKey, oldKey);
  const fresh = await store.issue("client", "alice", 1000);
  assert.equal(parseToken(fresh.token)!.keyId, newKey);
  assert.equal((await store.check(old.token))?.ok, true, "old key still accepted");
  c.t += 100;
  store.list(); // prunes
  assert.deepEqual(pick(await store.check(old.token)), { ok: false, error: "unknown key" });
  assert.equal(JSON.parse(file.text!).keys.length, 2, "not yet written without a change");
  await store.issue("client", "bob", 10);
  assert.equal(JSON.parse(file.text!).keys.length, 1, "the rotated-out key is gone from the file");
  assert.equal((await store.check(fresh.token))?.ok, true);
});

test("token store: keys and revocations persist in the file until the token expires", async () => {
  const c = clock();
  const file = memoryFile();
  const first = new TokenStore(file, c.now);
  const a = await first.issue("client", "alice", 60);
  const b = await first.issue("client", "alice", 120);
  await first.revoke((t) => t.id === a.id);
  const second = new TokenStore(file, c.now);
  assert.deepEqual(pick(await second.check(a.token)), { ok: false, error: "revoked" });
  assert.equal((await second.check(b.token))?.ok, true);
  assert.deepEqual(second.list().map((t) => [t.id, t.revoked]), [[a.id, true], [b.id, false]]);
  c.t += 60;
  await second.revoke((t) => t.id === b.id);
  assert.deepEqual(JSON.parse(file.text!).tokens.map((t: { id: string }) => t.id), [b.id]);
});

function pick(r: Awaited<ReturnType<TokenStore["check"]>>) {
  return r && (r.ok ? { ok: true } : { ok: false, error: r.error.reason });
}

test("token: an issued token is a SOCKS5 password; the user name may be @agent or empty", async () => {
  const t = await tunnel();
  const echo = await echoTarget(t.net);
  try {
    const target = targetOf("127.0.0.1", echo.addr.port);
    const alice = await t.server.tokens.issue("client", "alice", 60);
    const bob = await t.server.tokens.issue("client", "bob", 60);
    for (const user of ["", "@office", "alice", "alice@office"]) {
      const r = await socks(t.net, t.socks, user || "x", alice.token, target);
      r.conn.close();
      // Our client sends no auth for an empty name: "x" stands for a wrong client part.
      assert.equal(r.auth, user === "" ? 1 : 0, `user ${JSON.stringify(user)}`);
    }
    const wrong = await socks(t.net, t.socks, "bob@office", alice.token, target);
    wrong.conn.close();
    assert.equal(wrong.auth, 1, "a client part other than the token's subject");
    await t.server.tokens.revoke((x) => x.id === bob.id);
    const revoked = await socks(t.net, t.socks, "@office", bob.token, target);
    revoked.conn.close();
    assert.equal(revoked.auth, 1);
    assert.ok(
      await until(() => t.logs.some((l) => /reason=revoked/.test(l) && l.includes(bob.id))),
    );
    assert.ok(t.logs.some((l) => /reason="token of another client"/.test(l)));
    assert.ok(!t.logs.some((l) => l.includes(alice.token)), "no token in the log");
    assert.ok(t.logs.some((l) => /stream ended/.test(l) && l.includes(`token=${alice.id}`)));
  } finally {
    await echo.close();
    await t.close();
  }
});

test("token: curl through the SOCKS5 port with an issued token, refused once it expires", async () => {
  const t = await tunnel();
  const web = await webOk(t.net);
  try {
    const { token } = await t.server.tokens.issue("client", "alice", 2);
    const curl = (user: string) => curlThrough(fmt(t.socks), web.addr.port, `${user}:${token}`);
    const first = await curl("");
    assert.deepEqual(first, { code: 0, out: "ok" }, t.logs.join("\n"));
    assert.equal((await curl("@office")).code, 0);
    let last: { code: number | null; out: string } = first;
    for (let i = 0; i < 40 && last.code === 0; i++) {
      await until(() => false, 200);
      last = await curl("@office");
    }
    assert.notEqual(last.code, 0, "refused once expired");
    assert.ok(t.logs.some((l) => /reason=expired/.test(l)));
  } finally {
    web.close();
    await t.close();
  }
});
