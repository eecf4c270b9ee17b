/**
 * Round trips: IP text <-> bytes (src/ip.ts), every message type through
 * encode -> decode, every SOCKS5 message through socks5_encode -> parseX;
 * plus golden bytes and the encoders' input checks.
 *
 * Property runs default to 200 each; RUNS=n in the environment changes that.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { encode, encodeUnchecked, frame } from "../src/encode.ts";
import { encodeAddr, NO_ADDR } from "../src/writer.ts";
import {
  canonicalIP,
  formatHostPort,
  formatIPv4,
  formatIPv6,
  inCidr,
  ipKind,
  parseIP,
  parseIPv4,
  parseIPv6,
  targetOf,
} from "../src/ip.ts";
import { SocksError } from "../src/errors.ts";
import { decode } from "../src/decode.ts";
import { Frame } from "../generated/Frame.js";
import { kaitaiStream } from "../src/kaitai.ts";
import { checkHeader, Framer } from "../src/framer.ts";
import { type Message, MsgType, type MsgTypeName } from "../src/messages.ts";
import {
  greeting,
  methodSelection,
  reply,
  request,
  userpassReply,
  userpassRequest,
} from "../src/socks5_encode.ts";
import {
  parseGreeting,
  parseMethodSelection,
  parseReply,
  parseRequest,
  parseUserpassReply,
  parseUserpassRequest,
} from "../src/socks5_decode.ts";
import { concat, ipv6Bytes, message, messages, socks, target } from "./arbitraries.ts";

const RUNS = Number(globalThis.process?.env?.RUNS ?? "") || 200;
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
const ascii = (s: string) => new TextEncoder().encode(s);

// ------------------------------------------------------------------ ip.ts

test("ip: IPv4 parse/format vectors", () => {
  for (const s of ["0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.100.200", "1.2.3.4"]) {
    const b = parseIPv4(s);
    assert.ok(b, s);
    assert.equal(formatIPv4(b), s);
    assert.equal(ipKind(s), "ipv4");
  }
  assert.deepEqual(parseIPv4("1.2.3.4"), Uint8Array.of(1, 2, 3, 4));
  const bad = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3.00",
    "1..2.3",
    ".1.2.3",
    "1.2.3.",
    " 1.2.3.4",
    "1.2.3.4 ",
    "+1.2.3.4",
    "-1.2.3.4",
    "0x1.2.3.4",
    "1e2.1.1.1",
    "١.٢.٣.٤",
    "1.2.3.4/8",
    "localhost",
    "::1",
  ];
  for (const s of bad) assert.equal(parseIPv4(s), null, JSON.stringify(s));
});

test("ip: parseIPv4 agrees with the dotted-quad grammar on strings of digits and dots", () => {
  // The grammar, written the slow way: four parts of 0 or 1-9 then up to two digits, each <= 255.
  const reference = (s: string): number[] | null => {
    const parts = s.split(".");
    if (parts.length !== 4) return null;
    if (!parts.every((p) => /^(?:0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return null;
    return parts.map(Number);
  };
  const text = fc.string({ unit: fc.constantFrom(..."0123456789.".split("")), maxLength: 17 });
  fc.assert(
    fc.property(text, (s) => {
      const got = parseIPv4(s);
      assert.deepEqual(got && [...got], reference(s), JSON.stringify(s));
    }),
    { numRuns: 20_000 },
  );
});

test("ip: IPv6 canonical text (RFC 5952) vectors", () => {
  const vectors: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:0db8::0001", "2001:db8::1"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8::0:1", "2001:db8::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group is not compressed
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // tie: first run
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // longest run
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
    ["fd00:0000:0000:0000:0000:0000:0000:0001", "fd00::1"],
    ["FE80::ABCD:0:0:1", "fe80::abcd:0:0:1"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["::ffff:c000:0201", "::ffff:192.0.2.1"], // IPv4-mapped: mixed form
    ["::FFFF:10.0.0.1", "::ffff:10.0.0.1"],
    ["64:ff9b::1.2.3.4", "64:ff9b::102:304"], // other prefixes: hex only
    ["::1.2.3.4", "::102:304"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ];
  for (const [input, canon] of vectors) {
    const b = parseIPv6(input);
    assert.ok(b, input);
    assert.equal(formatIPv6(b), canon, input);
    assert.equal(canonicalIP(input), canon);
    assert.equal(ipKind(input), "ipv6");
    assert.deepEqual(parseIPv6(canon), b);
  }
  assert.deepEqual(parseIPv6("fd00::1"), hex("fd00 0000 0000 0000 0000 0000 0000 0001"));
});

test("ip: invalid IPv6 text is rejected", () => {
  const bad = [
    "",
    ":",
    ":::",
    "::::",
    "1::2::3",
    ":1::",
    "::1:",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8",
    "12345::",
    "g::",
    "::g",
    " ::1",
    "::1 ",
    "[::1]",
    "fe80::1%eth0",
    "fe80::1%1",
    "::/0",
    "::1.2.3",
    "::1.2.3.04",
    "::256.1.1.1",
    "1.2.3.4::",
    "1.2.3.4::1",
    "::1.2.3.4:1",
    "1:2:3:4:5:6:7:1.2.3.4",
    "1:2:3:4:5:6::1.2.3.4",
    "0x1::",
    "1:2:3:4:5:6:7:8:",
    ":1:2:3:4:5:6:7:8",
    "1.2.3.4",
  ];
  for (const s of bad) {
    assert.equal(parseIPv6(s), null, JSON.stringify(s));
    assert.equal(canonicalIP(s), s === "1.2.3.4" ? "1.2.3.4" : null, JSON.stringify(s));
  }
  for (const s of ["example.com", "", "localhost", "[::1]", "1.2.3.4.5"]) {
    assert.equal(ipKind(s), null, s);
  }
});

test("ip: IPv6 bytes -> text -> bytes, canonical text is a fixed point and matches WHATWG URL", () => {
  fc.assert(
    fc.property(ipv6Bytes, (b) => {
      const text = formatIPv6(b);
      assert.deepEqual(parseIPv6(text), b);
      assert.equal(canonicalIP(text), text);
      assert.equal(text, text.toLowerCase());
      assert.ok(!/(^|:)0[0-9a-f]/.test(text), `leading zero in ${text}`);
      // WHATWG URL serializes IPv6 the RFC 5952 way, except for the mixed IPv4-mapped form.
      if (!text.startsWith("::ffff:") || !text.includes(".")) {
        assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
      }
    }),
    { numRuns: RUNS * 5 },
  );
});

test("ip: every IPv6 / IPv4 text fast-check generates parses, and canonicalizes like WHATWG URL", () => {
  fc.assert(
    fc.property(fc.ipV6(), (s) => {
      const b = parseIPv6(s);
      assert.ok(b, s);
      const canon = formatIPv6(b);
      // (Embedded IPv4 left out: Bun's URL parser rejects some valid forms, e.g. `0::0:0:0:0.0.0.0`.)
      if (!canon.includes(".") && !s.includes(".")) {
        assert.equal(new URL(`http://[${s}]/`).hostname, `[${canon}]`);
      }
    }),
    { numRuns: RUNS * 5 },
  );
  fc.assert(
    fc.property(fc.ipV4(), (s) => {
      const b = parseIPv4(s);
      assert.ok(b, s);
      assert.equal(formatIPv4(b), s);
    }),
    { numRuns: RUNS },
  );
});

test("ip: parse never throws on arbitrary strings", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.%[]".split("")) }),
      ),
      (s) => {
        const r = parseIP(s);
        if (r) {
          assert.equal(r.bytes.length, r.kind === "ipv4" ? 4 : 16);
          const canon = canonicalIP(s)!;
          assert.deepEqual(parseIP(canon), r);
        }
      },
    ),
    { numRuns: RUNS * 5 },
  );
});

test("ip: inCidr", () => {
  const yes: [string, string, number][] = [
    ["10.1.2.3", "10.0.0.0", 8],
    ["10.255.255.255", "10.0.0.0", 8],
    ["192.168.1.1", "0.0.0.0", 0],
    ["192.168.1.1", "192.168.1.1", 32],
    ["172.31.0.1", "172.16.0.0", 12],
    ["10.0.0.1", "10.0.0.0", 31],
    ["fd00::1", "fd00::", 8],
    ["fdff:ffff::1", "fd00::", 8],
    ["2001:db8::1", "::", 0],
    ["2001:db8::1", "2001:db8::1", 128],
    ["2001:db8:8000::", "2001:db8:8000::", 33],
    ["::ffff:10.0.0.1", "10.0.0.0", 8], // IPv4-mapped reaches the IPv4 address
    ["::ffff:10.0.0.1", "::ffff:0:0", 96],
    ["10.0.0.9", "10.0.0.1", 24], // host bits in the base are ignored
  ];
  for (const [ip, base, p] of yes) assert.equal(inCidr(ip, base, p), true, `${ip} in ${base}/${p}`);
  const no: [string, string, number][] = [
    ["11.0.0.1", "10.0.0.0", 8],
    ["172.32.0.1", "172.16.0.0", 12],
    ["10.0.0.2", "10.0.0.0", 31],
    ["192.168.1.2", "192.168.1.1", 32],
    ["fe00::1", "fd00::", 8],
    ["2001:db8::2", "2001:db8::1", 128],
    ["2001:db8::", "2001:db8:8000::", 33],
    ["10.0.0.1", "::", 0], // families differ
    ["10.0.0.1", "::ffff:0:0", 96],
    ["fd00::1", "0.0.0.0", 0],
    ["::ffff:11.0.0.1", "10.0.0.0", 8],
    ["db.corp", "0.0.0.0", 0], // not an IP
    ["", "0.0.0.0", 0],
    ["010.0.0.1", "10.0.0.0", 8],
  ];
  for (const [ip, base, p] of no) {
    assert.equal(inCidr(ip, base, p), false, `${ip} not in ${base}/${p}`);
  }
  for (
    const [base, p] of [["10.0.0.0", 33], ["10.0.0.0", -1], ["10.0.0.0", 1.5], ["::", 129], [
      "x",
      8,
    ]] as const
  ) {
    assert.throws(() => inCidr("10.0.0.1", base, p), RangeError, `${base}/${p}`);
  }
});

test("ip: inCidr agrees with a bit-by-bit reference", () => {
  const bit = (b: Uint8Array, i: number) => (b[i >> 3]! >> (7 - (i & 7))) & 1;
  fc.assert(
    fc.property(
      ipv6Bytes,
      ipv6Bytes,
      fc.integer({ min: 0, max: 128 }),
      fc.nat(128),
      (a, b, p, k) => {
        // Make b share a prefix of k bits with a, to hit both outcomes.
        const c = Uint8Array.from(b);
        for (let i = 0; i < k; i++) {
          const m = 1 << (7 - (i & 7));
          c[i >> 3] = bit(a, i) ? c[i >> 3]! | m : c[i >> 3]! & ~m;
        }
        let expect = true;
        for (let i = 0; i < p; i++) if (bit(a, i) !== bit(c, i)) expect = false;
        const ta = formatIPv6(a);
        const tc = formatIPv6(c);
        assert.equal(inCidr(ta, tc, p), expect, `${ta} in ${tc}/${p}`);
      },
    ),
    { numRuns: RUNS * 5 },
  );
});

test("ip: targetOf and formatHostPort", () => {
  assert.deepEqual(targetOf("10.0.0.1", 22), { type: "ipv4", host: "10.0.0.1", port: 22 });
  assert.deepEqual(targetOf("FD00::0001", 443), { type: "ipv6", host: "fd00::1", port: 443 });
  assert.deepEqual(targetOf("[::1]", 80), { type: "ipv6", host: "::1", port: 80 });
  assert.deepEqual(targetOf("db.corp", 5432), { type: "domain", host: "db.corp", port: 5432 });
  assert.deepEqual(targetOf("010.0.0.1", 1), { type: "domain", host: "010.0.0.1", port: 1 });
  assert.deepEqual(targetOf("a".repeat(255), 0), {
    type: "domain",
    host: "a".repeat(255),
    port: 0,
  });
  assert.deepEqual(targetOf("x", 65535), { type: "domain", host: "x", port: 65535 });
  for (
    const [h, p] of [["", 1], ["a".repeat(256), 1], ["é".repeat(128), 1], ["x", -1], ["x", 65536], [
      "x",
      1.5,
    ], [
      "[db.corp]",
      1,
    ], ["[1.2.3.4]", 1]] as const
  ) {
    assert.throws(() => targetOf(h, p), RangeError, `${h}:${p}`);
  }
  assert.equal(formatHostPort("fd00::1", 22), "[fd00::1]:22");
  assert.equal(formatHostPort("10.0.0.1", 22), "10.0.0.1:22");
  assert.equal(formatHostPort("db.corp", 22), "db.corp:22");
});

// ------------------------------------------------------------- encode.ts

test("encode: golden bytes", () => {
  assert.deepEqual(
    encode({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 2,
      authMethod: 1,
      name: "a",
      software: "s",
    }),
    hex("42525257 01 01 0000 00000007  01 02 01 01 61 01 73"),
  );
  assert.deepEqual(
    encode({ type: "CONNECT_RESULT", status: 4, reason: 7, bound: NO_ADDR }),
    hex("42525257 01 33 0000 00000009  04 07 01 00000000 0000"),
  );
  assert.deepEqual(
    encode({ type: "CHECK", agent: "a" }),
    hex("42525257 01 34 0000 00000002  01 61"),
  );
  assert.deepEqual(
    encode({
      type: "CONNECT",
      agent: "",
      protocol: 6,
      target: { type: "domain", host: "db.corp", port: 5432 },
    }),
    hex("42525257 01 32 0000 0000000d  00 06 03 07 64622e636f7270 1538"),
  );
  assert.deepEqual(
    encode({ type: "ERROR", code: 9, message: "no" }),
    hex("42525257 01 05 0000 00000006  0009 0002 6e6f"),
  );
  assert.deepEqual(
    encode({ type: "POOL_REQUEST", requestId: 0x01020304, count: 5 }),
    hex("42525257 01 11 0000 00000006  01020304 0005"),
  );
  assert.deepEqual(
    encode({
      type: "ANNOUNCE",
      rules: [
        { kind: "host", client: "", pattern: "*", portMin: 1, portMax: 2, protocol: 6 },
        {
          kind: "cidr4",
          client: "c",
          addr: "10.0.0.0",
          prefix: 8,
          portMin: 53,
          portMax: 53,
          protocol: 17,
        },
        {
          kind: "cidr6",
          client: "",
          addr: "fd00::",
          prefix: 8,
          portMin: 0,
          portMax: 65535,
          protocol: 6,
        },
      ],
    }),
    hex(
      "42525257 01 10 0000 00000030  0003" +
        "01 00 01 2a 0001 0002 06" +
        "02 01 63 0a000000 08 0035 0035 11" +
        "03 00 fd000000000000000000000000000000 08 0000 ffff 06",
    ),
  );
  assert.deepEqual(
    encode({
      type: "OPEN_RESULT",
      streamId: 1,
      status: 5,
      bound: { type: "ipv6", host: "::1", port: 1 },
    }),
    hex("42525257 01 22 0000 00000018  00000001 05 04 00000000000000000000000000000001 0001"),
  );
  assert.deepEqual(
    encode({
      type: "LINK_HELLO",
      version: 3,
      agentId: 0x0a0b0c0d,
      sessionId: new Uint8Array(16).fill(0x11),
      seq: 2,
      proof: new Uint8Array(32).fill(0xee),
    }),
    hex(
      "42525257 01 23 0000 0000003a  03 0a0b0c0d" + "11".repeat(16) + "00000002 20" +
        "ee".repeat(32),
    ),
  );
  assert.deepEqual(
    encodeAddr({ type: "ipv4", host: "1.2.3.4", port: 258 }),
    hex("01 01020304 0102"),
  );
  assert.deepEqual(frame(0x80, Uint8Array.of(9)), hex("42525257 01 80 0000 00000001 09"));
  // Each call returns a fresh buffer of exactly the frame's size.
  const a = encode({ type: "CLIENT_READY", clientId: 1 });
  const b = encode({ type: "CLIENT_READY", clientId: 2 });
  assert.notEqual(a.buffer, b.buffer);
  assert.equal(a.buffer.byteLength, 16);
  assert.deepEqual(a, hex("42525257 01 31 0000 00000004 00000001"));
});

test("socks5_encode: golden bytes", () => {
  assert.deepEqual(greeting([0, 2]), hex("05 02 00 02"));
  assert.deepEqual(greeting(Uint8Array.of(2)), hex("05 01 02"));
  assert.deepEqual(methodSelection(0xff), hex("05 ff"));
  assert.deepEqual(userpassRequest("alice@db", "t0k"), hex("01 08 616c6963654064 62 03 74306b"));
  assert.deepEqual(
    userpassRequest(Uint8Array.of(1), Uint8Array.of(2, 3)),
    hex("01 01 01 02 02 03"),
  );
  assert.deepEqual(userpassReply(1), hex("01 01"));
  assert.deepEqual(
    request(1, { type: "domain", host: "example.com", port: 443 }),
    Uint8Array.of(5, 1, 0, 3, 11, ...ascii("example.com"), 0x01, 0xbb),
  );
  assert.deepEqual(
    request(1, { type: "ipv4", host: "127.0.0.1", port: 80 }),
    hex("05 01 00 01 7f000001 0050"),
  );
  assert.deepEqual(reply(0), hex("05 00 00 01 00000000 0000"));
  assert.deepEqual(
    reply(7, { type: "ipv6", host: "fd00::2", port: 9 }),
    hex("05 07 00 04 fd000000000000000000000000000002 0009"),
  );
});

/** Valid values to break one field at a time. */
const hello = {
  type: "AGENT_HELLO",
  minVersion: 1,
  maxVersion: 1,
  authMethod: 1,
  name: "agent",
  software: "",
} as const;
const t4 = { type: "ipv4", host: "10.0.0.1", port: 1 } as const;
const linkHello = {
  type: "LINK_HELLO",
  version: 3,
  agentId: 1,
  sessionId: new Uint8Array(16),
  seq: 1,
  proof: new Uint8Array(32),
} as const;

