/**
 * src/link_frame.ts, the hand codec of link frames (SPEC.md §3.2), against
 * the parser generated from spec/link.ksy: every kind encodes to bytes that
 * the generated parser and LinkFramer both read back as the same frame;
 * frames split at every byte boundary come out whole; frames that break a
 * rule of §3.2 make LinkFramer throw `Cannot parse link frame: …` (checked
 * as soon as the 7 header bytes are in) and the generated parser refuse them
 * too; encodeLinkFrame refuses values that have no valid frame.
 *
 * Property runs default to 200 each; RUNS=n in the environment changes that.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Link } from "../generated/Link.js";
import { ProtocolError } from "../src/errors.ts";
import { kaitaiStream } from "../src/kaitai.ts";
import {
  encodeLinkFrame,
  LINK_HEADER_SIZE,
  LINK_MAX_DATA,
  type LinkFrame,
  LinkFramer,
} from "../src/link_frame.ts";
import { LinkFrameType } from "../generated/enums.ts";
import { Layout } from "../generated/messages.ts";
import { chunk, concat, linkFrame, parseLinkGenerated } from "./arbitraries.ts";

const RUNS = Number(globalThis.process?.env?.RUNS ?? "") || 200;
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));

const FRAMES: LinkFrame[] = [
  { type: "OPEN", stream: 1 },
  { type: "DATA", stream: 1, data: new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n") },
  { type: "WINDOW", stream: 0xffffffff, increment: 65536 },
  { type: "DATA", stream: 7, data: Uint8Array.of(0) },
  { type: "FIN", stream: 1 },
  { type: "RESET", stream: 0x80000000 },
  { type: "WINDOW", stream: 2, increment: 1 },
];

/** A link frame header and body as raw bytes, any values. */
function raw(type: number, stream: number, body: ArrayLike<number>, len = body.length): Uint8Array {
  const b = new Uint8Array(LINK_HEADER_SIZE + body.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, type);
  v.setUint32(1, stream);
  v.setUint16(5, len);
  b.set(Array.from(body), LINK_HEADER_SIZE);
  return b;
}

/** Push each chunk and drain frames after each push. */
function feed(chunks: readonly Uint8Array[]): { frames: LinkFrame[]; framer: LinkFramer } {
  const framer = new LinkFramer();
  const frames: LinkFrame[] = [];
  for (const c of chunks) {
    framer.push(c);
    for (let f = framer.next(); f !== null; f = framer.next()) frames.push(f);
  }
  return { frames, framer };
}

/** Assert `fn` throws ProtocolError invalid_message `Cannot parse link frame: …`. */
function throwsLink(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `${what}: expected ProtocolError, got ${String(e)}`);
    assert.equal(e.code, "invalid_message", what);
    assert.match(e.message, /^Cannot parse link frame: /, what);
    return true;
  });
}

/** Assert the generated parser refuses `b` with a Kaitai validation error. */
function generatedRefuses(b: Uint8Array, what: string): void {
  assert.throws(() => new Link(kaitaiStream(b)), (e: unknown) => {
    assert.ok(e instanceof Error && e.name.startsWith("Validation"), `${what}: ${String(e)}`);
    return true;
  });
}

// --------------------------------------------------------------- encoding

test("link frame: golden bytes", () => {
  assert.deepEqual(
    encodeLinkFrame({ type: "DATA", stream: 0x01020304, data: Uint8Array.of(0xaa, 0xbb) }),
    hex("00 01020304 0002 aabb"),
  );
  assert.deepEqual(encodeLinkFrame({ type: "OPEN", stream: 1 }), hex("01 00000001 0000"));
  assert.deepEqual(
    encodeLinkFrame({ type: "WINDOW", stream: 2, increment: 0x00010000 }),
    hex("02 00000002 0004 00010000"),
  );
  assert.deepEqual(encodeLinkFrame({ type: "FIN", stream: 0xffffffff }), hex("03 ffffffff 0000"));
  assert.deepEqual(encodeLinkFrame({ type: "RESET", stream: 9 }), hex("04 00000009 0000"));
  assert.deepEqual(encodeLinkFrame({ type: "GRANT", stream: 300 }), hex("05 0000012c 0000"));
  assert.deepEqual(encodeLinkFrame({ type: "PING", stream: 42 }), hex("06 0000002a 0000"));
  assert.deepEqual(encodeLinkFrame({ type: "PONG", stream: 42 }), hex("07 0000002a 0000"));
  assert.equal(LINK_HEADER_SIZE, 7);
  assert.equal(LINK_MAX_DATA, 65535);
  assert.deepEqual(
    { DATA: 0, OPEN: 1, WINDOW: 2, FIN: 3, RESET: 4, GRANT: 5, PING: 6, PONG: 7 },
    { ...LinkFrameType },
    "the type bytes above are the generated enum's",
  );
});

