/**
 * fast-check arbitraries of valid burrow values: every {@link Message} type,
 * {@link Target}s (IPv4, IPv6, domain), ANNOUNCE rules, SOCKS5 messages, link
 * frames (with {@link parseLinkGenerated}, the generated parser's reading of
 * one). Shared by test/roundtrip_test.ts, test/link_frame_test.ts,
 * test/fuzz_test.ts and scripts/fuzz.ts.
 *
 * "Valid" means: whatever SPEC.md allows, in canonical form where the decoder
 * produces a canonical form (IP text is RFC 5952 / dotted quad), so
 * `decode(encode(v))` must deep-equal `v`.
 */
import fc from "fast-check";
import { LinkFrameType } from "../generated/enums.ts";
import { Link } from "../generated/Link.js";
import { formatIPv4, formatIPv6, parseIP } from "../src/ip.ts";
import { kaitaiStream } from "../src/kaitai.ts";
import { LINK_MAX_DATA, type LinkFrame } from "../src/link_frame.ts";
import type { Hello, Message, MessageOf, MsgTypeName, Rule, Target } from "../src/messages.ts";

const utf8 = new TextEncoder();

/** `fc.record` with ordinary objects (fast-check may otherwise make null-prototype ones, which deepStrictEqual tells apart). */
function rec<R extends Record<string, fc.Arbitrary<unknown>>>(
  model: R,
): fc.Arbitrary<{ [K in keyof R]: R[K] extends fc.Arbitrary<infer T> ? T : never }> {
  return fc.record(model, { noNullPrototype: true }) as never;
}

export const u8: fc.Arbitrary<number> = fc.integer({ min: 0, max: 0xff });
export const u16: fc.Arbitrary<number> = fc.integer({ min: 0, max: 0xffff });
export const u32: fc.Arbitrary<number> = fc.integer({ min: 0, max: 0xffffffff });

/** Bytes of exactly `n`. */
export const bytesN = (n: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: n, maxLength: n });

/** Bytes of `min`..`max`, biased to include both bounds. */
export function bytesRange(min: number, max: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ minLength: min, maxLength: max }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: min, maxLength: max, size: "max" }) },
    { weight: 1, arbitrary: bytesN(max) },
    { weight: 1, arbitrary: bytesN(min) },
  );
}

/** Cut `s` to at most `max` UTF-8 bytes, on a code point boundary. */
function truncateUtf8(s: string, max: number): string {
  if (utf8.encode(s).length <= max) return s;
  let out = "";
  let n = 0;
  for (const cp of s) {
    const k = utf8.encode(cp).length;
    if (n + k > max) break;
    out += cp;
    n += k;
  }
  return out;
}

/** Well-formed Unicode strings of `min`..`max` UTF-8 bytes (all of Unicode, ASCII-heavy, both bounds). */
export function utf8String(min: number, max: number): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ unit: "binary-ascii", minLength: min, maxLength: max }) },
    {
      weight: 3,
      arbitrary: fc.string({ unit: "binary", minLength: min, maxLength: max }).map((s) =>
        truncateUtf8(s, max)
      ),
    },
    {
      weight: 1,
      arbitrary: fc.string({ unit: "grapheme", minLength: min, maxLength: max, size: "max" }).map((
        s,
      ) => truncateUtf8(s, max)),
    },
    { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", minLength: max, maxLength: max }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", minLength: min, maxLength: min }) },
  ).filter((s) => {
    const n = utf8.encode(s).length;
    return n >= min && n <= max;
  });
}

const NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".split("");

/** Agent/client names, SPEC.md §10: `min`..64 chars of `A-Z a-z 0-9 . _ -`. */
export function name(min = 1): fc.Arbitrary<string> {
  const unit = fc.constantFrom(...NAME_CHARS);
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit, minLength: min, maxLength: 64 }) },
    { weight: 1, arbitrary: fc.string({ unit, minLength: 64, maxLength: 64 }) },
    { weight: 1, arbitrary: fc.string({ unit, minLength: min, maxLength: min }) },
  );
}

export const ipv4Bytes: fc.Arbitrary<Uint8Array> = bytesN(4);

