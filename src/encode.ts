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
 * bytes (AUTH: or 96..191), a chosen version ≥ 1.)
 * {@link encodeUnchecked} checks only what the wire layout needs (integers
 * fit, fixed sizes, lengths fit their prefix, IP text parses); tests use it to
 * build well-formed frames that break a §10 limit. {@link frame} wraps any
 * payload in a header.
 *
 * Implementation: the encoder of each message is generated from its .ksy
 * (generated/codec.ts, scripts/gen.ts): it writes into one module-level
 * growable byte writer (writer.ts, postgres.js style); the header is written
 * first with a zero length, every length is back-filled when the data it
 * counts is written, and the finished frame is copied out once, so each call
 * allocates exactly one `Uint8Array` of the frame's size (plus, rarely, a
 * larger scratch buffer that is kept for the next call).
 *
 * @module
 */
import { acrossFields } from "./across.ts";
import { encodePayload } from "../generated/codec.ts";
import { Layout, Limits, type Message, MsgType } from "./messages.ts";
import { type Writer, writer } from "./writer.ts";

const H = Layout["frame::header"];

/** ASCII `BRRW` */
export const MAGIC: readonly number[] = [0x42, 0x52, 0x52, 0x57];
/** The framing version, SPEC.md §3. */
export const FRAME_VERSION = 1;

/**
 * Encode one message as one whole frame (12-byte header + payload),
 * checking every SPEC.md rule for its fields. See the module doc for errors.
 */
export function encode(msg: Message): Uint8Array {
  return encodeWith(msg, true);
}

/**
 * Like {@link encode}, but checks only what the byte layout needs, not the
 * `valid:` rules of spec/*.ksy nor the name charset (SPEC.md §4/§10: name
 * charset and length, message ≤ 1024 bytes, ≤ 512 rules, count ≥ 1,
 * port_min ≤ port_max, versions ≥ 1, proof of 32 or 64
 * bytes, prefix ≤ 32/128, non-empty domain and host pattern). For tests that
 * send a peer well-formed but invalid messages.
 */
export function encodeUnchecked(msg: Message): Uint8Array {
  return encodeWith(msg, false);
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
  w.ensure(H.size);
  w.buf.set(MAGIC, H.magic.offset);
  w.buf[H.frameVersion.offset] = FRAME_VERSION;
  w.pos = H.msgType.offset;
  w.u8(type, "type");
  w.u16(0, "flags");
  w.u32(0, "length"); // back-filled by end()
}

function end(w: Writer): Uint8Array {
  const length = w.pos - H.size;
  if (length > Limits.MAX_PAYLOAD) {
    throw new RangeError(`payload is ${length} bytes, over MAX_PAYLOAD (${Limits.MAX_PAYLOAD})`);
  }
  w.fill(H.lenPayload.offset, H.lenPayload.size, length);
  return w.finish();
}

function encodeWith(msg: Message, strict: boolean): Uint8Array {
  if (msg === null || typeof msg !== "object") {
    throw new TypeError("encode: message must be an object");
  }
  const code = (MsgType as Record<string, number>)[msg.type];
  if (code === undefined || !Object.hasOwn(MsgType, msg.type)) {
    throw new TypeError(`encode: unknown message type ${JSON.stringify(msg.type)}`);
  }
  const w = writer();
  header(w, code);
  encodePayload(w, msg, strict);
  const across = strict ? acrossFields(msg) : null;
  if (across !== null) throw new RangeError(`${msg.type}.${across}`);
  return end(w);
}
