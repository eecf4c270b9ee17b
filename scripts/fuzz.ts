/**
 * `npm run fuzz`: the long fuzz run. Random and mutated input into the
 * framer + frame decoder, into the link framer (next to the parser generated
 * from spec/link.ksy) and into every SOCKS5 parser, over 1,000,000 inputs in
 * total by default. Every call must return (a value or null) or throw the
 * parser's typed error (ProtocolError / SocksError with a registered code,
 * a Kaitai error from a generated parser); anything else fails. What the
 * parsers accept must also be canonical: it re-encodes to exactly the bytes
 * it was parsed from; and the link framer and the generated Link parser
 * must accept the same frames.
 *
 *   npm run fuzz                       ≈ 1,000,000 inputs
 *   npm run fuzz -- --scale 0.1        a tenth of that
 *   npm run fuzz -- --seed 42          reproducible
 *   npm run fuzz -- --only socks       properties whose name contains "socks"
 *
 * Last, test/authz_model_test.ts runs under Node with 10,000 runs (scaled):
 * random policies and targets through a real server and agent.
 *
 * Prints the count and time per property and the total; exits 1 if any
 * property failed (with fast-check's counterexample and seed).
 *
 * test/fuzz_test.ts imports {@link properties} from here and runs the same
 * properties with a few hundred inputs each.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { decode } from "../src/decode.ts";
import { encode, frame } from "../src/encode.ts";
import { ProtocolError, ProxyHeaderError, SocksError, type SocksErrorCode } from "../src/errors.ts";
import { normalizeIP } from "../src/host.ts";
import { parseProxyHeader, V1_MAX, V2_MAX_LENGTH } from "../src/proxyproto.ts";
import { checkHeader, Framer } from "../src/framer.ts";
import { udpRecordProperty } from "./fuzz_udp.ts";
import { parseToken, SUBJECT_MAX, tokenBody, tokenText } from "../src/token.ts";
import {
  encodeLinkFrame,
  LINK_HEADER_SIZE,
  type LinkFrame,
  LinkFramer,
} from "../src/link_frame.ts";
import { ErrorCode, type Message, MsgType, type Target as T } from "../src/messages.ts";
import {
  parseGreeting,
  parseMethodSelection,
  parseReply,
  parseRequest,
  parseUdpDatagram,
  parseUserpassReply,
  parseUserpassRequest,
} from "../src/socks5_decode.ts";
import {
  greeting,
  methodSelection,
  reply,
  request,
  udpDatagram,
  userpassReply,
  userpassRequest,
} from "../src/socks5_encode.ts";
import {
  chunk,
  concat,
  fixLength,
  linkFrame,
  message,
  mutate,
  mutation,
  parseLinkGenerated,
  proxyHeader,
  socks,
  u32,
} from "../test/arbitraries.ts";

const PROTOCOL_CODES: ReadonlySet<string> = new Set(Object.keys(ErrorCode));
const SOCKS_CODES: ReadonlySet<string> = new Set(
  Object.keys(
    {
      bad_version: 1,
      no_methods: 1,
      invalid_message: 1,
      bad_address_type: 1,
      bad_domain: 1,
      fragment: 1,
    } satisfies Record<
      SocksErrorCode,
      1
    >,
  ),
);
const KNOWN_TYPES = Object.values(MsgType);

/** Thrown when a parser misbehaves; fast-check reports it with the input. */
class FuzzFailure extends Error {
  override name = "FuzzFailure";
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** `e` must be a ProtocolError with a §9.2 code name; otherwise fail. */
function expectProtocolError(e: unknown, where: string): void {
  if (e instanceof FuzzFailure) throw e;
  if (!(e instanceof ProtocolError)) {
    throw new FuzzFailure(`${where} threw ${describe(e)}, not a ProtocolError`, { cause: e });
  }
  if (!PROTOCOL_CODES.has(e.code)) {
    throw new FuzzFailure(`${where}: ProtocolError with unknown code ${e.code}`);
  }
}

function expectSocksError(e: unknown, where: string): void {
  if (e instanceof FuzzFailure) throw e;
  if (!(e instanceof SocksError)) {
    throw new FuzzFailure(`${where} threw ${describe(e)}, not a SocksError`, { cause: e });
  }
  if (!SOCKS_CODES.has(e.code)) {
    throw new FuzzFailure(`${where}: SocksError with unknown code ${e.code}`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** decode() one whole frame; a message it returns must re-encode to exactly `f`. */
function decodeChecked(f: Uint8Array, where: string): void {
  let m: Message | null;
  try {
    m = decode(f);
  } catch (e) {
    expectProtocolError(e, where);
    return;
  }
  if (m === null) {
    if (f[5]! < 0x80) {
      throw new FuzzFailure(
        `${where}: decode returned null for known type 0x${f[5]!.toString(16)}`,
      );
    }
    return;
  }
  let again: Uint8Array;
  try {
    again = encode(m);
  } catch (e) {
    throw new FuzzFailure(
      `${where}: decode accepted ${hexOf(f)} as a message encode refuses: ${describe(e)}`,
    );
  }
  if (!sameBytes(again, f)) {
    throw new FuzzFailure(
      `${where}: decode is not canonical: ${hexOf(f)} re-encodes as ${hexOf(again)}`,
    );
  }
}

/** Push `chunks` through a Framer, decoding each frame; only ProtocolErrors may escape. */
function framerDecode(chunks: readonly Uint8Array[]): void {
  const framer = new Framer();
  let frames = 0;
  try {
    for (const c of chunks) {
      framer.push(c);
      for (let f = framer.next(); f !== null; f = framer.next()) {
        if (++frames > 1_000_000) throw new FuzzFailure("framer keeps returning frames");
        const { length } = checkHeader(f);
        if (f.length !== 12 + length) {
          throw new FuzzFailure(`framer returned ${f.length} bytes for length ${length}`);
        }
        decodeChecked(f, "decode(framer frame)");
      }
    }
    const rest = framer.rest();
    if (rest.length >= 12 + 262144) {
      throw new FuzzFailure(`framer kept ${rest.length} bytes without a verdict`);
    }
  } catch (e) {
    expectProtocolError(e, "Framer");
  }
}

/** Bytes that start like a frame header more often than chance would. */
const frameish: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(
    fc.constantFrom(...KNOWN_TYPES, 0x00, 0x7f, 0x80, 0xff),
    fc.integer({ min: 0, max: 80 }),
    fc.uint8Array({ maxLength: 96 }),
  ).map(([type, len, payload]) => {
    const h = frame(type, new Uint8Array(0));
    new DataView(h.buffer).setUint32(8, len);
    return concat([h, payload]);
  }),
);

/** 1..3 valid frames, concatenated. */
const validFrames: fc.Arbitrary<Uint8Array> = fc.array(message, { minLength: 1, maxLength: 3 })
  .map((ms) => concat(ms.map(encode)));

const cuts = fc.array(fc.nat(), { maxLength: 6 });

// ---------------------------------------------------------------- link frames

/** How a run of frames ended: all bytes read, an incomplete frame, or a refused one. */
type LinkEnd = "clean" | "incomplete" | "invalid";

/** LinkFramer over `chunks`; only ProtocolError invalid_message may escape it. */
function linkByFramer(chunks: readonly Uint8Array[]): { frames: LinkFrame[]; end: LinkEnd } {
  const framer = new LinkFramer();
  const frames: LinkFrame[] = [];
  try {
    for (const c of chunks) {
      framer.push(c);
      for (let f = framer.next(); f !== null; f = framer.next()) {
        if (frames.push(f) > 1_000_000) throw new FuzzFailure("link framer keeps returning frames");
      }
    }
  } catch (e) {
    expectProtocolError(e, "LinkFramer");
    const { code, message } = e as ProtocolError;
    if (code !== "invalid_message" || !message.startsWith("Cannot parse link frame: ")) {
      throw new FuzzFailure(`LinkFramer threw ${code}: ${message}`);
    }
    return { frames, end: "invalid" };
  }
  return { frames, end: framer.buffered === 0 ? "clean" : "incomplete" };
}

/**
 * The generated Link parser, one frame after the other over `b`; it may
 * throw only Kaitai's EOFError (incomplete) or a Validation error (refused).
 */
function linkByGenerated(b: Uint8Array): { frames: LinkFrame[]; end: LinkEnd; rest: number } {
  const frames: LinkFrame[] = [];
  let at = 0;
  while (at < b.length) {
    try {
      const { frame, size } = parseLinkGenerated(b.subarray(at));
      frames.push(frame);
      at += size;
    } catch (e) {
      const name = e instanceof Error ? e.name : "";
      if (name !== "EOFError" && !name.startsWith("Validation")) {
        throw new FuzzFailure(`generated Link threw ${describe(e)}`, { cause: e });
      }
      return { frames, end: name === "EOFError" ? "incomplete" : "invalid", rest: b.length - at };
    }
  }
  return { frames, end: "clean", rest: 0 };
}

/**
 * `b` through LinkFramer (cut into chunks at `cuts`) and through the
 * generated parser: the same frames, the same verdict, and the frames
 * re-encode to exactly the bytes they were read from.
 */
function linkChecked(b: Uint8Array, cuts: readonly number[]): void {
  const hand = linkByFramer(chunk(b, cuts));
  const gen = linkByGenerated(b);
  // LinkFramer waits for a whole header; the generated parser may refuse
  // a field of one before the rest of the header is in.
  const genEnd = gen.end === "invalid" && gen.rest < LINK_HEADER_SIZE ? "incomplete" : gen.end;
  const show = (r: { frames: LinkFrame[]; end: LinkEnd }) => `${r.frames.length} frames, ${r.end}`;
  if (hand.end !== genEnd || hand.frames.length !== gen.frames.length) {
    throw new FuzzFailure(
      `${hexOf(b)}: LinkFramer read ${show(hand)}, generated Link ${show(gen)}`,
    );
  }
  const again = concat(hand.frames.map((f) => encodeLinkFrame(f)));
  if (!sameBytes(again, b.subarray(0, again.length))) {
    throw new FuzzFailure(`${hexOf(b)}: LinkFramer frames re-encode as ${hexOf(again)}`);
  }
  if (!sameBytes(concat(gen.frames.map((f) => encodeLinkFrame(f))), again)) {
    throw new FuzzFailure(`${hexOf(b)}: LinkFramer and generated Link read different frames`);
  }
}

/** Bytes that look like link frames more often than chance would. */
const linkish: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(
    fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constantFrom(0x80, 0xff)),
    fc.oneof(fc.constantFrom(0, 1, 0xffffffff), u32),
    fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constantFrom(0xffff)),
    fc.uint8Array({ maxLength: 16 }),
  ).map(([type, stream, len, body]) => {
    const h = new Uint8Array(LINK_HEADER_SIZE);
    const v = new DataView(h.buffer);
    v.setUint8(0, type);
    v.setUint32(1, stream);
    v.setUint16(5, len);
    return concat([h, body]);
  }),
  fc.tuple(
    fc.array(linkFrame(64), { minLength: 1, maxLength: 3 }),
    fc.array(mutation, { maxLength: 4 }),
  ).map(([fs, muts]) => mutate(concat(fs.map((f) => encodeLinkFrame(f))), muts)),
);