/** IPv6 bytes biased to zero runs (to exercise `::`) and IPv4-mapped addresses. */
export const ipv6Bytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  bytesN(16),
  fc.array(fc.oneof(fc.constant(0), fc.constant(0), u16), { minLength: 8, maxLength: 8 }).map(
    (g) => {
      const b = new Uint8Array(16);
      g.forEach((v, i) => {
        b[2 * i] = v >> 8;
        b[2 * i + 1] = v & 0xff;
      });
      return b;
    },
  ),
  bytesN(4).map((v4) => {
    const b = new Uint8Array(16);
    b[10] = 0xff;
    b[11] = 0xff;
    b.set(v4, 12);
    return b;
  }),
);

export const ipv4Text: fc.Arbitrary<string> = ipv4Bytes.map((b) => formatIPv4(b));
export const ipv6Text: fc.Arbitrary<string> = ipv6Bytes.map((b) => formatIPv6(b));

export const domainName: fc.Arbitrary<string> = fc.oneof(
  fc.domain().filter((d) => d.length <= 255),
  utf8String(1, 255),
);

export const target: fc.Arbitrary<Target> = fc.oneof(
  rec({ type: fc.constant("ipv4" as const), host: ipv4Text, port: u16 }),
  rec({ type: fc.constant("ipv6" as const), host: ipv6Text, port: u16 }),
  rec({ type: fc.constant("domain" as const), host: domainName, port: u16 }),
);

const portRange = fc.tuple(u16, u16).map(([a, b]) => ({
  portMin: Math.min(a, b),
  portMax: Math.max(a, b),
}));

const hostPattern: fc.Arbitrary<string> = fc.oneof(
  fc.constant("*"),
  fc.domain().map((d) => `*.${d}`).filter((d) => d.length <= 255),
  fc.domain().filter((d) => d.length <= 255),
  utf8String(1, 255),
);

/** A rule's protocol: 6 (TCP) or 17 (UDP), SPEC.md §9.8. */
const ruleProtocol = fc.constantFrom(6, 17);

export const rule: fc.Arbitrary<Rule> = fc.oneof(
  rec({
    kind: fc.constant("host" as const),
    client: name(0),
    pattern: hostPattern,
    pr: portRange,
    protocol: ruleProtocol,
  })
    .map(({ pr, ...r }): Rule => ({ ...r, ...pr })),
  rec({
    kind: fc.constant("cidr4" as const),
    client: name(0),
    addr: ipv4Text,
    prefix: fc.integer({ min: 0, max: 32 }),
    pr: portRange,
    protocol: ruleProtocol,
  }).map(({ pr, ...r }): Rule => ({ ...r, ...pr })),
  rec({
    kind: fc.constant("cidr6" as const),
    client: name(0),
    addr: ipv6Text,
    prefix: fc.integer({ min: 0, max: 128 }),
    pr: portRange,
    protocol: ruleProtocol,
  }).map(({ pr, ...r }): Rule => ({ ...r, ...pr })),
);

/** A protocol version, ≥ 1 (SPEC.md §4). */
const version = fc.integer({ min: 1, max: 255 });

/** An authentication proof: 32 bytes (token) or 64 (ed25519), SPEC.md §6.2, spec/handshake.ksy. */
const proof = fc.oneof(bytesN(32), bytesN(64));

const versions = fc.tuple(fc.integer({ min: 1, max: 255 }), fc.integer({ min: 1, max: 255 }))
  .map(([a, b]) => ({ minVersion: Math.min(a, b), maxVersion: Math.max(a, b) }));

const hello: fc.Arbitrary<Hello> = rec({
  v: versions,
  authMethod: u8,
  name: name(1),
  software: utf8String(0, 255),
}).map(({ v, ...h }) => ({ ...v, ...h }));

function withType<T extends MsgTypeName, V extends object>(
  type: T,
  a: fc.Arbitrary<V>,
): fc.Arbitrary<MessageOf<T>> {
  return a.map((v) => ({ type, ...v }) as unknown as MessageOf<T>);
}