test("link frame: encodeLinkFrame refuses values that have no valid frame", () => {
  const bad: LinkFrame[] = [
    { type: "OPEN", stream: 0 },
    { type: "FIN", stream: -1 },
    { type: "RESET", stream: 2 ** 32 },
    { type: "OPEN", stream: 1.5 },
    { type: "DATA", stream: 0, data: Uint8Array.of(1) },
    { type: "DATA", stream: 1, data: new Uint8Array(0) },
    { type: "DATA", stream: 1, data: new Uint8Array(LINK_MAX_DATA + 1) },
    { type: "WINDOW", stream: 1, increment: 0 },
    { type: "WINDOW", stream: 1, increment: 2 ** 32 },
    { type: "WINDOW", stream: 0, increment: 1 },
  ];
  for (const f of bad) {
    assert.throws(() => encodeLinkFrame(f), Error, JSON.stringify({ ...f, data: undefined }));
  }
});

// ------------------------------------- encode -> generated parser / LinkFramer

for (const kind of ["DATA", "OPEN", "WINDOW", "FIN", "RESET", "GRANT", "PING", "PONG"] as const) {
  test(`link frame: ${kind} encode -> generated Link parser and LinkFramer agree`, () => {
    fc.assert(
      fc.property(linkFrame().filter((f) => f.type === kind), (f) => {
        const b = encodeLinkFrame(f);
        // Field by field, as spec/link.ksy reads them.
        const l = new Link(kaitaiStream(b));
        assert.equal(l.type, LinkFrameType[kind]);
        assert.equal(l.streamId, f.stream);
        assert.equal(l.lenBody, b.length - LINK_HEADER_SIZE);
        if (f.type === "DATA") assert.deepEqual(l.body, f.data);
        else if (f.type === "WINDOW") {
          assert.ok(l.body instanceof Link.Window);
          assert.equal(l.body.increment, f.increment);
        } else assert.ok(l.body instanceof Link.Empty);
        assert.ok(l._io.isEof(), "the generated parser read the whole frame");
        assert.deepEqual(parseLinkGenerated(b), { frame: f, size: b.length });
        // The hand framer returns the same frame and keeps nothing.
        const { frames, framer } = feed([b]);
        assert.deepEqual(frames, [f]);
        assert.equal(framer.buffered, 0);
      }),
      { numRuns: RUNS },
    );
  });
}

test("link frame: a DATA body of LINK_MAX_DATA bytes, in three chunks", () => {
  const f: LinkFrame = { type: "DATA", stream: 3, data: new Uint8Array(LINK_MAX_DATA).fill(0x5a) };
  const b = encodeLinkFrame(f);
  assert.deepEqual(parseLinkGenerated(b), { frame: f, size: b.length });
  const { frames } = feed([b.subarray(0, 3), b.subarray(3, 40000), b.subarray(40000)]);
  assert.deepEqual(frames, [f]);
});

// ------------------------------------------------------------ incremental

test("link framer: several frames split in two at every byte boundary", () => {
  const all = concat(FRAMES.map(encodeLinkFrame));
  for (let i = 0; i <= all.length; i++) {
    const { frames, framer } = feed([all.subarray(0, i), all.subarray(i)]);
    assert.deepEqual(frames, FRAMES, `split at ${i}`);
    assert.equal(framer.buffered, 0);
  }
});

test("link framer: one byte at a time, with buffered counting the bytes held", () => {
  const all = concat(FRAMES.map(encodeLinkFrame));
  const framer = new LinkFramer();
  const frames: LinkFrame[] = [];
  let held = 0;
  for (const byte of all) {
    framer.push(Uint8Array.of(byte));
    held++;
    assert.equal(framer.buffered, held);
    const f = framer.next();
    if (f !== null) {
      frames.push(f);
      held = 0;
      assert.equal(framer.buffered, 0);
    }
  }
  assert.deepEqual(frames, FRAMES);
});