test("encode: values that cannot be encoded throw RangeError / TypeError naming the field", () => {
  const range: [Message, RegExp][] = [
    [{ ...hello, name: "" }, /AGENT_HELLO\.name/],
    [{ ...hello, name: "a".repeat(65) }, /AGENT_HELLO\.name/],
    [{ ...hello, name: "a b" }, /AGENT_HELLO\.name/],
    [{ ...hello, name: "é" }, /AGENT_HELLO\.name/],
    [{ ...hello, type: "CLIENT_HELLO", name: "x/y" }, /CLIENT_HELLO\.name/],
    [{ ...hello, software: "é".repeat(128) }, /software.*256/],
    [{ ...hello, minVersion: 0, maxVersion: 1 }, /AGENT_HELLO\.minVersion: must be >= 1, got 0/],
    [{ ...hello, minVersion: 2, maxVersion: 1 }, /maxVersion: must be >= minVersion \(2\), got 1/],
    [{ ...hello, maxVersion: 256 }, /maxVersion/],
    [{ ...hello, authMethod: -1 }, /authMethod/],
    [{ type: "CHALLENGE", version: 1, nonce: new Uint8Array(31) }, /nonce.*32/],
    [{ type: "AUTH", proof: new Uint8Array(256) }, /proof/],
    [{ type: "AUTH", proof: new Uint8Array(0) }, /AUTH\.proof/],
    [
      { type: "AUTH", proof: new Uint8Array(33) },
      /AUTH\.proof of 33 bytes is not 32, 64 or 96\.\.191/,
    ],
    [
      { type: "AUTH", proof: new Uint8Array(95) },
      /AUTH\.proof of 95 bytes is not 32, 64 or 96\.\.191/,
    ],
    [{ type: "AUTH", proof: new Uint8Array(192) }, /AUTH\.proof/],
    [{ type: "CHALLENGE", version: 0, nonce: new Uint8Array(32) }, /CHALLENGE\.version/],
    [{
      type: "POOL_HELLO",
      version: 0,
      agentId: 1,
      sessionId: new Uint8Array(16),
      seq: 1,
      proof: new Uint8Array(32),
    }, /POOL_HELLO\.version/],
    [{
      type: "POOL_HELLO",
      version: 1,
      agentId: 1,
      sessionId: new Uint8Array(16),
      seq: 1,
      proof: new Uint8Array(16),
    }, /POOL_HELLO\.proof/],
    [{ ...linkHello, version: 0 }, /LINK_HELLO\.version: must be >= 1, got 0/],
    [{ ...linkHello, proof: new Uint8Array(63) }, /LINK_HELLO\.proof.*32 or 64/],
    [{ ...linkHello, sessionId: new Uint8Array(15) }, /LINK_HELLO\.sessionId/],
    [{
      type: "WELCOME",
      agentId: 2 ** 32,
      sessionId: new Uint8Array(16),
      heartbeatIntervalMs: 1,
      heartbeatTimeoutMs: 1,
      poolMin: 1,
      poolMax: 1,
    }, /agentId/],
    [{
      type: "WELCOME",
      agentId: 1,
      sessionId: new Uint8Array(17),
      heartbeatIntervalMs: 1,
      heartbeatTimeoutMs: 1,
      poolMin: 1,
      poolMax: 1,
    }, /sessionId/],
    [{ type: "ERROR", code: 70000, message: "" }, /ERROR\.code/],
    [{ type: "ERROR", code: 1, message: "x".repeat(1025) }, /ERROR\.message/],
    [{ type: "GOAWAY", code: 1, message: "€".repeat(342) }, /GOAWAY\.message.*1026/],
    [{
      type: "ANNOUNCE",
      rules: Array.from(
        { length: 513 },
        () => ({
          kind: "host",
          client: "",
          pattern: "*",
          portMin: 0,
          portMax: 0,
          protocol: 6,
        } as const),
      ),
    }, /at most 512/],
    [{
      type: "ANNOUNCE",
      rules: [{ kind: "host", client: "", pattern: "", portMin: 0, portMax: 0, protocol: 6 }],
    }, /pattern/],
    [{
      type: "ANNOUNCE",
      rules: [{
        kind: "host",
        client: "",
        pattern: "x".repeat(256),
        portMin: 0,
        portMax: 0,
        protocol: 6,
      }],
    }, /pattern/],
    [{
      type: "ANNOUNCE",
      rules: [{ kind: "host", client: "a b", pattern: "*", portMin: 0, portMax: 0, protocol: 6 }],
    }, /client/],
    [{
      type: "ANNOUNCE",
      rules: [{ kind: "host", client: "", pattern: "*", portMin: 2, portMax: 1, protocol: 6 }],
    }, /portMin/],
    [{
      type: "ANNOUNCE",
      rules: [{
        kind: "cidr4",
        client: "",
        addr: "10.0.0.0",
        prefix: 33,
        portMin: 0,
        portMax: 0,
        protocol: 6,
      }],
    }, /prefix/],
    [{
      type: "ANNOUNCE",
      rules: [{
        kind: "cidr4",
        client: "",
        addr: "fd00::",
        prefix: 8,
        portMin: 0,
        portMax: 0,
        protocol: 6,
      }],
    }, /addr/],
    [{
      type: "ANNOUNCE",
      rules: [{
        kind: "cidr6",
        client: "",
        addr: "fd00::",
        prefix: 129,
        portMin: 0,
        portMax: 0,
        protocol: 6,
      }],
    }, /prefix/],
    [{
      type: "ANNOUNCE",
      rules: [{
        kind: "cidr6",
        client: "",
        addr: "10.0.0.0",
        prefix: 8,
        portMin: 0,
        portMax: 0,
        protocol: 6,
      }],
    }, /addr/],
    [{ type: "POOL_REQUEST", requestId: 1, count: 0 }, /count/],
    [{ type: "POOL_CONFIRM", requestId: -1, count: 0 }, /requestId/],
    [{ type: "PING", data: new Uint8Array(7) }, /PING\.data/],
    [{ type: "PONG", data: new Uint8Array(9) }, /PONG\.data/],
    [{
      type: "POOL_HELLO",
      version: 1,
      agentId: 1,
      sessionId: new Uint8Array(16),
      seq: 1.5,
      proof: new Uint8Array(0),
    }, /seq/],
    [
      { type: "OPEN", streamId: 1, clientId: 1, client: "", protocol: 6, target: t4 },
      /OPEN\.client/,
    ],
    [
      {
        type: "OPEN",
        streamId: 1,
        clientId: 1,
        client: "c",
        protocol: 6,
        target: { ...t4, host: "10.0.0.256" },
      },
      /target\.host/,
    ],
    [
      {
        type: "OPEN",
        streamId: 1,
        clientId: 1,
        client: "c",
        protocol: 6,
        target: { ...t4, port: 65536 },
      },
      /target\.port/,
    ],
    [{
      type: "OPEN",
      streamId: 1,
      clientId: 1,
      client: "c",
      protocol: 6,
      target: { type: "ipv6", host: "10.0.0.1", port: 1 },
    }, /target\.host/],
    [{
      type: "OPEN",
      streamId: 1,
      clientId: 1,
      client: "c",
      protocol: 6,
      target: { type: "domain", host: "", port: 1 },
    }, /target\.host/],
    [{
      type: "OPEN",
      streamId: 1,
      clientId: 1,
      client: "c",
      protocol: 6,
      target: { type: "domain", host: "x".repeat(256), port: 1 },
    }, /target\.host/],
    [{ type: "OPEN_RESULT", streamId: 1, status: 256, bound: t4 }, /status/],
    [{ type: "CONNECT", agent: "a".repeat(65), protocol: 6, target: t4 }, /CONNECT\.agent/],
    [{ type: "CONNECT_RESULT", status: 0, reason: 0, bound: { ...t4, port: NaN } }, /bound\.port/],
    [{ type: "CONNECT_RESULT", status: 1, reason: 256, bound: t4 }, /reason/],
    [{ type: "CHECK", agent: "a".repeat(65) }, /CHECK\.agent/],
    [{ type: "CLIENT_READY", clientId: Infinity }, /clientId/],
  ];
  for (const [msg, re] of range) {
    assert.throws(
      () => encode(msg),
      (e: unknown) => e instanceof RangeError && re.test(e.message),
      re.source,
    );
  }
  const type: [unknown, RegExp][] = [
    [{ type: "NOPE" }, /unknown message type/],
    [{ type: "toString" }, /unknown message type/],
    [{ ...hello, software: "\ud800" }, /lone surrogate/],
    [{ type: "AUTH", proof: [1, 2] }, /AUTH\.proof/],
    [{ type: "CLIENT_READY", clientId: "1" }, /clientId/],
    [
      { type: "CONNECT", agent: "", protocol: 6, target: { type: "unix", host: "/x", port: 0 } },
      /target\.type/,
    ],
    [{ type: "ANNOUNCE", rules: [{ kind: "regex", client: "", portMin: 0, portMax: 0 }] }, /kind/],
  ];
  for (const [msg, re] of type) {
    assert.throws(
      () => encode(msg as Message),
      (e: unknown) => e instanceof TypeError && re.test(e.message),
      re.source,
    );
  }
  // A failed encode leaves nothing behind for the next one.
  assert.deepEqual(
    encode({ type: "CLIENT_READY", clientId: 1 }),
    hex("42525257 01 31 0000 00000004 00000001"),
  );
});