/** One arbitrary per message type. */
export const messages: { [K in MsgTypeName]: fc.Arbitrary<MessageOf<K>> } = {
  AGENT_HELLO: withType("AGENT_HELLO", hello),
  CHALLENGE: withType("CHALLENGE", rec({ version: version, nonce: bytesN(32) })),
  AUTH: withType("AUTH", rec({ proof })),
  WELCOME: withType(
    "WELCOME",
    rec({
      agentId: u32,
      sessionId: bytesN(16),
      heartbeatIntervalMs: u32,
      heartbeatTimeoutMs: u32,
      poolMin: u16,
      poolMax: u16,
    }),
  ),
  ERROR: withType("ERROR", rec({ code: u16, message: utf8String(0, 1024) })),
  ANNOUNCE: withType(
    "ANNOUNCE",
    rec({
      rules: fc.oneof(
        { weight: 20, arbitrary: fc.array(rule, { maxLength: 512 }) },
        { weight: 1, arbitrary: fc.array(rule, { minLength: 512, maxLength: 512 }) },
      ),
    }),
  ),
  POOL_REQUEST: withType(
    "POOL_REQUEST",
    rec({ requestId: u32, count: fc.integer({ min: 1, max: 0xffff }) }),
  ),
  POOL_CONFIRM: withType("POOL_CONFIRM", rec({ requestId: u32, count: u16 })),
  PING: withType("PING", rec({ data: bytesN(8) })),
  PONG: withType("PONG", rec({ data: bytesN(8) })),
  GOAWAY: withType("GOAWAY", rec({ code: u16, message: utf8String(0, 1024) })),
  INSTANCE: withType("INSTANCE", rec({ instance: bytesN(16), nameserver: target })),
  POOL_HELLO: withType(
    "POOL_HELLO",
    rec({ version, agentId: u32, sessionId: bytesN(16), seq: u32, proof }),
  ),
  LINK_HELLO: withType(
    "LINK_HELLO",
    rec({ version, agentId: u32, sessionId: bytesN(16), seq: u32, proof }),
  ),
  OPEN: withType(
    "OPEN",
    rec({ streamId: u32, clientId: u32, client: name(1), protocol: ruleProtocol, target }),
  ),
  OPEN_RESULT: withType("OPEN_RESULT", rec({ streamId: u32, status: u8, bound: target })),
  CLIENT_HELLO: withType("CLIENT_HELLO", hello),
  CLIENT_READY: withType("CLIENT_READY", rec({ clientId: u32 })),
  CONNECT: withType("CONNECT", rec({ agent: name(0), protocol: ruleProtocol, target })),
  CHECK: withType("CHECK", rec({ agent: name(0) })),
  CONNECT_RESULT: withType("CONNECT_RESULT", rec({ status: u8, reason: u8, bound: target })),
  PEER_HELLO: withType(
    "PEER_HELLO",
    rec({ v: versions, name: name(1), nonce: bytesN(32) }).map(({ v, ...h }) => ({ ...v, ...h })),
  ),
  FORWARD: withType(
    "FORWARD",
    rec({
      client: utf8String(1, 96).filter((c) => c.length > 0),
      agent: name(1),
      protocol: ruleProtocol,
      target,
    }),
  ),
  FLEET: withType("FLEET", rec({ op: u8, arg: utf8String(0, 255) })),
  PEER_WELCOME: withType("PEER_WELCOME", rec({ name: name(1), proof: bytesN(32) })),
  FORWARD_CHECK: withType(
    "FORWARD_CHECK",
    rec({ client: utf8String(1, 96).filter((c) => c.length > 0), agent: name(1) }),
  ),
};

/** Any valid message. */
export const message: fc.Arbitrary<Message> = fc.oneof(
  ...(Object.values(messages) as fc.Arbitrary<Message>[]),
);

// ---- SOCKS5 (SPEC.md §8) ----

/** Values of the SOCKS5 messages, as given to the encoders in src/socks5_encode.ts. */
export const socks = {
  greeting: fc.uint8Array({ minLength: 1, maxLength: 255 }).map((methods) => ({ methods })),
  methodSelection: rec({ method: u8 }),
  userpassRequest: rec({ user: utf8String(1, 255), pass: utf8String(1, 255) }),
  userpassReply: rec({ status: u8 }),
  request: rec({ cmd: u8, target }),
  reply: rec({ rep: u8, bound: target }),
  /** RFC 1928 §7 UDP datagram: its target (or source) and data. */
  udpDatagram: rec({ target, data: fc.uint8Array({ maxLength: 600 }) }),
};