/** A SOCKS5 parser and the encoder that must reproduce what it accepts. */
interface SocksParser {
  name: string;
  parse: (b: Uint8Array) => { value: unknown; size: number } | null;
  valid: fc.Arbitrary<Uint8Array>;
  /** Re-encode a parsed value, or null when it has no canonical form to compare. */
  reencode: (v: never) => Uint8Array | null;
}

const noFFFD = (...s: string[]) => !s.some((x) => x.includes("\uFFFD"));

const socksParsers: SocksParser[] = [
  {
    name: "parseGreeting",
    parse: parseGreeting,
    valid: socks.greeting.map((v) => greeting(v.methods)),
    reencode: (v: { methods: number[] }) => greeting(v.methods),
  },
  {
    name: "parseMethodSelection",
    parse: parseMethodSelection,
    valid: socks.methodSelection.map((v) => methodSelection(v.method)),
    reencode: (v: { method: number }) => methodSelection(v.method),
  },
  {
    name: "parseUserpassRequest",
    parse: parseUserpassRequest,
    valid: socks.userpassRequest.map((v) => userpassRequest(v.user, v.pass)),
    // RFC 1929 fields are any octets; the parser maps invalid UTF-8 to U+FFFD on purpose.
    reencode: (v: { username: string; password: string }) =>
      noFFFD(v.username, v.password) ? userpassRequest(v.username, v.password) : null,
  },
  {
    name: "parseUserpassReply",
    parse: parseUserpassReply,
    valid: socks.userpassReply.map((v) => userpassReply(v.status)),
    reencode: (v: { status: number }) => userpassReply(v.status),
  },
  {
    name: "parseRequest",
    parse: parseRequest,
    valid: socks.request.map((v) => request(v.cmd, v.target)),
    reencode: (v: { command: number; target: T }) => request(v.command, v.target),
  },
  {
    name: "parseReply",
    parse: parseReply,
    valid: socks.reply.map((v) => reply(v.rep, v.bound)),
    reencode: (v: { reply: number; bound: T }) => reply(v.reply, v.bound),
  },
  {
    name: "parseUdpDatagram",
    // A datagram is whole: the parser takes all of it.
    parse: (b) => ({ value: parseUdpDatagram(b), size: b.length }),
    valid: socks.udpDatagram.map((v) => udpDatagram(v.target, v.data)),
    reencode: (v: { target: T; data: Uint8Array }) => udpDatagram(v.target, v.data),
  },
];