test("encodeUnchecked: well-formed frames that break SPEC.md §10, for negative tests", () => {
  const f = encodeUnchecked({ ...hello, name: "bad name!", minVersion: 3, maxVersion: 2 });
  assert.deepEqual(f.subarray(12, 17), Uint8Array.of(3, 2, 1, 9, 0x62));
  assert.equal(
    encodeUnchecked({ type: "ERROR", code: 1, message: "x".repeat(5000) }).length,
    12 + 4 + 5000,
  );
  assert.deepEqual(
    encodeUnchecked({ type: "POOL_REQUEST", requestId: 1, count: 0 }),
    hex("42525257 01 11 0000 00000006 00000001 0000"),
  );
  assert.deepEqual(
    encodeUnchecked({
      type: "CONNECT",
      agent: "",
      protocol: 6,
      target: { type: "domain", host: "", port: 0 },
    }),
    hex("42525257 01 32 0000 00000006 00 06 03 00 0000"),
  );
  assert.deepEqual(
    encodeUnchecked({ type: "AUTH", proof: Uint8Array.of(1) }),
    hex("42525257 01 03 0000 00000002 01 01"),
  );
  // A LINK_HELLO of version 0, for the receiver's refusal.
  assert.equal(encodeUnchecked({ ...linkHello, version: 0 })[12], 0);
  // Still refuses what has no wire form.
  assert.throws(() => encodeUnchecked({ ...hello, name: "x".repeat(256) }), RangeError);
  assert.throws(() => encodeUnchecked({ type: "PING", data: new Uint8Array(7) }), RangeError);
  assert.throws(() => encodeUnchecked({ type: "CLIENT_READY", clientId: -1 }), RangeError);
});

