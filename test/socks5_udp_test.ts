/**
 * RFC 1928 §7 UDP datagrams (spec/socks5_udp_datagram.ksy): the encoder
 * against Kaitai's generated parser and against parseUdpDatagram, golden
 * bytes, and every refusal typed. Random and mutated bytes: test/fuzz_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Socks5UdpDatagram } from "../generated/Socks5UdpDatagram.js";
import { SocksError, type SocksErrorCode } from "../src/errors.ts";
import { addrTarget, kaitaiStream } from "../src/kaitai.ts";
import { UDP_MAX_PAYLOAD } from "../src/net.ts";
import { parseUdpDatagram } from "../src/socks5_decode.ts";
import { udpDatagram } from "../src/socks5_encode.ts";
import { socks } from "./arbitraries.ts";

const RUNS = Number(globalThis.process?.env?.RUNS ?? "") || 300;
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
const socksError = (code: SocksErrorCode, words?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SocksError, `expected SocksError ${code}, got ${String(e)}`);
  assert.equal(e.code, code);
  if (words) assert.match(e.message, words);
  return true;
};

test("socks5_udp: encode -> Kaitai's parser and parseUdpDatagram give the same datagram", () => {
  fc.assert(
    fc.property(socks.udpDatagram, ({ target, data }) => {
      const b = udpDatagram(target, data);
      const k = new Socks5UdpDatagram(kaitaiStream(b));
      assert.equal(k.reserved, 0);
      assert.equal(k.fragment, 0);
      assert.deepEqual(addrTarget(k.target), target);
      assert.deepEqual(Uint8Array.from(k.data), data);
      const p = parseUdpDatagram(b);
      assert.deepEqual(p.target, target);
      assert.deepEqual(Uint8Array.from(p.data), data);
    }),
    { numRuns: RUNS },
  );
});

test("socks5_udp: golden bytes (IPv4, IPv6, domain)", () => {
  const cases: [Parameters<typeof udpDatagram>[0], string][] = [
    [{ type: "ipv4", host: "10.0.0.53", port: 53 }, "0000 00 01 0a000035 0035"],
    [
      { type: "ipv6", host: "2001:db8::1", port: 443 },
      "0000 00 04 20010db8000000000000000000000001 01bb",
    ],
    [{ type: "domain", host: "ns.corp", port: 53 }, "0000 00 03 07 6e732e636f7270 0035"],
  ];
  for (const [target, header] of cases) {
    const b = udpDatagram(target, hex("cafe"));
    assert.deepEqual(b, hex(header + "cafe"));
    assert.deepEqual(parseUdpDatagram(b), { target, data: hex("cafe") });
  }
  // Data may be empty; the data is a view of the datagram, not a copy.
  const b = udpDatagram({ type: "ipv4", host: "127.0.0.1", port: 9 }, new Uint8Array(0));
  assert.equal(b.length, 10);
  const p = parseUdpDatagram(b);
  assert.equal(p.data.length, 0);
  assert.equal(p.data.buffer, b.buffer);
});

test("socks5_udp: a fragment is reported as such, before the rest is parsed", () => {
  for (const frag of [1, 0x7f, 0x80, 0xff]) {
    // A fragment with an unknown address type: still `fragment`, the caller drops it.
    for (
      const b of [
        hex(`0000 ${frag.toString(16).padStart(2, "0")} 01 0a000035 0035 cafe`),
        Uint8Array.of(0, 0, frag, 9),
      ]
    ) {
      assert.throws(() => parseUdpDatagram(b), socksError("fragment", /fragment/));
    }
  }
});

test("socks5_udp: malformed datagrams are typed refusals", () => {
  const refused: [Uint8Array, SocksErrorCode, RegExp][] = [
    [new Uint8Array(0), "invalid_message", /truncated/],
    [hex("0000 00"), "invalid_message", /truncated/],
    [hex("0000 00 01 0a0000"), "invalid_message", /truncated/],
    [hex("0000 00 04 2001"), "invalid_message", /truncated/],
    [hex("0000 00 03 07 6e73"), "invalid_message", /truncated/],
    [hex("0000 00 03 00 0035"), "invalid_message", /empty domain/],
    [hex("0100 00 01 0a000035 0035"), "invalid_message", /reserved/],
    [hex("0001 00 01 0a000035 0035"), "invalid_message", /reserved/],
    [hex("0000 00 02 0a000035 0035"), "bad_address_type", /address type 2/],
    [hex("0000 00 03 01 ff 0035"), "bad_domain", /UTF-8/],
  ];
  for (const [b, code, words] of refused) {
    assert.throws(() => parseUdpDatagram(b), socksError(code, words));
  }
});

test("socks5_udp: the 65507-byte limit, on both sides, checked before anything else", () => {
  const target = { type: "ipv4" as const, host: "10.0.0.53", port: 53 };
  const most = udpDatagram(target, new Uint8Array(UDP_MAX_PAYLOAD - 10));
  assert.equal(most.length, UDP_MAX_PAYLOAD);
  assert.equal(parseUdpDatagram(most).data.length, UDP_MAX_PAYLOAD - 10);
  assert.throws(() => udpDatagram(target, new Uint8Array(UDP_MAX_PAYLOAD - 9)), RangeError);
  // One byte more, with a fragment number too: the size is what is refused.
  const over = new Uint8Array(UDP_MAX_PAYLOAD + 1);
  over[2] = 1;
  assert.throws(
    () => parseUdpDatagram(over),
    socksError("invalid_message", /exceed the limit of 65507/),
  );
});
