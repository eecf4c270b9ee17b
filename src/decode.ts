/**
 * Frame decoding (SPEC.md §3, §5, §10) on top of the parsers that
 * scripts/gen.ts generates from spec/*.ksy. The generated parsers read the
 * wire layout and check what the .ksy states (`valid:`); this module maps the
 * result to the typed {@link Message}, checks the rest of SPEC.md §10 (the
 * name character set, trailing bytes, strict UTF-8) and turns every failure
 * into a {@link ProtocolError}.
 *
 * @module
 */
import KaitaiStreamModule from "kaitai-struct/KaitaiStream.js";
import { Addr } from "../generated/Addr.js";
import { Client } from "../generated/Client.js";
import { Control } from "../generated/Control.js";
import { Frame, type KaitaiStream } from "../generated/Frame.js";
import { Handshake } from "../generated/Handshake.js";
import { Pool } from "../generated/Pool.js";
import { ProtocolError } from "./errors.ts";
import { formatIPv4, formatIPv6 } from "./ip.ts";
import {
  type ErrorCodeName,
  type Hello,
  Limits,
  type Message,
  MsgType,
  type MsgTypeName,
  type Rule,
  type Target,
} from "./messages.ts";

/** The header fields a framer needs before it reads the payload. */
export interface FrameHeader {
  /** Message type, SPEC.md §9.1; 0x80–0xFF may be an unknown extension. */
  type: number;
  /** Payload length in bytes, at most `Limits.MAX_PAYLOAD`. */
  length: number;
}

const TYPE_NAMES: ReadonlyMap<number, MsgTypeName> = new Map(
  Object.entries(MsgType).map(([name, value]) => [value, name as MsgTypeName]),
);

/** First type of the optional-extension range (SPEC.md §3, §9.1). */
const FIRST_EXTENSION_TYPE = 0x80;

/** Agent and client names (SPEC.md §10). */
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

const MAGIC = [0x42, 0x52, 0x52, 0x57] as const;

function hex(n: number, digits: number): string {
  return `0x${n.toString(16).padStart(digits, "0")}`;
}

/** The name of a known message type, or undefined. */
export function messageTypeName(type: number): MsgTypeName | undefined {
  return TYPE_NAMES.get(type);
}

// ---------------------------------------------------------------------------
// Kaitai plumbing

/** What this module uses of the runtime class `KaitaiStream`. */
interface KaitaiRuntime {
  new (data: DataView): KaitaiStream;
  bytesToStr(arr: Uint8Array, encoding: string): string;
  readonly EOFError: abstract new (...args: never[]) => Error;
}

/**
 * The Kaitai Struct runtime class. `kaitai-struct/KaitaiStream.js` is
 * CommonJS (`module.exports = KaitaiStream`), so its default import is the
 * class in Node, Deno and Bun alike; its bundled typings, however, declare
 * an ES default export, which Deno (applying Node's CommonJS rules) types as
 * the module object. Hence the cast to the interface above.
 */
const Runtime = KaitaiStreamModule as unknown as KaitaiRuntime;

/** A Kaitai stream over exactly the bytes of `bytes` (not the rest of its buffer). */
export function kaitaiStream(bytes: Uint8Array): KaitaiStream {
  // Copy when the view is not over a plain ArrayBuffer (SharedArrayBuffer):
  // TextDecoder refuses shared memory.
  const own = bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice();
  return new Runtime(new DataView(own.buffer, own.byteOffset, own.byteLength));
}

/** A string field that is not valid UTF-8 (thrown by a fatal decoder in {@link withUtf8Decoder}). */
class Utf8Error extends Error {}

/** UTF-8 as SPEC.md §1 requires it: invalid sequences fail, a BOM is kept as U+FEFF. */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Runs `parse` with the generated parsers' UTF-8 string decoding done by
 * `decoder`. The generated code calls the static `KaitaiStream.bytesToStr`,
 * which decodes leniently (invalid bytes become U+FFFD) and strips a leading
 * BOM; both would make distinct wire bytes decode to the same message. The
 * swap is synchronous and undone before returning, so no other code observes
 * it.
 */
export function withUtf8Decoder<T>(decoder: TextDecoder, parse: () => T): T {
  const original = Runtime.bytesToStr;
  Runtime.bytesToStr = (arr: Uint8Array, encoding: string): string => {
    if (typeof encoding !== "string" || encoding.toUpperCase() !== "UTF-8") {
      return original(arr, encoding);
    }
    try {
      return decoder.decode(arr);
    } catch (err) {
      throw new Utf8Error("invalid UTF-8", { cause: err });
    }
  };
  try {
    return parse();
  } finally {
    Runtime.bytesToStr = original;
  }
}