test("socks5_encode: values that cannot be encoded throw RangeError", () => {
  assert.throws(() => greeting([]), RangeError);
  assert.throws(() => greeting(new Uint8Array(256)), RangeError);
  assert.throws(() => greeting([256]), RangeError);
  assert.throws(() => methodSelection(-1), RangeError);
  // An empty user name is allowed (SPEC.md §8: an issued token names the client); an empty password is not.
  assert.deepEqual(userpassRequest("", "p"), Uint8Array.of(1, 0, 1, 0x70));
  assert.throws(() => userpassRequest("u", ""), RangeError);
  assert.throws(() => userpassRequest("u", ""), RangeError);
  assert.throws(() => userpassRequest("u", "é".repeat(128)), RangeError);
  assert.throws(() => userpassRequest(new Uint8Array(256), "p"), RangeError);
  assert.throws(() => userpassReply(256), RangeError);
  assert.throws(() => request(1, { type: "domain", host: "", port: 1 }), RangeError);
  assert.throws(() => request(1, { type: "ipv4", host: "::1", port: 1 }), RangeError);
  assert.throws(() => reply(0, { type: "ipv4", host: "1.2.3.4", port: 70000 }), RangeError);
  // And recover.
  assert.deepEqual(userpassReply(0), hex("01 00"));
});