// ---- Link frames (SPEC.md §3.2) ----

/** A stream id of a link frame: 1..2^32-1, biased to the bounds. */
const linkStream = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 0xffffffff }) },
  { weight: 1, arbitrary: fc.constantFrom(1, 0x7fffffff, 0x80000000, 0xffffffff) },
);

/**
 * Valid link frames of every kind; DATA bodies of 1..`maxData` bytes
 * (LINK_MAX_DATA by default), both bounds included.
 */
export function linkFrame(maxData = LINK_MAX_DATA): fc.Arbitrary<LinkFrame> {
  return fc.oneof(
    rec({
      type: fc.constant("DATA" as const),
      stream: linkStream,
      data: fc.oneof(
        {
          weight: 8,
          arbitrary: fc.uint8Array({ minLength: 1, maxLength: Math.min(maxData, 300) }),
        },
        { weight: 1, arbitrary: fc.constantFrom(1, maxData).chain(bytesN) },
      ),
    }),
    rec({
      type: fc.constantFrom(
        "OPEN" as const,
        "FIN" as const,
        "RESET" as const,
        "GRANT" as const,
        "PING" as const,
        "PONG" as const,
      ),
      stream: linkStream,
    }),
    rec({
      type: fc.constant("WINDOW" as const),
      stream: linkStream,
      increment: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 0xffffffff }) },
        { weight: 1, arbitrary: fc.constantFrom(1, 0xffffffff) },
      ),
    }),
  );
}

const LINK_TYPE_NAMES: ReadonlyMap<number, LinkFrame["type"]> = new Map(
  Object.entries(LinkFrameType).map(([k, v]) => [v, k as LinkFrame["type"]]),
);

/**
 * One link frame at the start of `bytes`, read by the parser generated from
 * spec/link.ksy, as a {@link LinkFrame} (bytes copied), and the bytes it
 * took. Throws what the generated parser throws: a Kaitai `Validation*Error`
 * for a frame the .ksy refuses, `EOFError` for a frame that is not complete.
 */
export function parseLinkGenerated(bytes: Uint8Array): { frame: LinkFrame; size: number } {
  const io = kaitaiStream(bytes);
  const l = new Link(io);
  const type = LINK_TYPE_NAMES.get(l.type);
  const stream = l.streamId;
  const body = l.body;
  let frame: LinkFrame;
  if (type === "DATA" && body instanceof Uint8Array) frame = { type, stream, data: body.slice() };
  else if (type === "WINDOW" && body instanceof Link.Window) {
    frame = { type, stream, increment: body.increment };
  } else if (
    (type === "OPEN" || type === "FIN" || type === "RESET" || type === "GRANT" ||
      type === "PING" || type === "PONG") &&
    body instanceof Link.Empty
  ) {
    frame = { type, stream };
  } else throw new Error(`generated Link: type ${l.type} with body ${String(body)}`);
  return { frame, size: io.pos };
}

// ---- Mutations, for the fuzz tests ----

/** One edit of a byte string; positions are taken modulo the length when applied. */
export type Mutation =
  | { kind: "flip"; pos: number; bit: number }
  | { kind: "set"; pos: number; value: number }
  | { kind: "truncate"; len: number }
  | { kind: "insert"; pos: number; bytes: Uint8Array }
  | { kind: "delete"; pos: number; n: number }
  | { kind: "length"; value: number }
  | { kind: "u16"; pos: number; value: number };

