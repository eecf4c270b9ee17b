import assert from "node:assert/strict";
import { test } from "node:test";
import {
  failure,
  isResponse,
  isTruncated,
  messageId,
  REFUSED,
  SERVFAIL,
  withId,
} from "../src/dns_message.ts";

/** A query for intranet.corp A with id 0x1234, RD set (as dig sends it, without EDNS). */
const HEADER = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
const NAME = [
  8,
  ...new TextEncoder().encode("intranet"),
  4,
  ...new TextEncoder().encode("corp"),
  0,
];
const QUERY = new Uint8Array([...HEADER, ...NAME, 0, 1, 0, 1]);

test("id, QR and TC are read from the header; a short message has no id", () => {
  assert.equal(messageId(QUERY), 0x1234);
  assert.equal(isResponse(QUERY), false);
  assert.equal(isTruncated(QUERY), false);
  assert.equal(messageId(QUERY.subarray(0, 11)), null);
  const answer = QUERY.slice();
  answer[2] = 0x83; // QR, TC, RD
  assert.equal(isResponse(answer), true);
  assert.equal(isTruncated(answer), true);
});

test("withId copies the message with another id", () => {
  const m = withId(QUERY, 0xbeef);
  assert.equal(messageId(m), 0xbeef);
  assert.equal(messageId(QUERY), 0x1234);
  assert.deepEqual(m.subarray(2), QUERY.subarray(2));
});

test("failure answers with the query's id, opcode, RD and question, and no records", () => {
  const q = QUERY.slice();
  q[10] = 0; // an additional record count the answer must not keep
  q[11] = 1;
  const f = failure(new Uint8Array([...q, 0, 0, 41, 4, 208]), SERVFAIL);
  assert.equal(f.length, QUERY.length); // header + question, the rest dropped
  assert.equal(messageId(f), 0x1234);
  assert.equal(f[2], 0x81); // QR, RD
  assert.equal(f[3], SERVFAIL);
  assert.deepEqual([...f.subarray(4, 12)], [0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(f.subarray(12), QUERY.subarray(12));
  assert.equal(failure(QUERY, REFUSED)[3], REFUSED);
});

test("failure of a query whose question does not parse: the header alone, no question", () => {
  const cut = QUERY.slice(0, 20); // the name runs past the end
  const f = failure(cut, SERVFAIL);
  assert.equal(f.length, 12);
  assert.equal(messageId(f), 0x1234);
  assert.deepEqual([...f.subarray(4, 12)], [0, 0, 0, 0, 0, 0, 0, 0]);
  const two = QUERY.slice();
  two[5] = 2; // two questions: not taken apart
  assert.equal(failure(two, SERVFAIL).length, 12);
  const label = QUERY.slice();
  label[12] = 64; // a label over 63 bytes
  assert.equal(failure(label, SERVFAIL).length, 12);
});