test("encode: every valid target encodes to atyp + body + port", () => {
  fc.assert(
    fc.property(target, (t) => {
      const b = encodeAddr(t);
      const atyp = { ipv4: 1, domain: 3, ipv6: 4 }[t.type];
      assert.equal(b[0], atyp);
      const body = t.type === "ipv4" ? 4 : t.type === "ipv6" ? 16 : 1 + b[1]!;
      assert.equal(b.length, 1 + body + 2);
      assert.equal((b[b.length - 2]! << 8) | b[b.length - 1]!, t.port);
      assert.deepEqual(request(1, t).subarray(3), b);
    }),
    { numRuns: RUNS },
  );
});

// ------------------------------------------------ encode -> decode, per type

for (const name of Object.keys(MsgType) as MsgTypeName[]) {
  test(`roundtrip: ${name} generated encoder -> Kaitai's Frame parser -> decode`, () => {
    const arb = messages[name] as fc.Arbitrary<Message>;
    fc.assert(
      fc.property(arb, (m) => {
        const f = encode(m);
        assert.equal(f[5], MsgType[name]);
        assert.deepEqual(checkHeader(f), { type: MsgType[name], length: f.length - 12 });
        // The whole frame parses with the parser kaitai-struct-compiler made
        // of spec/frame.ksy, to its end, as a payload of the message's type.
        const io = kaitaiStream(f);
        const parsed = new Frame(io);
        assert.ok(io.isEof(), "bytes after the frame");
        assert.equal(parsed.header.msgType, MsgType[name]);
        assert.ok(parsed.payload !== undefined && !(parsed.payload instanceof Uint8Array));
        assert.deepEqual(decode(f), m);
      }),
      { numRuns: RUNS },
    );
  });
}

