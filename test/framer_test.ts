/**
 * src/framer.ts: frames split at every byte boundary, fed one byte at a time
 * or several per chunk come out identical; rest() hands back trailing raw
 * bytes exactly; bad headers fail as soon as the 12 header bytes are in.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { encode, frame } from "../src/encode.ts";
import { ProtocolError } from "../src/errors.ts";
import { checkHeader, Framer } from "../src/framer.ts";
import { Limits, type Message } from "../src/messages.ts";
import { message } from "./arbitraries.ts";

const MSGS: Message[] = [
  {
    type: "AGENT_HELLO",
    minVersion: 1,
    maxVersion: 1,
    authMethod: 1,
    name: "agent-1",
    software: "burrow/0.1.0 ü",
  },
  { type: "CHALLENGE", version: 1, nonce: new Uint8Array(32).fill(7) },
  { type: "PING", data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
  { type: "CLIENT_READY", clientId: 0xdeadbeef },
  {
    type: "ANNOUNCE",
    rules: [
      { kind: "host", client: "", pattern: "*.corp", portMin: 1, portMax: 65535, protocol: 6 },
      {
        kind: "cidr4",
        client: "alice",
        addr: "10.0.0.0",
        prefix: 8,
        portMin: 22,
        portMax: 22,
        protocol: 6,
      },
      {
        kind: "cidr6",
        client: "bob",
        addr: "fd00::",
        prefix: 8,
        portMin: 443,
        portMax: 443,
        protocol: 6,
      },
    ],
  },
  {
    type: "OPEN",
    streamId: 7,
    clientId: 9,
    client: "alice",
    protocol: 6,
    target: { type: "ipv6", host: "fd00::1", port: 5432 },
  },
  { type: "ERROR", code: 7, message: "" },
];
const FRAMES: Uint8Array[] = [
  ...MSGS.map(encode),
  frame(0x80, new Uint8Array(0)),
  frame(0xff, Uint8Array.of(1, 2)),
];
const TAIL = new TextEncoder().encode("raw bytes after the handshake \x00\xff");

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Push each chunk, draining frames after each push, and stop asking for
 * frames after `count` (as a connection does after its last handshake frame:
 * what follows is raw bytes, for rest()).
 */
function feed(chunks: Uint8Array[], count = Infinity): { frames: Uint8Array[]; framer: Framer } {
  const framer = new Framer();
  const frames: Uint8Array[] = [];
  for (const c of chunks) {
    framer.push(c);
    while (frames.length < count) {
      const f = framer.next();
      if (f === null) break;
      frames.push(f);
    }
  }
  return { frames, framer };
}

/** Assert `fn` throws a ProtocolError with `code`. */
function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  });
}

function header(
  type: number,
  length: number,
  opts: { magic?: number[]; version?: number; flags?: number } = {},
) {
  const h = new Uint8Array(12);
  h.set(opts.magic ?? [0x42, 0x52, 0x52, 0x57]);
  h[4] = opts.version ?? 1;
  h[5] = type;
  new DataView(h.buffer).setUint16(6, opts.flags ?? 0);
  new DataView(h.buffer).setUint32(8, length);
  return h;
}

test("framer: each frame split in two at every byte boundary", () => {
  for (const f of FRAMES) {
    for (let i = 0; i <= f.length; i++) {
      const { frames, framer } = feed([f.subarray(0, i), f.subarray(i)]);
      assert.deepEqual(frames, [f], `split at ${i}`);
      assert.equal(framer.buffered, 0);
    }
  }
});

test("framer: all frames plus raw tail split in two at every byte boundary; rest() is the tail", () => {
  const all = concat([...FRAMES, TAIL]);
  for (let i = 0; i <= all.length; i++) {
    const { frames, framer } = feed([all.subarray(0, i), all.subarray(i)], FRAMES.length);
    assert.deepEqual(frames, FRAMES, `split at ${i}`);
    assert.deepEqual(framer.rest(), TAIL);
    assert.equal(framer.buffered, 0);
    assert.deepEqual(framer.rest(), new Uint8Array(0));
  }
});

test("framer: one byte at a time", () => {
  const all = concat([...FRAMES, TAIL]);
  const chunks = Array.from(all, (b) => Uint8Array.of(b));
  const { frames, framer } = feed(chunks, FRAMES.length);
  assert.deepEqual(frames, FRAMES);
  assert.deepEqual(framer.rest(), TAIL);
});

