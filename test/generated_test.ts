/**
 * generated/ is what scripts/gen.ts makes of spec/*.ksy, its ES modules load
 * in the running runtime (Node, Deno or Bun) and parse, and src/decode.ts and
 * src/socks5_decode.ts map their results and failures as SPEC.md says. (The
 * frame header is the framer's: test/framer_test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { checkGenerated, readSpecs } from "../scripts/gen.ts";
import { MessageGen, toCodecTs, toMessagesTs } from "../scripts/gen_messages.ts";
import * as enums from "../generated/enums.ts";
import { decode, decodePayload } from "../src/decode.ts";
import { ProtocolError, SocksError } from "../src/errors.ts";
import { Framer } from "../src/framer.ts";
import { kaitaiStream } from "../src/kaitai.ts";
import { type ErrorCodeName, MsgType } from "../src/messages.ts";
import {
  parseGreeting,
  parseMethodSelection,
  parseReply,
  parseRequest,
  parseUserpassReply,
  parseUserpassRequest,
} from "../src/socks5_decode.ts";

const GENERATED_DIR = new URL("../generated/", import.meta.url);
const utf8 = new TextEncoder();

/** A whole frame: header (magic, framing version 1, type, flags 0, length) + payload. */
function frame(
  type: number,
  payload: ArrayLike<number>,
  opts: { flags?: number; version?: number } = {},
): Uint8Array {
  const b = new Uint8Array(12 + payload.length);
  b.set([0x42, 0x52, 0x52, 0x57, opts.version ?? 1, type]);
  new DataView(b.buffer).setUint16(6, opts.flags ?? 0);
  new DataView(b.buffer).setUint32(8, payload.length);
  b.set(Array.from(payload), 12);
  return b;
}

/** str(u1) */
function str1(s: string): number[] {
  const b = utf8.encode(s);
  return [b.length, ...b];
}

function hello(name: string, opts: { min?: number; max?: number } = {}): number[] {
  return [opts.min ?? 1, opts.max ?? 1, 1, ...str1(name), ...str1("burrow/test")];
}

/** POOL_HELLO / LINK_HELLO payload: agent 1, session 0…0, seq 1, a 32-byte proof. */
function poolHello(version: number): number[] {
  const [agentId, seq] = [[0, 0, 0, 1], [0, 0, 0, 1]];
  const zeros = (n: number) => new Array<number>(n).fill(0);
  return [version, ...agentId, ...zeros(16), ...seq, 32, ...zeros(32)];
}