test("roundtrip: a stream of messages through encode -> Framer -> decode", () => {
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 1, max: 64 }),
      (ms, step) => {
        const all = concat(ms.map(encode));
        const framer = new Framer();
        const out: (Message | null)[] = [];
        for (let i = 0; i < all.length; i += step) {
          framer.push(all.subarray(i, i + step));
          for (let f = framer.next(); f !== null; f = framer.next()) out.push(decode(f));
        }
        assert.deepEqual(out, ms);
        assert.equal(framer.buffered, 0);
      },
    ),
    { numRuns: RUNS },
  );
});

test("roundtrip: extension frames 0x80-0xFF decode to null", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0x80, max: 0xff }),
      fc.uint8Array({ maxLength: 64 }),
      (t, payload) => {
        assert.equal(decode(frame(t, payload)), null);
      },
    ),
    { numRuns: RUNS },
  );
});

// --------------------------------------------- socks5_encode -> parseX

/**
 * One SOCKS5 message kind: its encoder applied to an arbitrary value, its
 * parser, and the value the parser must return.
 */
interface SocksCase<V> {
  name: string;
  arb: fc.Arbitrary<V>;
  encode: (v: V) => Uint8Array;
  parse: (b: Uint8Array) => { value: unknown; size: number } | null;
  expect: (v: V) => unknown;
}
const sc = <V>(c: SocksCase<V>) => c as unknown as SocksCase<unknown>;
const socksCases: SocksCase<unknown>[] = [
  sc({
    name: "greeting",
    arb: socks.greeting,
    encode: (v) => greeting(v.methods),
    parse: parseGreeting,
    expect: (v) => ({ methods: Array.from(v.methods) }),
  }),
  sc({
    name: "method selection",
    arb: socks.methodSelection,
    encode: (v) => methodSelection(v.method),
    parse: parseMethodSelection,
    expect: (v) => ({ method: v.method }),
  }),
  sc({
    name: "user/password request",
    arb: socks.userpassRequest,
    encode: (v) => userpassRequest(v.user, v.pass),
    parse: parseUserpassRequest,
    expect: (v) => ({ username: v.user, password: v.pass }),
  }),
  sc({
    name: "user/password reply",
    arb: socks.userpassReply,
    encode: (v) => userpassReply(v.status),
    parse: parseUserpassReply,
    expect: (v) => ({ status: v.status }),
  }),
  sc({
    name: "request",
    arb: socks.request,
    encode: (v) => request(v.cmd, v.target),
    parse: parseRequest,
    expect: (v) => ({ command: v.cmd, target: v.target }),
  }),
  sc({
    name: "reply",
    arb: socks.reply,
    encode: (v) => reply(v.rep, v.bound),
    parse: parseReply,
    expect: (v) => ({ reply: v.rep, bound: v.bound }),
  }),
];