test("framer: several frames per chunk, whole stream in one chunk", () => {
  const all = concat(FRAMES);
  const { frames, framer } = feed([all]);
  assert.deepEqual(frames, FRAMES);
  assert.equal(framer.buffered, 0);
  assert.deepEqual(framer.rest(), new Uint8Array(0));
});

test("framer: a frame inside one chunk is returned without copying", () => {
  const all = concat(FRAMES);
  const framer = new Framer();
  framer.push(all);
  const f = framer.next();
  assert.ok(f);
  assert.equal(f.buffer, all.buffer);
  assert.equal(f.byteOffset, all.byteOffset);
});

test("framer: random chunkings of random valid frames (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 6 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (msgs, tail, cuts) => {
        const fs = msgs.map(encode);
        const all = concat([...fs, tail]);
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let prev = 0;
        for (const p of [...points, all.length]) {
          chunks.push(all.subarray(prev, p));
          prev = p;
        }
        const { frames, framer } = feed(chunks, fs.length);
        assert.deepEqual(frames, fs);
        assert.deepEqual(framer.rest(), tail);
      },
    ),
    { numRuns: 200 },
  );
});

test("framer: rest() returns a partial frame too, and the framer is reusable after it", () => {
  const f = FRAMES[0]!;
  const framer = new Framer();
  framer.push(f.subarray(0, 5));
  framer.push(f.subarray(5, 20));
  assert.equal(framer.next(), null);
  assert.deepEqual(framer.rest(), f.subarray(0, 20));
  assert.equal(framer.buffered, 0);
  framer.push(f);
  assert.deepEqual(framer.next(), f);
  assert.equal(framer.next(), null);
});

test("framer: payload of exactly MAX_PAYLOAD is accepted", () => {
  const payload = new Uint8Array(Limits.MAX_PAYLOAD).fill(0xab);
  const f = frame(0x80, payload);
  const { frames } = feed([f.subarray(0, 100), f.subarray(100, 70000), f.subarray(70000)]);
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], f);
});

