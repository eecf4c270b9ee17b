/**
 * Datagram records (SPEC.md §2.5, spec/udp_record.ksy): the encoder against
 * Kaitai's generated parser and against UdpRecordReader, golden bytes, the
 * length limits checked from the 2-byte header, records split at every
 * byte, and every refusal a ProtocolError. Random and mutated bytes:
 * test/fuzz_test.ts (scripts/fuzz_udp.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { UdpRecord } from "../generated/UdpRecord.js";
import { ProtocolError } from "../src/errors.ts";
import { addrTarget, kaitaiStream } from "../src/kaitai.ts";
import type { Target } from "../src/messages.ts";
import { UDP_MAX_PAYLOAD } from "../src/net.ts";
import {
  encodeUdpRecord,
  parseUdpRecord,
  UDP_RECORD_MAX_BODY,
  UDP_RECORD_MIN_BODY,
  UdpRecordReader,
} from "../src/udp_records.ts";
import { udpRecordValue } from "../scripts/fuzz_udp.ts";

const RUNS = Number(globalThis.process?.env?.RUNS ?? "") || 300;
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
const invalid = (words: RegExp) => (e: unknown) => {
  assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${String(e)}`);
  assert.equal(e.code, "invalid_message");
  assert.equal(e.reply, false);
  assert.match(e.message, words);
  return true;
};

test("udp_records: encode -> Kaitai's parser, parseUdpRecord and the reader agree", () => {
  fc.assert(
    fc.property(udpRecordValue, ({ addr, data }) => {
      const b = encodeUdpRecord(addr, data);
      const k = new UdpRecord(kaitaiStream(b));
      assert.equal(k.lenBody, b.length - 2);
      assert.deepEqual(addrTarget(k.body.addr), addr);
      assert.deepEqual(Uint8Array.from(k.body.data), data);
      const p = parseUdpRecord(b);
      assert.deepEqual(p.addr, addr);
      assert.deepEqual(Uint8Array.from(p.data), data);
      const r = new UdpRecordReader();
      r.push(b);
      assert.deepEqual(r.next(), p);
      assert.equal(r.next(), null);
    }),
    { numRuns: RUNS },
  );
});

test("udp_records: golden bytes (IPv4, IPv6, domain)", () => {
  const cases: [Target, string][] = [
    [{ type: "ipv4", host: "10.0.0.53", port: 53 }, "0009 01 0a000035 0035"],
    [
      { type: "ipv6", host: "2001:db8::1", port: 443 },
      "0015 04 20010db8000000000000000000000001 01bb",
    ],
    [{ type: "domain", host: "ns.corp", port: 53 }, "000d 03 07 6e732e636f7270 0035"],
  ];
  for (const [addr, head] of cases) {
    const b = encodeUdpRecord(addr, hex("cafe"));
    assert.deepEqual(b, hex(head + "cafe"));
    assert.deepEqual(parseUdpRecord(b), { addr, data: hex("cafe") });
  }
  // Empty data is a datagram too; the smallest record names a one-byte host.
  const empty = encodeUdpRecord({ type: "ipv4", host: "127.0.0.1", port: 9 }, new Uint8Array(0));
  assert.equal(empty.length, 2 + 7);
  const least = encodeUdpRecord({ type: "domain", host: "a", port: 9 }, new Uint8Array(0));
  assert.equal(least.length, 2 + UDP_RECORD_MIN_BODY);
  assert.equal(parseUdpRecord(empty).data.length, 0);
});

test("udp_records: the limits, on both sides", () => {
  const v6: Target = { type: "ipv6", host: "fd00::53", port: 53 };
  const v4: Target = { type: "ipv4", host: "10.0.0.53", port: 53 };
  const most = encodeUdpRecord(v6, new Uint8Array(UDP_MAX_PAYLOAD));
  assert.equal(most.length, 2 + UDP_RECORD_MAX_BODY);
  assert.equal(parseUdpRecord(most).data.length, UDP_MAX_PAYLOAD);
  assert.throws(() => encodeUdpRecord(v4, new Uint8Array(UDP_MAX_PAYLOAD + 1)), RangeError);
  const domain: Target = { type: "domain", host: "x".repeat(255), port: 53 };
  assert.throws(() => encodeUdpRecord(domain, new Uint8Array(UDP_MAX_PAYLOAD)), /exceeds/);
  // An IPv4 address with 65508..65519 bytes fits len_body but not the data limit.
  const over = new Uint8Array(2 + 0xffee);
  over.set(hex("ffee 01 0a000035 0035"));
  assert.throws(() => parseUdpRecord(over), invalid(/Cannot parse datagram record/));
});

test("udp_records: len_body is refused from its 2 bytes, before the body arrives", () => {
  for (const len of [0, 1, 4, UDP_RECORD_MAX_BODY + 1, 0xffff]) {
    const r = new UdpRecordReader();
    r.push(Uint8Array.of(len >> 8));
    assert.equal(r.next(), null);
    r.push(Uint8Array.of(len & 0xff));
    assert.throws(() => r.next(), invalid(/outside 5\.\.65526/));
    // Broken for good: more bytes are ignored, the same error again.
    r.push(new Uint8Array(10));
    assert.equal(r.buffered, 0);
    assert.throws(() => r.next(), invalid(/outside/));
  }
});

test("udp_records: malformed bodies are ProtocolErrors", () => {
  const bad: [string, RegExp][] = [
    ["0007 02 0a000035 0035", /Cannot parse datagram record/], // atyp 2
    ["0007 04 0a000035 0035", /Cannot parse datagram record/], // IPv6 in 7 bytes
    ["0007 03 00 0035 000000", /Cannot parse datagram record/], // empty domain
    ["0007 03 09 6e732e636f", /Cannot parse datagram record/], // domain past the body
    ["0007 03 02 fffe 0035 00", /UTF-8/],
  ];
  for (const [h, words] of bad) {
    assert.throws(() => parseUdpRecord(hex(h)), invalid(words), h);
    const r = new UdpRecordReader();
    r.push(hex(h));
    assert.throws(() => r.next(), invalid(words), h);
  }
  assert.throws(() => parseUdpRecord(hex("0009 01 0a000035 0035 ca")), invalid(/bytes for a/));
});

test("udp_records: records split at every byte, and several in one chunk", () => {
  const records = [
    encodeUdpRecord({ type: "ipv4", host: "10.0.0.53", port: 53 }, hex("0102")),
    encodeUdpRecord({ type: "domain", host: "ns.corp", port: 53 }, new Uint8Array(300).fill(7)),
    encodeUdpRecord({ type: "ipv6", host: "fd00::1", port: 9 }, new Uint8Array(0)),
  ];
  const all = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of records) {
    all.set(r, o);
    o += r.length;
  }
  const want = records.map(parseUdpRecord);
  for (let cut = 0; cut <= all.length; cut++) {
    const r = new UdpRecordReader();
    const got = [];
    for (const piece of [all.subarray(0, cut), all.subarray(cut)]) {
      r.push(piece);
      for (let x = r.next(); x !== null; x = r.next()) got.push(x);
    }
    assert.deepEqual(got, want, `cut at ${cut}`);
    assert.equal(r.buffered, 0);
  }
  // One byte at a time.
  const r = new UdpRecordReader();
  const got = [];
  for (const b of all) {
    r.push(Uint8Array.of(b));
    for (let x = r.next(); x !== null; x = r.next()) got.push(x);
  }
  assert.deepEqual(got, want);
});
