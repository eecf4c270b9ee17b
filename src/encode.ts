/**
 * Encoders: one {@link Message} value to one whole frame (SPEC.md §3, §5).
 *
 * Errors. The values given to an encoder come from our own code or
 * configuration, never from a peer, so encoders do not throw
 * `ProtocolError` (that class means "the peer violated the spec"). A
 * value that cannot be put on the wire throws:
 *
 * - `RangeError` for a value out of range: an integer that does not fit its
 *   field, a string or byte field longer (or shorter) than SPEC.md §5 / §10
 *   allow, a name with a character outside `A-Z a-z 0-9 . _ -`, an IP text
 *   that does not parse, a payload over MAX_PAYLOAD;
 * - `TypeError` for a value of the wrong JavaScript type (a string where a
 *   `Uint8Array` is expected, an unknown `type`, a string with a lone
 *   surrogate, which has no UTF-8 form).
 *
 * The message always names the field, e.g.
 * `AGENT_HELLO.name: must be 1..64 bytes of A-Z a-z 0-9 . _ -, got "a b"`.
 *
 * {@link encode} checks everything SPEC.md states about a field (§4, §5,
 * §10), so whatever it returns a conforming receiver accepts.
 * (With spec/*.ksy, which SPEC.md makes normative too: a proof is 32 or 64
 * bytes, a chosen version ≥ 1.)
 * {@link encodeUnchecked} checks only what the wire layout needs (integers
 * fit, fixed sizes, lengths fit their prefix, IP text parses); tests use it to
 * build well-formed frames that break a §10 limit. {@link frame} wraps any
 * payload in a header.
 *
 * Implementation: one module-level growable byte writer (writer.ts,
 * postgres.js style); the header is written first with a zero length that is
 * back-filled when the payload is complete, and the finished frame is copied
 * out once, so each call allocates exactly one `Uint8Array` of the frame's
 * size (plus, rarely, a larger scratch buffer that is kept for the next call).
 *
 * @module
 */
import { parseIPv4, parseIPv6 } from "./ip.ts";
import { Limits, type Message, MsgType, type Rule, RuleKind } from "./messages.ts";
import { ipBytes, writeAddr, type Writer, writer } from "./writer.ts";

/** ASCII `BRRW` */
export const MAGIC: readonly number[] = [0x42, 0x52, 0x52, 0x57];
/** The framing version, SPEC.md §3. */
export const FRAME_VERSION = 1;

const NAME_RE = /^[A-Za-z0-9._-]*$/;

interface Mode {
  strict: boolean;
}
const STRICT: Mode = { strict: true };
const LOOSE: Mode = { strict: false };

/**
 * Encode one message as one whole frame (12-byte header + payload),
 * checking every SPEC.md rule for its fields. See the module doc for errors.
 */
export function encode(msg: Message): Uint8Array {
  return encodeWith(msg, STRICT);
}

/**
 * Like {@link encode}, but checks only what the byte layout needs, not the
 * SPEC.md §4/§10 rules (name charset and length, message ≤ 1024 bytes, ≤ 512
 * rules, count ≥ 1, port_min ≤ port_max, versions ≥ 1,
 * proof of 32 or 64 bytes, prefix ≤ 32/128, non-empty domain and host
 * pattern). For tests that send a peer well-formed but invalid messages.
 */
export function encodeUnchecked(msg: Message): Uint8Array {
  return encodeWith(msg, LOOSE);
}

/**
 * A frame with any type byte around any payload (no check of the payload).
 * Throws `RangeError` if `type` is not a u1 or the payload is over MAX_PAYLOAD.
 */
export function frame(type: number, payload: Uint8Array): Uint8Array {
  const w = writer();
  header(w, type);
  w.bytes(payload, "payload");
  return end(w);
}

function header(w: Writer, type: number): void {
  w.ensure(Limits.HEADER_SIZE);
  w.buf.set(MAGIC, 0);
  w.buf[4] = FRAME_VERSION;
  w.pos = 5;
  w.u8(type, "type");
  w.u16(0, "flags");
  w.u32(0, "length"); // back-filled by end()
}

function end(w: Writer): Uint8Array {
  const length = w.pos - Limits.HEADER_SIZE;
  if (length > Limits.MAX_PAYLOAD) {
    throw new RangeError(`payload is ${length} bytes, over MAX_PAYLOAD (${Limits.MAX_PAYLOAD})`);
  }
  w.view.setUint32(8, length);
  return w.finish();
}