test("link framer: random frames, random chunkings (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.array(linkFrame(), { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (fs, cuts) => {
        const all = concat(fs.map(encodeLinkFrame));
        const { frames, framer } = feed(chunk(all, cuts));
        assert.deepEqual(frames, fs);
        assert.equal(framer.buffered, 0);
        // The generated parser, one frame after the other, reads the same.
        const parsed: LinkFrame[] = [];
        for (let at = 0; at < all.length;) {
          const { frame, size } = parseLinkGenerated(all.subarray(at));
          parsed.push(frame);
          at += size;
        }
        assert.deepEqual(parsed, fs);
      },
    ),
    { numRuns: RUNS },
  );
});

test("link framer: a DATA body inside one chunk is returned without copying", () => {
  const all = concat(FRAMES.map(encodeLinkFrame));
  const framer = new LinkFramer();
  framer.push(all);
  assert.equal(framer.next()?.type, "OPEN");
  const f = framer.next();
  assert.ok(f?.type === "DATA");
  assert.equal(f.data.buffer, all.buffer);
});

test("link framer: a DATA body across adjacent views of one buffer (slab reads) is not copied", () => {
  const body = Uint8Array.from({ length: 40_000 }, (_, i) => (i * 7) & 0xff);
  const frame = encodeLinkFrame({ type: "DATA", stream: 5, data: body });
  const slab = new Uint8Array(frame.length + 3);
  slab.set(frame, 3);
  // Three records of one slab, as runtimes/node/slab_reads.ts hands them on.
  const cuts = [3, 3 + 16_384, 3 + 32_768, slab.length];
  const views = cuts.slice(1).map((end, i) =>
    new Uint8Array(slab.buffer, cuts[i]!, end - cuts[i]!)
  );
  const { frames, framer } = feed(views);
  assert.equal(frames.length, 1);
  const f = frames[0]!;
  assert.ok(f.type === "DATA");
  assert.deepEqual(f.data, body);
  assert.equal(f.data.buffer, slab.buffer, "a view of the slab, no copy");
  assert.equal(framer.buffered, 0);
  // Views of one buffer that are not adjacent in the order pushed are not joined.
  const swapped = new Uint8Array(frame.length);
  const half = 20_000;
  swapped.set(frame.subarray(half), 0);
  swapped.set(frame.subarray(0, half), frame.length - half);
  const second = new Uint8Array(swapped.buffer, 0, frame.length - half);
  const first = new Uint8Array(swapped.buffer, frame.length - half, half);
  const out = feed([first, second]).frames;
  assert.equal(out.length, 1);
  assert.ok(out[0]!.type === "DATA");
  assert.deepEqual(out[0]!.data, body);
});

// ---------------------------------------------------------------- invalid

/** Frames that break a rule of SPEC.md §3.2; all of them also break spec/link.ksy. */
const INVALID: [string, Uint8Array][] = [
  ["type 8", raw(8, 1, [])],
  ["PING with a body", raw(6, 1, [0])],
  ["PONG of id 0", raw(7, 0, [])],
  ["GRANT with a body", raw(5, 1, [0])],
  ["GRANT of id 0", raw(5, 0, [])],
  ["type 255", raw(255, 1, [])],
  ["stream 0 (OPEN)", raw(1, 0, [])],
  ["stream 0 (DATA)", raw(0, 0, [1])],
  ["stream 0 (WINDOW)", raw(2, 0, [0, 0, 0, 1])],
  ["DATA of length 0", raw(0, 1, [])],
  ["WINDOW increment 0", raw(2, 1, [0, 0, 0, 0])],
  ["OPEN with a body", raw(1, 1, [0])],
  ["FIN with a body", raw(3, 1, [0, 0])],
  ["RESET with a body", raw(4, 1, [0, 0, 0, 0])],
  ["WINDOW body of 3 bytes", raw(2, 1, [0, 0, 1])],
  ["WINDOW body of 5 bytes", raw(2, 1, [0, 0, 0, 1, 0])],
  ["WINDOW body of 0 bytes", raw(2, 1, [])],
];

test("link framer: frames that break SPEC.md §3.2 throw `Cannot parse link frame:`; so does the generated parser", () => {
  for (const [what, b] of INVALID) {
    const framer = new LinkFramer();
    framer.push(b);
    throwsLink(() => framer.next(), what);
    // It keeps throwing, holds nothing and takes nothing more.
    assert.equal(framer.buffered, 0, what);
    framer.push(encodeLinkFrame({ type: "OPEN", stream: 1 }));
    assert.equal(framer.buffered, 0, what);
    throwsLink(() => framer.next(), `${what}, again`);
    generatedRefuses(b, what);
  }
});