/** Interesting values for a u4 length field and for u1/u2 length prefixes. */
const edgy32 = fc.oneof(
  u32,
  fc.constantFrom(
    0,
    1,
    0xff,
    0x100,
    0xffff,
    0x10000,
    262143,
    262144,
    262145,
    0x7fffffff,
    0x80000000,
    0xffffffff,
  ),
);

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: rec({
      kind: fc.constant("flip" as const),
      pos: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
  },
  {
    weight: 3,
    arbitrary: rec({
      kind: fc.constant("set" as const),
      pos: fc.nat(),
      value: fc.oneof(u8, fc.constantFrom(0, 1, 3, 4, 0x7f, 0x80, 0xff)),
    }),
  },
  { weight: 2, arbitrary: rec({ kind: fc.constant("truncate" as const), len: fc.nat() }) },
  {
    weight: 2,
    arbitrary: rec({
      kind: fc.constant("insert" as const),
      pos: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 2,
    arbitrary: rec({
      kind: fc.constant("delete" as const),
      pos: fc.nat(),
      n: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 2, arbitrary: rec({ kind: fc.constant("length" as const), value: edgy32 }) },
  {
    weight: 1,
    arbitrary: rec({
      kind: fc.constant("u16" as const),
      pos: fc.nat(),
      value: fc.oneof(u16, fc.constantFrom(0, 0xff, 0x100, 0xffff)),
    }),
  },
);

/** Apply `muts` to a copy of `b`. A `length` edit writes the frame length field (bytes 8..11). */
export function mutate(b: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let out = Uint8Array.from(b);
  for (const m of muts) {
    const n = out.length;
    switch (m.kind) {
      case "flip":
        if (n > 0) out[m.pos % n]! ^= 1 << m.bit;
        break;
      case "set":
        if (n > 0) out[m.pos % n] = m.value;
        break;
      case "truncate":
        out = out.slice(0, m.len % (n + 1));
        break;
      case "insert": {
        const at = m.pos % (n + 1);
        const next = new Uint8Array(n + m.bytes.length);
        next.set(out.subarray(0, at));
        next.set(m.bytes, at);
        next.set(out.subarray(at), at + m.bytes.length);
        out = next;
        break;
      }
      case "delete": {
        if (n === 0) break;
        const at = m.pos % n;
        out = Uint8Array.from([...out.subarray(0, at), ...out.subarray(Math.min(n, at + m.n))]);
        break;
      }
      case "length":
        if (n >= 12) new DataView(out.buffer, out.byteOffset).setUint32(8, m.value);
        break;
      case "u16":
        if (n >= 2) new DataView(out.buffer, out.byteOffset).setUint16(m.pos % (n - 1), m.value);
        break;
    }
  }
  return out;
}

/** Set the frame length field to the actual payload size (so the payload parser, not the framer, sees the damage). */
export function fixLength(f: Uint8Array): Uint8Array {
  if (f.length >= 12) new DataView(f.buffer, f.byteOffset).setUint32(8, f.length - 12);
  return f;
}

/** Concatenate byte strings. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Cut `b` into chunks at `cuts` (taken modulo length + 1). */
export function chunk(b: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, b.length]) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  return out;
}

// ------------------------------------------------------------ PROXY protocol

const PROXY_V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A PROXY protocol version 1 header from `src`:`sport` (to `dst`:`dport`). */
export function proxyV1(src: string, sport: number, dst = src, dport = 1080): Uint8Array {
  const proto = src.includes(":") ? "TCP6" : "TCP4";
  return new TextEncoder().encode(`PROXY ${proto} ${src} ${dst} ${sport} ${dport}\r\n`);
}

/**
 * A PROXY protocol version 2 header: PROXY (or LOCAL) from `src`:`sport`,
 * in `family` (default TCP over the address's family; 0x00 has no
 * addresses), with `tlv` bytes after the addresses.
 */
export function proxyV2(
  src: string,
  sport: number,
  opts: { local?: boolean; tlv?: number[]; family?: number } = {},
): Uint8Array {
  const ip = parseIP(src)!;
  const addrs = [...ip.bytes, ...ip.bytes, sport >> 8, sport & 0xff, 0x04, 0x38];
  const family = opts.family ?? (ip.kind === "ipv4" ? 0x11 : 0x21);
  const body = [...(family === 0x00 ? [] : addrs), ...(opts.tlv ?? [])];
  return Uint8Array.from([
    ...PROXY_V2_SIG,
    opts.local ? 0x20 : 0x21,
    family,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}

/** A valid PROXY header, version 1 or 2, TCP from a random address and port. */
export const proxyHeader: fc.Arbitrary<{ host: string; port: number; bytes: Uint8Array }> = fc
  .tuple(fc.oneof(ipv4Text, ipv6Text), u16, fc.boolean(), fc.uint8Array({ maxLength: 24 }))
  .map(([host, port, two, tlv]) => ({
    host,
    port,
    bytes: two ? proxyV2(host, port, { tlv: [...tlv] }) : proxyV1(host, port),
  }));