/**
 * One case per message of SPEC.md §5, in the order of its fields: long, but
 * flat, and easier to check against the spec whole (decode.ts mirrors it).
 */
function encodeWith(msg: Message, m: Mode): Uint8Array {
  if (msg === null || typeof msg !== "object") {
    throw new TypeError("encode: message must be an object");
  }
  const code = (MsgType as Record<string, number>)[msg.type];
  if (code === undefined || !Object.hasOwn(MsgType, msg.type)) {
    throw new TypeError(`encode: unknown message type ${JSON.stringify(msg.type)}`);
  }
  const w = writer();
  header(w, code);
  const t = msg.type;
  switch (msg.type) {
    case "AGENT_HELLO":
    case "CLIENT_HELLO":
      w.u8(msg.minVersion, `${t}.minVersion`);
      w.u8(msg.maxVersion, `${t}.maxVersion`);
      if (m.strict && !(msg.minVersion >= 1 && msg.minVersion <= msg.maxVersion)) {
        throw new RangeError(
          `${t}: versions must satisfy 1 <= minVersion <= maxVersion, got ${msg.minVersion}..${msg.maxVersion}`,
        );
      }
      w.u8(msg.authMethod, `${t}.authMethod`);
      name(w, msg.name, 1, m, `${t}.name`);
      w.str(msg.software, 1, 0, Limits.MAX_SOFTWARE, `${t}.software`);
      break;
    case "CHALLENGE":
      w.u8(msg.version, "CHALLENGE.version");
      if (m.strict) atLeast(msg.version, 1, "CHALLENGE.version");
      w.bytes(msg.nonce, "CHALLENGE.nonce", Limits.NONCE_SIZE);
      break;
    case "AUTH":
      proof(w, msg.proof, m, "AUTH.proof");
      break;
    case "WELCOME":
      w.u32(msg.agentId, "WELCOME.agentId");
      w.bytes(msg.sessionId, "WELCOME.sessionId", Limits.SESSION_ID_SIZE);
      w.u32(msg.heartbeatIntervalMs, "WELCOME.heartbeatIntervalMs");
      w.u32(msg.heartbeatTimeoutMs, "WELCOME.heartbeatTimeoutMs");
      w.u16(msg.poolMin, "WELCOME.poolMin");
      w.u16(msg.poolMax, "WELCOME.poolMax");
      break;
    case "ERROR":
    case "GOAWAY":
      w.u16(msg.code, `${t}.code`);
      w.str(msg.message, 2, 0, m.strict ? Limits.MAX_MESSAGE : 0xffff, `${t}.message`);
      break;
    case "ANNOUNCE": {
      const rules = msg.rules;
      if (!Array.isArray(rules)) throw new TypeError("ANNOUNCE.rules: must be an array");
      if (m.strict && rules.length > Limits.MAX_RULES) {
        throw new RangeError(
          `ANNOUNCE.rules: at most ${Limits.MAX_RULES} rules, got ${rules.length}`,
        );
      }
      w.u16(rules.length, "ANNOUNCE.rules.length");
      for (let i = 0; i < rules.length; i++) rule(w, rules[i]!, m, `ANNOUNCE.rules[${i}]`);
      break;
    }
    case "POOL_REQUEST":
      w.u32(msg.requestId, "POOL_REQUEST.requestId");
      w.u16(msg.count, "POOL_REQUEST.count");
      if (m.strict && msg.count < 1) {
        throw new RangeError(`POOL_REQUEST.count: must be >= 1, got ${msg.count}`);
      }
      break;
    case "POOL_CONFIRM":
      w.u32(msg.requestId, "POOL_CONFIRM.requestId");
      w.u16(msg.count, "POOL_CONFIRM.count");
      break;
    case "PING":
    case "PONG":
      w.bytes(msg.data, `${t}.data`, 8);
      break;
    case "INSTANCE":
      w.bytes(msg.instance, "INSTANCE.instance", 16);
      break;
    case "POOL_HELLO":
    case "LINK_HELLO":
      // One layout (spec/pool.ksy).
      w.u8(msg.version, `${t}.version`);
      if (m.strict) atLeast(msg.version, 1, `${t}.version`);
      w.u32(msg.agentId, `${t}.agentId`);
      w.bytes(msg.sessionId, `${t}.sessionId`, Limits.SESSION_ID_SIZE);
      w.u32(msg.seq, `${t}.seq`);
      proof(w, msg.proof, m, `${t}.proof`);
      break;
    case "OPEN":
      w.u32(msg.streamId, "OPEN.streamId");
      w.u32(msg.clientId, "OPEN.clientId");
      name(w, msg.client, 1, m, "OPEN.client");
      writeAddr(w, msg.target, "OPEN.target", m.strict);
      break;
    case "OPEN_RESULT":
      w.u32(msg.streamId, "OPEN_RESULT.streamId");
      w.u8(msg.status, "OPEN_RESULT.status");
      writeAddr(w, msg.bound, "OPEN_RESULT.bound", m.strict);
      break;
    case "CLIENT_READY":
      w.u32(msg.clientId, "CLIENT_READY.clientId");
      break;
    case "CONNECT":
      name(w, msg.agent, 0, m, "CONNECT.agent");
      writeAddr(w, msg.target, "CONNECT.target", m.strict);
      break;
    case "CHECK":
      name(w, msg.agent, 0, m, "CHECK.agent");
      break;
    case "CONNECT_RESULT":
      w.u8(msg.status, "CONNECT_RESULT.status");
      w.u8(msg.reason, "CONNECT_RESULT.reason");
      writeAddr(w, msg.bound, "CONNECT_RESULT.bound", m.strict);
      break;
    default: {
      const never: never = msg;
      throw new TypeError(`encode: unknown message ${JSON.stringify(never)}`);
    }
  }
  return end(w);
}

