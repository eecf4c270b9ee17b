/**
 * The rules that span fields (src/across.ts): what a .ksy cannot state is
 * still refused on decode and not written by a strict encode.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "../src/decode.ts";
import { encode, encodeUnchecked } from "../src/encode.ts";
import { ProtocolError } from "../src/errors.ts";
import { AuthMethod, type Message } from "../src/messages.ts";

const hello = (authMethod: number): Message => ({
  type: "CLIENT_HELLO",
  minVersion: 1,
  maxVersion: 1,
  authMethod,
  name: "",
  software: "test",
});

const refused = (msg: Message, why: RegExp) => {
  assert.throws(
    () => decode(encodeUnchecked(msg)),
    (e: unknown) =>
      e instanceof ProtocolError && e.code === "invalid_message" && why.test(e.message),
  );
  assert.throws(() => encode(msg), RangeError);
};

test("across: an empty name only with issued_token", () => {
  refused(hello(AuthMethod.token), /name is empty/);
  const ok = decode(encode(hello(AuthMethod.issued_token)));
  assert.equal(ok?.type === "CLIENT_HELLO" && ok.name, "");
});

test("across: AUTH proofs of 32, 64 or 96..191 bytes", () => {
  for (const n of [32, 64, 96, 191]) {
    const m = decode(encode({ type: "AUTH", proof: new Uint8Array(n) }));
    assert.equal(m?.type === "AUTH" && m.proof.length, n);
  }
  for (const n of [33, 65, 95]) {
    refused({ type: "AUTH", proof: new Uint8Array(n) }, new RegExp(`proof of ${n} bytes`));
  }
});

test("across: OPEN's client may be a person's subject, never a control character", () => {
  const open = (client: string): Message => ({
    type: "OPEN",
    streamId: 1,
    clientId: 7,
    client,
    protocol: 6,
    target: { type: "domain", host: "intranet.corp", port: 80 },
  });
  const m = decode(encode(open("alice@example.com")));
  assert.equal(m?.type === "OPEN" && m.client, "alice@example.com");
  refused(open("alice\nbob"), /control character/);
});