/** A short description of anything thrown by a generated parser. */
export function describeError(err: unknown): string {
  if (err instanceof Runtime.EOFError) return `truncated (${err.message})`;
  if (err instanceof Utf8Error) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

// ---------------------------------------------------------------------------
// Addresses

/** The {@link Target} of a parsed SPEC.md §5.1 address. */
export function addrTarget(addr: Addr): Target {
  const host = addr.host;
  if (host instanceof Addr.Ipv4Host) {
    return { type: "ipv4", host: formatIPv4(host.addr), port: addr.port };
  }
  if (host instanceof Addr.Ipv6Host) {
    return { type: "ipv6", host: formatIPv6(host.addr), port: addr.port };
  }
  if (host instanceof Addr.DomainHost) return { type: "domain", host: host.name, port: addr.port };
  // Unreachable: spec/addr.ksy validates atyp against the enum.
  throw new Error(`address type ${addr.atyp} has no host`);
}

// ---------------------------------------------------------------------------
// Header

function headerError(h: Uint8Array, cause: unknown): ProtocolError {
  const fail = (code: ErrorCodeName, why: string) =>
    new ProtocolError(code, `Cannot parse frame: ${why}`, { cause });
  if (MAGIC.some((m, i) => h[i] !== m)) {
    const got = Array.from(h.subarray(0, 4), (x) => x.toString(16).padStart(2, "0")).join(" ");
    return fail("bad_magic", `bad magic ${got}, expected 42 52 52 57 ("BRRW")`);
  }
  const version = h[4] ?? 0;
  if (version !== 1) {
    return fail("unsupported_frame_version", `framing version ${version} is not 1`);
  }
  const flags = ((h[6] ?? 0) << 8) | (h[7] ?? 0);
  if (flags !== 0) return fail("invalid_message", `flags ${hex(flags, 4)} are not 0`);
  const length =
    (((h[8] ?? 0) << 24) | ((h[9] ?? 0) << 16) | ((h[10] ?? 0) << 8) | (h[11] ?? 0)) >>> 0;
  if (length > Limits.MAX_PAYLOAD) {
    return fail("frame_too_large", `payload length ${length} exceeds ${Limits.MAX_PAYLOAD}`);
  }
  return fail("invalid_message", `bad header (${describeError(cause)})`);
}

/**
 * Validates a frame header (the first 12 bytes of `header`; more are
 * ignored) in the order of SPEC.md §3 and returns its type and payload length,
 * so that a framer can check the length before it allocates the payload.
 * A type in 0x80–0xFF that this implementation does not know is returned
 * normally: the caller skips `length` bytes.
 *
 * @throws {ProtocolError} `bad_magic`, `unsupported_frame_version`,
 *   `invalid_message` (flags, fewer than 12 bytes), `frame_too_large`,
 *   `unknown_type` (unknown type below 0x80).
 */
export function decodeHeader(header: Uint8Array): FrameHeader {
  if (header.length < Limits.HEADER_SIZE) {
    throw new ProtocolError(
      "invalid_message",
      `Cannot parse frame: header is ${header.length} bytes, expected ${Limits.HEADER_SIZE}`,
    );
  }
  const bytes = header.subarray(0, Limits.HEADER_SIZE);
  let parsed: Frame.Header;
  try {
    parsed = new Frame.Header(kaitaiStream(bytes));
  } catch (err) {
    throw headerError(bytes, err);
  }
  const type = parsed.msgType;
  if (type < FIRST_EXTENSION_TYPE && !TYPE_NAMES.has(type)) {
    throw new ProtocolError(
      "unknown_type",
      `Cannot parse frame: unknown message type ${hex(type, 2)}`,
    );
  }
  return { type, length: parsed.lenPayload };
}

// ---------------------------------------------------------------------------
// Payloads

class Invalid extends Error {}

function checkName(what: string, name: string, allowEmpty: boolean): string {
  if (allowEmpty && name === "") return name;
  if (!NAME_RE.test(name)) {
    throw new Invalid(`${what} ${JSON.stringify(name)} is not 1..64 bytes of A-Z a-z 0-9 . _ -`);
  }
  return name;
}

function expect<T>(payload: unknown, cls: abstract new (...args: never[]) => T): T {
  if (!(payload instanceof cls)) throw new Invalid("payload was not parsed as its message type");
  return payload;
}

function hello(p: Handshake.Hello): Hello {
  return {
    minVersion: p.minVersion,
    maxVersion: p.maxVersion,
    authMethod: p.authMethod,
    name: checkName("name", p.name, false),
    software: p.software,
  };
}

function rule(r: Control.Rule): Rule {
  const base = {
    client: checkName("rule client", r.client, true),
    portMin: r.portMin,
    portMax: r.portMax,
  };
  const body = r.body;
  if (body instanceof Control.HostRule) return { ...base, kind: "host", pattern: body.pattern };
  if (body instanceof Control.Cidr4Rule) {
    return { ...base, kind: "cidr4", addr: formatIPv4(body.addr), prefix: body.prefix };
  }
  if (body instanceof Control.Cidr6Rule) {
    return { ...base, kind: "cidr6", addr: formatIPv6(body.addr), prefix: body.prefix };
  }
  throw new Invalid(`rule kind ${r.kind} has no body`);
}

function toMessage(type: MsgTypeName, payload: unknown): Message {
  switch (type) {
    case "AGENT_HELLO":
    case "CLIENT_HELLO":
      return { type, ...hello(expect(payload, Handshake.Hello)) };
    case "CHALLENGE": {
      const p = expect(payload, Handshake.Challenge);
      return { type, version: p.version, nonce: p.nonce.slice() };
    }
    case "AUTH":
      return { type, proof: expect(payload, Handshake.Auth).proof.slice() };
    case "WELCOME": {
      const p = expect(payload, Handshake.Welcome);
      return {
        type,
        agentId: p.agentId,
        sessionId: p.sessionId.slice(),
        heartbeatIntervalMs: p.heartbeatIntervalMs,
        heartbeatTimeoutMs: p.heartbeatTimeoutMs,
        poolMin: p.poolMin,
        poolMax: p.poolMax,
      };
    }
    case "ERROR": {
      const p = expect(payload, Handshake.Error);
      return { type, code: p.code, message: p.message };
    }
    case "ANNOUNCE":
      return { type, rules: expect(payload, Control.Announce).rules.map(rule) };
    case "POOL_REQUEST": {
      const p = expect(payload, Control.PoolRequest);
      return { type, requestId: p.requestId, count: p.count };
    }
    case "POOL_CONFIRM": {
      const p = expect(payload, Control.PoolConfirm);
      return { type, requestId: p.requestId, count: p.count };
    }
    case "PING":
    case "PONG":
      return { type, data: expect(payload, Control.PingPong).data.slice() };
    case "GOAWAY": {
      const p = expect(payload, Control.Goaway);
      return { type, code: p.code, message: p.message };
    }
    case "POOL_HELLO": {
      const p = expect(payload, Pool.PoolHello);
      return {
        type,
        version: p.version,
        agentId: p.agentId,
        sessionId: p.sessionId.slice(),
        seq: p.seq,
        proof: p.proof.slice(),
      };
    }
    case "OPEN": {
      const p = expect(payload, Pool.Open);
      return {
        type,
        streamId: p.streamId,
        clientId: p.clientId,
        client: checkName("client", p.client, false),
        target: addrTarget(p.target),
      };
    }
    case "OPEN_RESULT": {
      const p = expect(payload, Pool.OpenResult);
      return { type, streamId: p.streamId, status: p.status, bound: addrTarget(p.bound) };
    }
    case "CLIENT_READY":
      return { type, clientId: expect(payload, Handshake.ClientReady).clientId };
    case "CONNECT": {
      const p = expect(payload, Client.Connect);
      return { type, agent: checkName("agent", p.agent, true), target: addrTarget(p.target) };
    }
    case "CONNECT_RESULT": {
      const p = expect(payload, Client.ConnectResult);
      return { type, status: p.status, bound: addrTarget(p.bound) };
    }
  }
}

/**
 * Decodes one whole frame (header and payload, exactly) into its message.
 *
 * @returns the message, or `null` for a frame of an unknown extension type
 *   (0x80–0xFF), which the receiver skips (SPEC.md §3).
 * @throws {ProtocolError} with the SPEC.md §9.2 code to send: see
 *   {@link decodeHeader} for header errors; `invalid_message` when the frame
 *   is not exactly header + payload length, when the payload does not parse,
 *   has trailing bytes, is not valid UTF-8 where a string is, or breaks a
 *   limit of SPEC.md §10. Nothing else is ever thrown.
 */
export function decode(frame: Uint8Array): Message | null {
  const { type, length } = decodeHeader(frame);
  const name = TYPE_NAMES.get(type);
  const got = frame.length - Limits.HEADER_SIZE;
  if (got !== length) {
    throw new ProtocolError(
      "invalid_message",
      `Cannot parse frame: header announces ${length} payload bytes, got ${got}`,
    );
  }
  if (name === undefined) return null;
  try {
    const parsed = withUtf8Decoder(STRICT_UTF8, () => new Frame(kaitaiStream(frame)));
    const payload = parsed.payload;
    if (payload instanceof Uint8Array) throw new Invalid("payload was not parsed");
    const io = payload._io;
    if (!io.isEof()) {
      const n = io.size - io.pos;
      throw new Invalid(`${n} trailing byte${n === 1 ? "" : "s"}`);
    }
    return toMessage(name, payload);
  } catch (err) {
    const why = err instanceof Invalid ? err.message : describeError(err);
    throw new ProtocolError("invalid_message", `Cannot parse ${name} payload: ${why}`, {
      cause: err,
    });
  }
}