test("link framer: a bad header fails as soon as its 7 bytes are in, before its body", () => {
  for (const [what, b] of INVALID) {
    if (what === "WINDOW increment 0") continue; // the rule is on the body
    // Only the header: its body never comes.
    const h = b.slice(0, LINK_HEADER_SIZE);
    const framer = new LinkFramer();
    for (let i = 0; i < LINK_HEADER_SIZE - 1; i++) {
      framer.push(h.subarray(i, i + 1));
      assert.equal(framer.next(), null, `${what}: ${i + 1} header bytes`);
    }
    framer.push(h.subarray(LINK_HEADER_SIZE - 1));
    throwsLink(() => framer.next(), what);
  }
});

test("link framer: frames before a bad one come out first", () => {
  const good = FRAMES.slice(0, 3);
  for (const [what, bad] of INVALID) {
    const framer = new LinkFramer();
    framer.push(concat([...good.map(encodeLinkFrame), bad]));
    for (const f of good) assert.deepEqual(framer.next(), f, what);
    throwsLink(() => framer.next(), what);
  }
});

test("link framer: incomplete frames wait; the generated parser calls them truncated", () => {
  for (const f of FRAMES) {
    const b = encodeLinkFrame(f);
    for (let n = 0; n < b.length; n++) {
      const framer = new LinkFramer();
      framer.push(b.subarray(0, n));
      assert.equal(framer.next(), null, `${f.type}: ${n} of ${b.length} bytes`);
      assert.equal(framer.buffered, n);
      assert.throws(
        () => new Link(kaitaiStream(b.subarray(0, n))),
        (e: unknown) => e instanceof Error && e.name === "EOFError",
      );
    }
  }
});

// ------------------------------------------- the fast path = the generated parser

/** What the generated parser makes of the first frame of `b`: a frame, "refused" or "truncated". */
function generatedVerdict(b: Uint8Array): LinkFrame | "refused" | "truncated" {
  try {
    return parseLinkGenerated(b).frame;
  } catch (e) {
    if (e instanceof Error && e.name === "EOFError") return "truncated";
    if (e instanceof Error && e.name.startsWith("Validation")) return "refused";
    throw e;
  }
}

/** What LinkFramer makes of the first frame of `b`, fed in the given chunks. */
function framerVerdict(chunks: readonly Uint8Array[]): LinkFrame | "refused" | "truncated" {
  const framer = new LinkFramer();
  try {
    for (const c of chunks) {
      framer.push(c);
      const f = framer.next();
      if (f !== null) return f.type === "DATA" ? { ...f, data: f.data.slice() } : f;
    }
    return "truncated";
  } catch (e) {
    if (e instanceof ProtocolError) return "refused";
    throw e;
  }
}

test("link framer = generated Link parser on random headers and bodies (fast-check)", () => {
  // Mostly headers near the valid ones (types 0..6, stream ids 0 and 1, body
  // lengths 0..5; WINDOW increments of 0), sometimes anything; any chunking.
  const header = fc.tuple(
    fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 6 }), weight: 9 },
      { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
    ),
    fc.oneof(
      { arbitrary: fc.constantFrom(0, 1), weight: 3 },
      { arbitrary: fc.nat({ max: 0xffffffff }), weight: 1 },
    ),
    fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 5 }), weight: 4 },
      { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 1 },
    ),
  );
  fc.assert(
    fc.property(
      header,
      fc.oneof(fc.uint8Array({ maxLength: 310 }), fc.uint8Array({ max: 1, maxLength: 8 })),
      fc.array(fc.nat(), { maxLength: 6 }),
      ([type, stream, len], body, cuts) => {
        const b = raw(type, stream, body, len);
        const want = generatedVerdict(b);
        assert.deepEqual(framerVerdict(chunk(b, cuts)), want);
        assert.deepEqual(framerVerdict([b]), want);
      },
    ),
    { numRuns: RUNS * 5 },
  );
});

test("link frame: header layout, body sizes and type table are spec/link.ksy's", () => {
  assert.equal(LINK_HEADER_SIZE, Layout.link.size);
  assert.equal(LINK_HEADER_SIZE, 7);
  assert.equal(LINK_MAX_DATA, 65535);
  const b = encodeLinkFrame({ type: "WINDOW", stream: 0x01020304, increment: 9 });
  const l = new Link(kaitaiStream(b));
  assert.equal(l.type, LinkFrameType.WINDOW);
  assert.equal(l.streamId, 0x01020304);
  assert.deepEqual([l.lenBody, l.lenBody], Layout.link.bodySizes[LinkFrameType.WINDOW]);
});