test("framer: oversized length throws frame_too_large with only the header in", () => {
  for (const len of [Limits.MAX_PAYLOAD + 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
    const framer = new Framer();
    const h = header(0x01, len);
    framer.push(h.subarray(0, 11));
    assert.equal(framer.next(), null, "11 header bytes: no verdict yet");
    framer.push(h.subarray(11));
    throwsCode(() => framer.next(), "frame_too_large");
    // Nothing kept, nothing buffered afterwards, same error again.
    assert.equal(framer.buffered, 0);
    framer.push(new Uint8Array(1000));
    assert.equal(framer.buffered, 0);
    throwsCode(() => framer.next(), "frame_too_large");
  }
});

test("framer: a payload length its type cannot have is invalid_message with only the header in", () => {
  // PING's payload is 8 bytes, CLIENT_READY's 4; AGENT_HELLO's 5..324 (three
  // u1, a name of 0..64 (empty only with issued_token, checked after the
  // header) and software of 0..255 bytes, each after its length);
  // ANNOUNCE's at most 2 + 512 rules of at most 326 bytes (spec/*.ksy).
  const bad: [number, number, string][] = [
    [0x13, 9, "8"],
    [0x13, 7, "8"],
    [0x13, Limits.MAX_PAYLOAD, "8"],
    [0x31, 0, "4"],
    [0x01, 4, "5..324"],
    [0x01, 325, "5..324"],
    [0x10, 167427, "2..167426"],
  ];
  for (const [type, len, want] of bad) {
    const framer = new Framer();
    framer.push(header(type, len));
    assert.throws(
      () => framer.next(),
      (e: unknown) =>
        e instanceof ProtocolError && e.code === "invalid_message" &&
        e.message ===
          `Cannot parse frame: payload length ${len} of type 0x${
            type.toString(16).padStart(2, "0")
          } is not ${want}`,
      `type ${type}, length ${len}`,
    );
    assert.equal(framer.buffered, 0);
  }
  // Lengths in range pass the header check and wait for the payload.
  for (const [type, len] of [[0x13, 8], [0x01, 6], [0x01, 324], [0x10, 167426], [0x80, 9]]) {
    const framer = new Framer();
    framer.push(header(type!, len!));
    assert.equal(framer.next(), null, `type ${type}, length ${len}`);
  }
});

test("framer: bad magic throws bad_magic as soon as the header is complete", () => {
  for (const magic of [[0x42, 0x52, 0x52, 0x58], [0, 0, 0, 0], [0x47, 0x45, 0x54, 0x20]]) {
    const framer = new Framer();
    const h = header(0x01, 10, { magic });
    for (let i = 0; i < 11; i++) {
      framer.push(h.subarray(i, i + 1));
      assert.equal(framer.next(), null);
    }
    framer.push(h.subarray(11));
    throwsCode(() => framer.next(), "bad_magic");
  }
  // An HTTP request on the agent port.
  const framer = new Framer();
  framer.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  throwsCode(() => framer.next(), "bad_magic");
});

test("framer: header checks in SPEC order: magic, version, flags, length, type", () => {
  const cases: [Uint8Array, string][] = [
    [header(0x01, 0, { version: 0 }), "unsupported_frame_version"],
    [header(0x01, 0, { version: 2 }), "unsupported_frame_version"],
    [header(0x01, 0, { flags: 1 }), "invalid_message"],
    [header(0x01, 0, { flags: 0x8000 }), "invalid_message"],
    [header(0x00, 0), "unknown_type"],
    [header(0x06, 0), "unknown_type"],
    [header(0x7f, 0), "unknown_type"],
    // Several wrong at once: the first in SPEC.md §3 order decides.
    [header(0x00, 0xffffffff, { magic: [1, 2, 3, 4], version: 9, flags: 1 }), "bad_magic"],
    [header(0x00, 0xffffffff, { version: 9, flags: 1 }), "unsupported_frame_version"],
    [header(0x00, 0xffffffff, { flags: 1 }), "invalid_message"],
    [header(0x00, 0xffffffff), "frame_too_large"],
  ];
  for (const [h, code] of cases) {
    const framer = new Framer();
    framer.push(h);
    throwsCode(() => framer.next(), code);
    throwsCode(() => checkHeader(h), code);
  }
});

test("framer: header errors say what failed, `Cannot parse frame: ...`", () => {
  const cases: [Uint8Array, string, RegExp][] = [
    [
      header(0x01, 0, { magic: [0x47, 0x45, 0x54, 0x20] }),
      "bad_magic",
      /^Cannot parse frame: bad magic 47 45 54 20, expected 42 52 52 57 \("BRRW"\)$/,
    ],
    [
      header(0x01, 0, { version: 2 }),
      "unsupported_frame_version",
      /^Cannot parse frame: framing version 2 is not 1$/,
    ],
    [
      header(0x01, 0, { flags: 0x0100 }),
      "invalid_message",
      /^Cannot parse frame: flags 0x0100 are not 0$/,
    ],
    [
      header(0x21, 300000),
      "frame_too_large",
      /^Cannot parse frame: payload length 300000 exceeds 262144$/,
    ],
    [header(0x7f, 0), "unknown_type", /^Cannot parse frame: unknown message type 0x7f$/],
    [
      Uint8Array.of(0x42, 0x52, 0x52),
      "invalid_message",
      /^Cannot parse frame: header is 3 bytes, expected 12$/,
    ],
  ];
  for (const [h, code, re] of cases) {
    assert.throws(
      () => checkHeader(h),
      (e: unknown) => e instanceof ProtocolError && e.code === code && re.test(e.message),
      re.source,
    );
  }
  // A header further into a buffer.
  const buf = concat([Uint8Array.of(9, 9), header(0x21, 20)]);
  assert.deepEqual(checkHeader(buf, 2), { type: 0x21, length: 20 });
});

test("framer: frames before a bad header come out first", () => {
  const framer = new Framer();
  framer.push(concat([FRAMES[0]!, FRAMES[1]!, header(0x01, 0, { magic: [0, 0, 0, 0] })]));
  assert.deepEqual(framer.next(), FRAMES[0]);
  assert.deepEqual(framer.next(), FRAMES[1]);
  throwsCode(() => framer.next(), "bad_magic");
});

test("framer: extension types 0x80-0xFF pass the header check", () => {
  for (const t of [0x80, 0xab, 0xff]) {
    assert.deepEqual(checkHeader(header(t, 3)), { type: t, length: 3 });
  }
  assert.deepEqual(checkHeader(header(0x80, Limits.MAX_PAYLOAD)), {
    type: 0x80,
    length: Limits.MAX_PAYLOAD,
  });
});