function atLeast(v: number, min: number, field: string): void {
  if (v < min) throw new RangeError(`${field}: must be >= ${min}, got ${v}`);
}

/** `len_proof` u1 + bytes: 32 (token) or 64 (ed25519) bytes, SPEC.md §6.2 and spec/*.ksy. */
function proof(w: Writer, p: Uint8Array, m: Mode, field: string): void {
  if (m.strict && p instanceof Uint8Array && p.length !== 32 && p.length !== 64) {
    throw new RangeError(`${field}: must be 32 or 64 bytes, got ${p.length}`);
  }
  w.lenBytes(p, 1, 0, 255, field);
}

/** An agent or client name, str(u1): `min`..64 bytes of `A-Z a-z 0-9 . _ -` (SPEC.md §10). */
function name(w: Writer, s: string, min: number, m: Mode, field: string): void {
  if (m.strict) {
    if (typeof s !== "string") throw new TypeError(`${field}: must be a string`);
    if (s.length < min || s.length > Limits.MAX_NAME || !NAME_RE.test(s)) {
      throw new RangeError(
        `${field}: must be ${min}..${Limits.MAX_NAME} bytes of A-Z a-z 0-9 . _ -, got ${
          JSON.stringify(s.length > 80 ? s.slice(0, 80) + "..." : s)
        }`,
      );
    }
  }
  w.str(s, 1, 0, 255, field);
}

function rule(w: Writer, r: Rule, m: Mode, field: string): void {
  if (r === null || typeof r !== "object") throw new TypeError(`${field}: must be an object`);
  switch (r.kind) {
    case "host":
      w.u8(RuleKind.host, `${field}.kind`);
      name(w, r.client, 0, m, `${field}.client`);
      w.str(r.pattern, 1, m.strict ? 1 : 0, Limits.MAX_HOST, `${field}.pattern`);
      break;
    case "cidr4": {
      w.u8(RuleKind.cidr4, `${field}.kind`);
      name(w, r.client, 0, m, `${field}.client`);
      w.bytes(ipBytes(parseIPv4, r.addr, "IPv4", `${field}.addr`), `${field}.addr`);
      w.u8(r.prefix, `${field}.prefix`);
      if (m.strict && r.prefix > 32) {
        throw new RangeError(`${field}.prefix: must be 0..32, got ${r.prefix}`);
      }
      break;
    }
    case "cidr6": {
      w.u8(RuleKind.cidr6, `${field}.kind`);
      name(w, r.client, 0, m, `${field}.client`);
      w.bytes(ipBytes(parseIPv6, r.addr, "IPv6", `${field}.addr`), `${field}.addr`);
      w.u8(r.prefix, `${field}.prefix`);
      if (m.strict && r.prefix > 128) {
        throw new RangeError(`${field}.prefix: must be 0..128, got ${r.prefix}`);
      }
      break;
    }
    default:
      throw new TypeError(
        `${field}.kind: unknown rule kind ${JSON.stringify((r as { kind: unknown }).kind)}`,
      );
  }
  w.u16(r.portMin, `${field}.portMin`);
  w.u16(r.portMax, `${field}.portMax`);
  if (m.strict && r.portMin > r.portMax) {
    throw new RangeError(`${field}: portMin ${r.portMin} > portMax ${r.portMax}`);
  }
}