function socksChecked(p: SocksParser, buf: Uint8Array): void {
  let r: { value: unknown; size: number } | null;
  try {
    r = p.parse(buf);
  } catch (e) {
    expectSocksError(e, p.name);
    return;
  }
  if (r === null) return;
  if (!Number.isInteger(r.size) || r.size < 1 || r.size > buf.length) {
    throw new FuzzFailure(`${p.name}: size ${r.size} for ${buf.length} bytes`);
  }
  let again: Uint8Array | null;
  try {
    again = p.reencode(r.value as never);
  } catch (e) {
    throw new FuzzFailure(
      `${p.name}: accepted ${hexOf(buf)} as a value the encoder refuses: ${describe(e)}`,
    );
  }
  const used = buf.subarray(0, r.size);
  if (again !== null && !sameBytes(again, used)) {
    throw new FuzzFailure(`${p.name}: not canonical: ${hexOf(used)} re-encodes as ${hexOf(again)}`);
  }
}

/** One fuzz property: a name, how many runs it gets in the long run, and the property. */
export interface FuzzProperty {
  name: string;
  /** Runs in the default long run (scale 1). */
  runs: number;
  // deno-lint-ignore no-explicit-any
  property: fc.IRawProperty<any>;
}

// deno-lint-ignore no-explicit-any
function prop(name: string, runs: number, property: fc.IRawProperty<any>): FuzzProperty {
  return { name, runs, property };
}