for (const c of socksCases) {
  test(`roundtrip: SOCKS5 ${c.name} encode -> parse; prefixes need more; trailing bytes are left`, () => {
    fc.assert(
      fc.property(c.arb, fc.uint8Array({ maxLength: 16 }), (v, trailer) => {
        const b = c.encode(v);
        assert.deepEqual(c.parse(b), { value: c.expect(v), size: b.length });
        for (let k = 0; k < b.length; k++) {
          assert.equal(c.parse(b.subarray(0, k)), null, `prefix of ${k} bytes`);
        }
        assert.deepEqual(c.parse(concat([b, trailer])), { value: c.expect(v), size: b.length });
      }),
      { numRuns: RUNS },
    );
  });
}

test("socks5: a request with a domain that is not valid UTF-8 is refused, not mangled", () => {
  const bad = Uint8Array.of(5, 1, 0, 3, 1, 0xff, 0, 80);
  assert.throws(
    () => parseRequest(bad),
    (e: unknown) => e instanceof SocksError && e.code === "bad_domain",
  );
});

test("roundtrip: issued_token (SPEC.md §5.15, §6.2): an empty CLIENT_HELLO name, an AUTH proof of 96..191 bytes", () => {
  const h = {
    type: "CLIENT_HELLO",
    minVersion: 1,
    maxVersion: 4,
    authMethod: 3,
    name: "",
    software: "x",
  } as const;
  assert.deepEqual(decode(encode(h)), h);
  for (const n of [96, 150, 191]) {
    const auth = { type: "AUTH", proof: new Uint8Array(n).fill(7) } as const;
    assert.deepEqual(decode(encode(auth)), auth);
  }
  const invalid = (m: Message) =>
    assert.throws(
      () => decode(encodeUnchecked(m)),
      (e: unknown) => (e as { code?: string }).code === "invalid_message",
    );
  invalid({ ...h, authMethod: 1 });
  invalid({ type: "AUTH", proof: new Uint8Array(95) });
  invalid({ type: "AUTH", proof: new Uint8Array(65) });
});