function throwsProtocol(fn: () => unknown, code: ErrorCodeName, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function throwsSocks(fn: () => unknown, code: SocksError["code"]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SocksError, `expected SocksError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

// ---------------------------------------------------------------------------
// generated/

test("generated: generated/ is up to date with spec/*.ksy (scripts/gen.ts --check)", async () => {
  assert.deepEqual(await checkGenerated(), []);
});

test("generated: a field added to a .ksy reaches the interface, the limits, the encoder and the decoder", () => {
  // README, Development, "Adding a field": WELCOME gains `max_streams`.
  const specs = readSpecs();
  const handshake = specs.find((s) => s.id === "handshake")!;
  handshake.ksy.types!["welcome"]!.seq!.push({
    id: "max_streams",
    type: "u2",
    valid: { min: 1, max: 1000 },
    doc: "Streams the agent may have open at once.",
  });
  const g = new MessageGen(specs);
  const messages = toMessagesTs(g);
  const codec = toCodecTs(g);
  const welcome = messages.slice(messages.indexOf("export interface Welcome {"));
  assert.match(welcome.slice(0, welcome.indexOf("\n}")), /\n {2}maxStreams: number;$/);
  assert.match(messages, /"handshake::welcome": \{\n {4}maxStreams: \{ min: 1, max: 1000 \},/);
  assert.match(codec, /\n {6}w\.u16\(msg\.maxStreams, "WELCOME\.maxStreams"\);\n/);
  assert.match(codec, /if \(strict && msg\.maxStreams > 1000\) throw new RangeError/);
  assert.match(codec, /type: "WELCOME", .*, maxStreams: p\.maxStreams \};/);
  // A user type is a nested object (or, with `-flat: true`, merged).
  handshake.ksy.types!["welcome"]!.seq!.push({ id: "ready", type: "client_ready" });
  const nested = toCodecTs(new MessageGen(specs));
  assert.match(nested, /w\.u32\(msg\.ready\.clientId, "WELCOME\.ready\.clientId"\);/);
  assert.match(nested, /, ready: \{ clientId: p\.ready\.clientId \} \};/);
  // What the generator has no mapping for fails the generation, naming it.
  handshake.ksy.types!["welcome"]!.seq!.push({ id: "rest", "size-eos": true });
  assert.throws(
    () => new MessageGen(specs),
    (e: unknown) =>
      e instanceof Error &&
      /^Cannot generate messages from spec\/handshake\.ksy welcome\.rest: /.test(e.message),
  );
});

test("generated: every module imports in this runtime and exports its class", async () => {
  const modules = readdirSync(GENERATED_DIR).filter((f) => f.endsWith(".js")).sort();
  assert.ok(modules.length > 0);
  for (const file of modules) {
    const mod = (await import(new URL(file, GENERATED_DIR).href)) as Record<string, unknown>;
    const name = file.slice(0, -3);
    assert.deepEqual(Object.keys(mod), [name], `${file} exports`);
    assert.equal(typeof mod[name], "function", `${file}: ${name} is not a class`);
  }
});

test("generated: enums.ts imports in this runtime and exports one frozen-shape object per .ksy enum", () => {
  assert.deepEqual(Object.keys(enums).sort(), [
    "AddrType",
    "AuthMethod",
    "ErrorCode",
    "LinkFrameType",
    "MsgType",
    "Reason",
    "RuleKind",
    "RuleProtocol",
    "SocksCmd",
    "SocksMethod",
    "SocksUserpassStatus",
    "SocksVersion",
    "Status",
    "TokenKind",
  ]);
  assert.equal(enums.MsgType, MsgType, "src/messages.ts re-exports the generated object");
  assert.equal(enums.MsgType.CONNECT_RESULT, 0x33);
  assert.equal(enums.MsgType.LINK_HELLO, 0x23);
  assert.equal(enums.LinkFrameType.RESET, 4);
  assert.equal(enums.AddrType.domain, 3);
  assert.equal(enums.SocksVersion.socks5, 5);
});

test("generated: Frame parses a hand-built AGENT_HELLO through the kaitai-struct runtime", async () => {
  const { Frame } = await import("../generated/Frame.js");
  const { Handshake } = await import("../generated/Handshake.js");
  const bytes = frame(0x01, hello("db-agent"));
  const f = new Frame(kaitaiStream(bytes));
  assert.equal(f.header.msgType, Frame.MsgType.AGENT_HELLO);
  assert.equal(f.header.lenPayload, bytes.length - 12);
  const p = f.payload;
  assert.ok(p instanceof Handshake.Hello);
  // Text fields are bytes in the .ksy; src/ decodes them as UTF-8.
  assert.deepEqual(p.name, utf8.encode("db-agent"));
  assert.deepEqual(p.software, utf8.encode("burrow/test"));
  assert.equal(p.authMethod, 1);
  assert.ok(p._io.isEof());
});

test("generated: a payload type parses on its own, from a stream over the payload only", async () => {
  const { Handshake } = await import("../generated/Handshake.js");
  const p = new Handshake.Hello(kaitaiStream(Uint8Array.from(hello("db-agent"))));
  assert.deepEqual(p.name, utf8.encode("db-agent"));
  assert.ok(p._io.isEof());
});

test("generated: an unknown extension type keeps its payload as raw bytes", async () => {
  const { Frame } = await import("../generated/Frame.js");
  const bytes = frame(0x9a, [1, 2, 3]);
  const f = new Frame(kaitaiStream(bytes));
  assert.deepEqual(f.payload, Uint8Array.of(1, 2, 3));
});

test("generated: LINK_HELLO is POOL_HELLO's layout with a version of at least 1", async () => {
  const { Frame } = await import("../generated/Frame.js");
  const { Pool } = await import("../generated/Pool.js");
  const f = new Frame(kaitaiStream(frame(0x23, poolHello(1))));
  assert.equal(f.header.msgType, Frame.MsgType.LINK_HELLO);
  assert.ok(f.payload instanceof Pool.LinkHello);
  assert.equal(f.payload.version, 1);
  assert.equal(f.payload.binding.seq, 1);
  assert.equal(f.payload.binding.proof.length, 32);
  assert.ok(f.payload._io.isEof());
  assert.equal(new Pool.LinkHello(kaitaiStream(Uint8Array.from(poolHello(255)))).version, 255);
  assert.throws(() => new Pool.LinkHello(kaitaiStream(Uint8Array.from(poolHello(0)))), "v0");
  assert.throws(() => new Frame(kaitaiStream(frame(0x23, poolHello(0)))), "frame v0");
  // POOL_HELLO takes every version from 1 too.
  assert.equal(new Pool.PoolHello(kaitaiStream(Uint8Array.from(poolHello(2)))).version, 2);
});

test("generated: SOCKS5 version bytes are validated against the socks5_registries enum", async () => {
  const { Socks5Greeting } = await import("../generated/Socks5Greeting.js");
  const { Socks5UserpassReply } = await import("../generated/Socks5UserpassReply.js");
  assert.equal(new Socks5Greeting(kaitaiStream(Uint8Array.of(5, 1, 2))).version, 5);
  assert.throws(() => new Socks5Greeting(kaitaiStream(Uint8Array.of(1, 1, 2))));
  assert.equal(new Socks5UserpassReply(kaitaiStream(Uint8Array.of(1, 0))).version, 1);
  assert.throws(() => new Socks5UserpassReply(kaitaiStream(Uint8Array.of(5, 0))));
});

// ---------------------------------------------------------------------------
// decode

test("decode: hand-built frames of each shape", () => {
  assert.deepEqual(decode(frame(0x30, hello("laptop", { min: 1, max: 3 }))), {
    type: "CLIENT_HELLO",
    minVersion: 1,
    maxVersion: 3,
    authMethod: 1,
    name: "laptop",
    software: "burrow/test",
  });
  const rules = [
    0,
    3,
    1,
    ...str1(""),
    ...str1("*.corp"),
    0,
    1,
    0xff,
    0xff,
    6,
    2,
    ...str1("ci"),
    10,
    0,
    0,
    0,
    8,
    0,
    22,
    0,
    22,
    17,
    3,
    ...str1(""),
    0xfd,
    0,
    ...new Array<number>(13).fill(0),
    1,
    64,
    0x1f,
    0x90,
    0x1f,
    0x90,
    6,
  ];
  assert.deepEqual(decode(frame(0x10, rules)), {
    type: "ANNOUNCE",
    rules: [
      { kind: "host", client: "", pattern: "*.corp", portMin: 1, portMax: 65535, protocol: 6 },
      {
        kind: "cidr4",
        client: "ci",
        addr: "10.0.0.0",
        prefix: 8,
        portMin: 22,
        portMax: 22,
        protocol: 17,
      },
      {
        kind: "cidr6",
        client: "",
        addr: "fd00::1",
        prefix: 64,
        portMin: 8080,
        portMax: 8080,
        protocol: 6,
      },
    ],
  });
  assert.deepEqual(decode(frame(0x32, [...str1(""), 6, 3, ...str1("db.corp"), 0x15, 0x38])), {
    type: "CONNECT",
    agent: "",
    protocol: 6,
    target: { type: "domain", host: "db.corp", port: 5432 },
  });
  const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
  assert.deepEqual(decode(frame(0x33, [0, 0, 4, ...v6, 0, 80])), {
    type: "CONNECT_RESULT",
    status: 0,
    reason: 0,
    bound: { type: "ipv6", host: "2001:db8::1:0:0:1", port: 80 },
  });
  assert.deepEqual(decode(frame(0x33, [5, 13, 1, 0, 0, 0, 0, 0, 0])), {
    type: "CONNECT_RESULT",
    status: 5,
    reason: 13,
    bound: { type: "ipv4", host: "0.0.0.0", port: 0 },
  });
  assert.deepEqual(decode(frame(0x34, [...str1("office")])), { type: "CHECK", agent: "office" });
  const ping = decode(frame(0x13, [1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual(ping, { type: "PING", data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) });
});

test("decode: returned bytes do not alias the input frame", () => {
  const input = frame(0x14, [1, 2, 3, 4, 5, 6, 7, 8]);
  const m = decode(input);
  assert.ok(m?.type === "PONG");
  input.fill(0);
  assert.deepEqual(m.data, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
});

test("decode: a frame inside a larger buffer is read only within its bounds", () => {
  const f = frame(0x31, [0, 0, 0, 7]);
  const big = new Uint8Array(f.length + 10).fill(0xee);
  big.set(f, 5);
  assert.deepEqual(decode(big.subarray(5, 5 + f.length)), { type: "CLIENT_READY", clientId: 7 });
});

test("decode: unknown extension types give null; other errors carry a cause", () => {
  assert.equal(decode(frame(0x80, [])), null);
  assert.equal(decode(frame(0xfe, [1, 2, 3])), null);
  assert.equal(decodePayload(0xff, Uint8Array.of(1)), null);
  throwsProtocol(
    () => decode(frame(0x40, [])),
    "unknown_type",
    /^Cannot parse frame: unknown message type 0x40$/,
  );
  throwsProtocol(
    () => decode(Uint8Array.of(0x42, 0x52, 0x52)),
    "invalid_message",
    /^Cannot parse frame: /,
  );
  const truncated = frame(0x13, [1, 2, 3, 4, 5, 6, 7, 8]).subarray(0, 15);
  throwsProtocol(
    () => decode(truncated),
    "invalid_message",
    /^Cannot parse PING payload: truncated/,
  );
  try {
    decode(frame(0x13, [1, 2, 3]));
    assert.fail("no error");
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "invalid_message");
    assert.match(err.message, /^Cannot parse PING payload: /);
    assert.ok(err.cause instanceof Error, "cause is the parser's error");
  }
});

test("decode: the header is the framer's; decode parses only the payload", () => {
  // One check per frame: a frame the framer refuses never reaches decode ...
  const framer = new Framer();
  framer.push(frame(0x13, [1, 2, 3, 4, 5, 6, 7, 8], { flags: 1 }));
  throwsProtocol(
    () => framer.next(),
    "invalid_message",
    /^Cannot parse frame: flags 0x0001 are not 0$/,
  );
  // ... and decode does not look at magic, version, flags or length again.
  assert.deepEqual(decode(frame(0x13, [1, 2, 3, 4, 5, 6, 7, 8], { flags: 1, version: 9 })), {
    type: "PING",
    data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  });
  assert.deepEqual(decodePayload(0x13, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), {
    type: "PING",
    data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  });
});

test("decode: payloads that do not parse or break SPEC.md §10 limits are invalid_message", () => {
  const bad: [string, number, number[]][] = [
    ["trailing byte", 0x13, [1, 2, 3, 4, 5, 6, 7, 8, 9]],
    ["empty name", 0x01, hello("")],
    ["name with a space", 0x01, hello("db agent")],
    ["name of 65 bytes", 0x01, hello("a".repeat(65))],
    ["non-ASCII name", 0x30, hello("café")],
    ["min_version 0", 0x01, hello("a", { min: 0, max: 1 })],
    ["min_version > max_version", 0x01, hello("a", { min: 3, max: 2 })],
    ["CHALLENGE version 0", 0x02, [0, ...new Array<number>(32).fill(7)]],
    ["AUTH proof of 31 bytes", 0x03, [31, ...new Array<number>(31).fill(1)]],
    ["AUTH proof of 0 bytes", 0x03, [0]],
    ["ERROR message of 1025 bytes", 0x05, [
      0,
      1,
      0x04,
      0x01,
      ...new Array<number>(1025).fill(0x61),
    ]],
    ["ERROR message not UTF-8", 0x05, [0, 1, 0, 2, 0xc3, 0x28]],
    ["ANNOUNCE of 513 rules", 0x10, [0x02, 0x01]],
    ["rule kind 4", 0x10, [0, 1, 4, 0, 0, 0, 0, 0]],
    ["rule client with a slash", 0x10, [0, 1, 1, ...str1("a/b"), ...str1("*"), 0, 0, 0, 0]],
    ["empty host pattern", 0x10, [0, 1, 1, 0, 0, 0, 1, 0, 2]],
    ["cidr4 prefix 33", 0x10, [0, 1, 2, 0, 10, 0, 0, 0, 33, 0, 1, 0, 2]],
    ["cidr6 prefix 129", 0x10, [0, 1, 3, 0, ...new Array<number>(16).fill(0), 129, 0, 1, 0, 2]],
    ["port_min > port_max", 0x10, [0, 1, 1, 0, ...str1("*"), 0, 9, 0, 8]],
    ["POOL_REQUEST count 0", 0x11, [0, 0, 0, 1, 0, 0]],
    ["POOL_HELLO version 0", 0x20, poolHello(0)],
    ["LINK_HELLO version 0", 0x23, poolHello(0)],
    ["LINK_HELLO proof of 33 bytes", 0x23, [
      ...poolHello(3).slice(0, 25),
      33,
      ...new Array<number>(33).fill(0),
    ]],
    ["LINK_HELLO trailing byte", 0x23, [...poolHello(3), 0]],
    ["OPEN with empty client", 0x21, [0, 0, 0, 1, 0, 0, 0, 2, 0, 6, 1, 10, 0, 0, 1, 0, 80]],
    ["OPEN with atyp 2", 0x21, [0, 0, 0, 1, 0, 0, 0, 2, ...str1("c"), 6, 2, 10, 0, 0, 1, 0, 80]],
    ["OPEN with an empty domain", 0x21, [0, 0, 0, 1, 0, 0, 0, 2, ...str1("c"), 6, 3, 0, 0, 80]],
    ["CONNECT agent with '@'", 0x32, [...str1("a@b"), 6, 1, 10, 0, 0, 1, 0, 80]],
    ["CONNECT_RESULT truncated address", 0x33, [0, 0, 4, 0, 0]],
    ["CONNECT_RESULT without reason", 0x33, [0, 1, 0, 0, 0, 0, 0, 0]],
    ["CHECK agent with '@'", 0x34, [...str1("a@b")]],
    ["CHECK trailing byte", 0x34, [...str1("a"), 0]],
  ];
  for (const [what, type, payload] of bad) {
    assert.throws(
      () => decode(frame(type, payload)),
      (err: unknown) => err instanceof ProtocolError && err.code === "invalid_message",
      what,
    );
  }
});

test("decode: strings are strict UTF-8 and keep a leading BOM", () => {
  const msg = [0xef, 0xbb, 0xbf, 0x68, 0x69];
  assert.deepEqual(decode(frame(0x15, [0, 17, 0, msg.length, ...msg])), {
    type: "GOAWAY",
    code: 17,
    message: "\uFEFFhi",
  });
  const bad: [number, number[], RegExp][] = [
    [0x05, [0, 1, 0, 2, 0xc3, 0x28], /^Cannot parse ERROR payload: message is not valid UTF-8$/],
    [
      0x01,
      [1, 1, 1, 1, 0x61, 2, 0xff, 0xfe],
      /^Cannot parse AGENT_HELLO payload: software is not valid UTF-8$/,
    ],
    [0x01, [1, 1, 1, 1, 0xff, 0], /^Cannot parse AGENT_HELLO payload: name is not valid UTF-8$/],
    [
      0x10,
      [0, 1, 1, 0, 1, 0x80, 0, 1, 0, 1, 6],
      /^Cannot parse ANNOUNCE payload: pattern is not valid UTF-8$/,
    ],
    [
      0x32,
      [0, 6, 3, 1, 0xc0, 0, 80],
      /^Cannot parse CONNECT payload: domain name is not valid UTF-8$/,
    ],
  ];
  for (const [type, payload, re] of bad) {
    throwsProtocol(() => decode(frame(type, payload)), "invalid_message", re);
  }
});

test("decode: never throws anything but ProtocolError on corrupted frames", () => {
  const base = frame(0x21, [
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    2,
    ...str1("client"),
    6,
    3,
    ...str1("db.corp"),
    0x15,
    0x38,
  ]);
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 3000; i++) {
    const b = base.slice();
    for (let k = rand(4); k >= 0; k--) b[rand(b.length)] = rand(256);
    const input = rand(3) === 0 ? b.subarray(0, rand(b.length + 1)) : b;
    try {
      decode(input);
    } catch (err) {
      assert.ok(
        err instanceof ProtocolError,
        `threw ${String(err)} for ${Array.from(input).join(",")}`,
      );
    }
  }
});

// ---------------------------------------------------------------------------
// SOCKS5

/** Every proper prefix of `bytes` needs more input. */
function assertIncremental<T>(
  parse: (b: Uint8Array) => { value: T; size: number } | null,
  bytes: number[],
): void {
  for (let i = 0; i < bytes.length; i++) {
    assert.equal(parse(Uint8Array.from(bytes.slice(0, i))), null, `prefix ${i}`);
  }
}

test("socks5_decode: whole messages, sizes and incremental input", () => {
  const greeting = [5, 2, 0, 2];
  assertIncremental(parseGreeting, greeting);
  assert.deepEqual(parseGreeting(Uint8Array.from([...greeting, 9, 9])), {
    value: { methods: [0, 2] },
    size: 4,
  });

  assertIncremental(parseMethodSelection, [5, 2]);
  assert.deepEqual(parseMethodSelection(Uint8Array.of(5, 0xff)), {
    value: { method: 0xff },
    size: 2,
  });

  const up = [1, ...str1("laptop@db"), ...str1("s3cret")];
  assertIncremental(parseUserpassRequest, up);
  assert.deepEqual(parseUserpassRequest(Uint8Array.from(up)), {
    value: { username: "laptop@db", password: "s3cret" },
    size: up.length,
  });
  assert.deepEqual(parseUserpassReply(Uint8Array.of(1, 0)), { value: { status: 0 }, size: 2 });

  const req = [5, 1, 0, 3, ...str1("db.corp"), 0x15, 0x38];
  assertIncremental(parseRequest, req);
  assert.deepEqual(parseRequest(Uint8Array.from([...req, 0x47])), {
    value: { command: 1, target: { type: "domain", host: "db.corp", port: 5432 } },
    size: req.length,
  });
  const rep = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
  assertIncremental(parseReply, rep);
  assert.deepEqual(parseReply(Uint8Array.from(rep)), {
    value: { reply: 0, bound: { type: "ipv4", host: "127.0.0.1", port: 8080 } },
    size: rep.length,
  });
  const rep6 = [5, 4, 0, 4, ...new Array<number>(15).fill(0), 1, 0, 0];
  assert.deepEqual(parseReply(Uint8Array.from(rep6))?.value, {
    reply: 4,
    bound: { type: "ipv6", host: "::1", port: 0 },
  });
});

test("socks5_decode: errors", () => {
  throwsSocks(() => parseGreeting(Uint8Array.of(4)), "bad_version");
  throwsSocks(() => parseGreeting(Uint8Array.of(0x47, 0x45, 0x54)), "bad_version");
  throwsSocks(() => parseGreeting(Uint8Array.of(5, 0)), "no_methods");
  throwsSocks(() => parseMethodSelection(Uint8Array.of(1)), "bad_version");
  throwsSocks(() => parseUserpassRequest(Uint8Array.of(5)), "bad_version");
  // An empty user name is taken (an issued token names the client, SPEC.md §8).
  assert.deepEqual(parseUserpassRequest(Uint8Array.of(1, 0, 1, 0x70))?.value, {
    username: "",
    password: "p",
  });
  throwsSocks(() => parseUserpassRequest(Uint8Array.of(1, 0, 0)), "invalid_message");
  throwsSocks(() => parseUserpassRequest(Uint8Array.of(1, 1, 0x61, 0)), "invalid_message");
  throwsSocks(() => parseUserpassReply(Uint8Array.of(5)), "bad_version");
  throwsSocks(() => parseRequest(Uint8Array.of(4, 1, 0, 1)), "bad_version");
  throwsSocks(() => parseRequest(Uint8Array.of(5, 1, 1, 1)), "invalid_message");
  throwsSocks(() => parseRequest(Uint8Array.of(5, 1, 0, 2)), "bad_address_type");
  throwsSocks(() => parseRequest(Uint8Array.of(5, 1, 0, 3, 0)), "invalid_message");
  throwsSocks(() => parseReply(Uint8Array.of(5, 0, 0, 9)), "bad_address_type");
});

test("socks5_decode: user name and password are decoded leniently, never throwing", () => {
  const r = parseUserpassRequest(Uint8Array.of(1, 2, 0xff, 0x61, 3, 0xef, 0xbb, 0xbf));
  assert.deepEqual(r?.value, { username: "\uFFFDa", password: "\uFEFF" });
});

test("socks5_decode: domain names are strict UTF-8 and keep a leading BOM", () => {
  throwsSocks(
    () => parseRequest(Uint8Array.of(5, 1, 0, 3, 2, 0xc3, 0x28, 0, 80)),
    "bad_domain",
  );
  throwsSocks(() => parseReply(Uint8Array.of(5, 0, 0, 3, 1, 0xff, 0, 80)), "bad_domain");
  assert.deepEqual(
    parseRequest(Uint8Array.of(5, 1, 0, 3, 4, 0xef, 0xbb, 0xbf, 0x61, 0, 80))?.value,
    {
      command: 1,
      target: { type: "domain", host: "\uFEFFa", port: 80 },
    },
  );
});

test("decode: a rule's protocol is TCP (6) or UDP (17), nothing else", () => {
  const rule = (protocol: number) => [0, 1, 1, 0, 1, 0x2a, 0, 53, 0, 53, protocol];
  for (const [protocol, want] of [[6, 6], [17, 17]] as const) {
    const m = decode(frame(0x10, rule(protocol)));
    if (m?.type !== "ANNOUNCE") return assert.fail(`not an ANNOUNCE: ${JSON.stringify(m)}`);
    assert.equal(m.rules[0]?.protocol, want);
  }
  for (const protocol of [0, 1, 7, 132, 255]) {
    throwsProtocol(
      () => decode(frame(0x10, rule(protocol))),
      "invalid_message",
      /^Cannot parse ANNOUNCE payload: not in the enum/,
    );
  }
});