/** Every fuzz property, with its share of the ≥ 1,000,000 inputs of the long run. */
export function properties(): FuzzProperty[] {
  const out: FuzzProperty[] = [
    prop(
      "issued tokens: valid, mutated and random text -> parseToken",
      100_000,
      fc.property(
        issuedToken,
        fc.array(mutation, { maxLength: 4 }),
        fc.string({ maxLength: 300 }),
        (t, muts, junk) => {
          tokenChecked(t.text, t.text);
          tokenChecked(b64url(mutate(t.bytes, muts)));
          const chars = mutate(new TextEncoder().encode(t.text), muts);
          tokenChecked(String.fromCharCode(...chars));
          tokenChecked(junk);
        },
      ),
    ),
    prop(
      "frames: random bytes -> Framer + decode",
      200_000,
      fc.property(frameish, cuts, (b, c) => framerDecode(chunk(b, c))),
    ),
    prop(
      "frames: mutated valid frames -> Framer + decode",
      150_000,
      fc.property(
        validFrames,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        cuts,
        (b, muts, c) => framerDecode(chunk(mutate(b, muts), c)),
      ),
    ),
    prop(
      "frames: valid frame, mutated payload, length fixed -> decode",
      150_000,
      fc.property(
        message,
        fc.array(mutation.filter((m) => m.kind !== "length"), { minLength: 1, maxLength: 4 }),
        (m, muts) => {
          const f = encode(m);
          const payload = mutate(f.subarray(12), muts);
          decodeChecked(fixLength(concat([f.subarray(0, 12), payload])), "decode");
        },
      ),
    ),
    prop(
      "frames: random payload of each known type -> decode",
      100_000,
      fc.property(
        fc.constantFrom(...KNOWN_TYPES),
        fc.oneof(fc.uint8Array({ maxLength: 48 }), fc.uint8Array({ maxLength: 300 })),
        (type, payload) => decodeChecked(frame(type, payload), "decode"),
      ),
    ),
    prop(
      "link: random and mutated bytes -> LinkFramer and generated Link",
      100_000,
      fc.property(linkish, cuts, (b, c) => linkChecked(b, c)),
    ),
  ];
  out.push(
    prop(
      "proxy: valid PROXY headers, every prefix -> parseProxyHeader",
      20_000,
      fc.property(proxyHeader, (h) => proxyChecked(h.bytes, h)),
    ),
    prop(
      "proxy: random and mutated bytes, every prefix -> parseProxyHeader",
      50_000,
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          // A long version 1 line: a verdict by 107 bytes.
          fc.uint8Array({ min: 0x20, max: 0x7e, minLength: 80, maxLength: 160 })
            .map((tail) => concat([new TextEncoder().encode("PROXY UNKNOWN "), tail])),
          fc.tuple(proxyHeader, fc.array(mutation, { minLength: 1, maxLength: 4 })).map((
            [h, muts],
          ) => mutate(h.bytes, muts)),
        ),
        (b) => proxyChecked(b),
      ),
    ),
  );
  out.push(prop(udpRecordProperty.name, udpRecordProperty.runs, udpRecordProperty.property));
  for (const p of socksParsers) {
    out.push(prop(
      `socks: random and mutated bytes -> ${p.name}`,
      70_000,
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 32 }),
          fc.uint8Array({ maxLength: 300 }),
          fc.tuple(p.valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([b, muts]) =>
            mutate(b, muts)
          ),
          fc.tuple(p.valid, fc.uint8Array({ maxLength: 8 })).map(([b, t]) => concat([b, t])),
        ),
        (b) => socksChecked(p, b),
      ),
    ));
  }
  return out;
}

