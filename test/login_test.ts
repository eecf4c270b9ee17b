/**
 * Logins cost the same work whether the name exists or not (SPEC.md §11.2):
 * unknown names and unconfigured methods are verified against a decoy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthMethod } from "../src/messages.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { checkProof, checkSocksPassword } from "../src/server/login.ts";
import type { Verifier } from "../src/auth.ts";

const config = parseServerConfig(
  JSON.stringify({
    agents: [{ name: "office", token: "agent-token-0123456789" }],
    clients: [{ name: "alice", token: "alice-token-0123456789" }],
  }),
  "(test)",
);

/** A decoy that records what it was asked to verify. */
function countingDecoy() {
  const calls: Array<{ method: number; data: Uint8Array; proof: Uint8Array }> = [];
  const of = (method: number): Promise<Verifier> =>
    Promise.resolve({
      method,
      verify: (data, proof) => {
        calls.push({ method, data, proof });
        return Promise.resolve(true); // even a decoy that "accepts" must not let anyone in
      },
    });
  return { calls, of };
}

test("login: an unknown name is verified against a decoy of the offered method", async () => {
  const d = countingDecoy();
  const data = new Uint8Array([1, 2, 3]);
  const proof = new Uint8Array(64);
  const r = await checkProof(config.agents.get("nobody"), AuthMethod.ed25519, data, proof, d.of);
  assert.deepEqual(r, { ok: false, error: "unknown name" });
  assert.equal(d.calls.length, 1);
  assert.equal(d.calls[0]!.method, AuthMethod.ed25519);
  assert.equal(d.calls[0]!.data, data);
  assert.equal(d.calls[0]!.proof, proof);
});

test("login: a method not configured for a known name is verified against a decoy too", async () => {
  const d = countingDecoy();
  const r = await checkProof(
    config.agents.get("office"),
    AuthMethod.ed25519,
    new Uint8Array(1),
    new Uint8Array(64),
    d.of,
  );
  assert.deepEqual(r, { ok: false, error: "auth method not configured" });
  assert.equal(d.calls.length, 1);
});

test("login: a known name's own verifier decides; the decoy is not used", async () => {
  const d = countingDecoy();
  const r = await checkProof(
    config.agents.get("office"),
    AuthMethod.token,
    new Uint8Array(1),
    new Uint8Array(32),
    d.of,
  );
  assert.deepEqual(r, { ok: false, error: "bad proof" });
  assert.equal(d.calls.length, 0);
});

test("login: a SOCKS5 password for an unknown client costs a token check", async () => {
  const d = countingDecoy();
  assert.equal(await checkSocksPassword(undefined, "some-password", d.of), false);
  assert.equal(d.calls.length, 1);
  assert.equal(d.calls[0]!.method, AuthMethod.token);
  assert.equal(d.calls[0]!.proof.length, 32, "an HMAC of the password was computed");
  assert.equal(
    await checkSocksPassword(config.clients.get("alice"), "alice-token-0123456789", d.of),
    true,
  );
  assert.equal(await checkSocksPassword(config.clients.get("alice"), "wrong", d.of), false);
  assert.equal(d.calls.length, 1, "known clients use their own token");
});