// ------------------------------------------------------------ PROXY protocol

/**
 * parseProxyHeader on every prefix of `b` (as bytes arrive): null until a
 * verdict, never null past the largest header, and once it has a header,
 * the same one for every longer prefix; only ProxyHeaderError may escape.
 * `expect`: the source a valid header must give.
 */
function proxyChecked(b: Uint8Array, expect?: { host: string; port: number }): void {
  let size = -1;
  for (let n = 0; n <= b.length; n++) {
    let r: ReturnType<typeof parseProxyHeader>;
    try {
      r = parseProxyHeader(b.subarray(0, n));
    } catch (e) {
      if (e instanceof ProxyHeaderError) return;
      throw new FuzzFailure(`parseProxyHeader threw ${describe(e)} on ${hexOf(b.subarray(0, n))}`);
    }
    if (r === null) {
      if (size >= 0) throw new FuzzFailure(`parseProxyHeader lost its header at ${n} bytes`);
      if (n >= (b[0] === 0x50 ? V1_MAX : 16 + V2_MAX_LENGTH)) {
        throw new FuzzFailure(`no verdict after ${n} bytes of ${hexOf(b)}`);
      }
      continue;
    }
    if (size >= 0 && r.size !== size) throw new FuzzFailure(`header size changed at ${n} bytes`);
    if (r.size > n || r.size < 8) throw new FuzzFailure(`header size ${r.size} of ${n} bytes`);
    size = r.size;
    const src = r.value.source;
    if (expect && (src?.port !== expect.port || src.host !== normalizeIP(expect.host))) {
      throw new FuzzFailure(
        `${hexOf(b)} gave ${JSON.stringify(src)}, not ${JSON.stringify(expect)}`,
      );
    }
  }
  if (expect && size !== b.length) {
    throw new FuzzFailure(`valid header ${hexOf(b)} not taken whole`);
  }
}

// ------------------------------------------------------------ issued tokens

/** A well-formed issued token's bytes (SPEC.md §6.4), with an arbitrary signature. */
const issuedToken = fc.record({
  kind: fc.constantFrom("client" as const, "person" as const),
  keyId: fc.nat(),
  id: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  issuedAt: fc.nat({ max: 0xfffffffe }),
  life: fc.integer({ min: 1, max: 0xffffffff }),
  subject: fc.string({ unit: "binary", minLength: 1, maxLength: SUBJECT_MAX })
    .filter((s) => new TextEncoder().encode(s).length <= SUBJECT_MAX),
  signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
}).map((t) => {
  const body = tokenBody({ ...t, expiresAt: Math.min(0xffffffff, t.issuedAt + t.life) });
  return { bytes: concat([body, t.signature]), text: tokenText(body, t.signature) };
});

/**
 * parseToken on any text: null or a token, never a throw; what it takes
 * re-encodes to the same text (one text per token), and the longest text
 * fits the RFC 1929 password field.
 */
function tokenChecked(text: string, valid?: string): void {
  let t: ReturnType<typeof parseToken>;
  try {
    t = parseToken(text);
  } catch (e) {
    throw new FuzzFailure(`parseToken threw ${describe(e)} on ${JSON.stringify(text)}`);
  }
  if (valid !== undefined && text === valid && t === null) {
    throw new FuzzFailure(`parseToken refused a valid token ${text}`);
  }
  if (t === null) return;
  if (text.length > 255) throw new FuzzFailure(`a token of ${text.length} characters`);
  if (tokenText(t.signed, t.signature) !== text) {
    throw new FuzzFailure(`token ${text} does not re-encode to itself`);
  }
}

const b64url = (b: Uint8Array) => tokenText(b, new Uint8Array(0));

// ------------------------------------------------------- authorization model

/** Runs of test/authz_model_test.ts in the default long run (scale 1). */
const AUTHZ_RUNS = 10_000;
const AUTHZ_NAME = "authz model: random policies and targets through server and agent";

/**
 * test/authz_model_test.ts with `runs` runs, under Node in a process of its
 * own (it opens real sockets); true if it passed. Its output (fast-check's
 * counterexample on failure) goes to ours.
 */
function authzModel(runs: number, seed: number): Promise<boolean> {
  const root = new URL("..", import.meta.url).pathname;
  const args = ["--import", "tsx", "--test", "--test-reporter=spec", "test/authz_model_test.ts"];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      stdio: "inherit",
      env: { ...process.env, BURROW_MODEL_RUNS: String(runs), BURROW_MODEL_SEED: String(seed) },
    });
    child.on("exit", (code, signal) => resolve(code === 0 && signal === null));
    child.on("error", () => resolve(false));
  });
}

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scale: { type: "string", default: "1" },
      seed: { type: "string" },
      only: { type: "string" },
    },
  });
  const scale = Number(values.scale);
  if (!(scale > 0)) throw new Error(`--scale must be > 0, got ${values.scale}`);
  const seed = values.seed === undefined
    ? Date.now() ^ (Math.random() * 0x7fffffff)
    : Number(values.seed);
  const props = properties().filter((p) =>
    values.only === undefined || p.name.includes(values.only)
  );
  const authz = values.only === undefined || AUTHZ_NAME.includes(values.only);
  console.log(
    `fuzz: ${props.length} properties${
      authz ? " + the authorization model" : ""
    }, seed ${seed}, scale ${scale}`,
  );
  const t0 = performance.now();
  let total = 0;
  let failed = 0;
  for (const p of props) {
    const numRuns = Math.max(1, Math.round(p.runs * scale));
    const t = performance.now();
    const r = await fc.check(p.property, { numRuns, seed, endOnFailure: true });
    const secs = ((performance.now() - t) / 1000).toFixed(1);
    total += r.numRuns;
    if (r.failed) {
      failed++;
      console.log(`FAIL ${p.name}: after ${r.numRuns} inputs (${secs} s)`);
      console.log(fc.defaultReportMessage(r) ?? "");
    } else {
      console.log(`ok   ${p.name}: ${r.numRuns} inputs (${secs} s)`);
    }
  }
  let steps = props.length;
  if (authz) {
    steps++;
    const runs = Math.max(1, Math.round(AUTHZ_RUNS * scale));
    const t = performance.now();
    const ok = await authzModel(runs, seed);
    const secs = ((performance.now() - t) / 1000).toFixed(1);
    if (!ok) failed++;
    console.log(`${ok ? "ok  " : "FAIL"} ${AUTHZ_NAME}: ${runs} runs (${secs} s)`);
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `total: ${total} inputs in ${secs} s, ${failed} of ${steps} properties failed`,
  );
  if (failed > 0) process.exitCode = 1;
}

const argv1 = globalThis.process?.argv?.[1];
if (argv1 !== undefined && import.meta.url === pathToFileURL(argv1).href) {
  await main();
}
