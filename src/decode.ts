/**
 * Frame decoding (SPEC.md §3, §5, §10) on top of the parsers that
 * scripts/gen.ts generates from spec/*.ksy.
 *
 * The frame header is checked once, by the framer (framer.ts, SPEC.md §3
 * order and codes, before the payload is buffered). {@link decode} trusts
 * that header: its type byte selects the generated payload type (e.g.
 * `Handshake.Hello` for AGENT_HELLO), which is constructed directly on a
 * stream over the payload bytes. The generated parsers read the wire layout
 * and check what the .ksy states (`valid:`); the generated mapping
 * (generated/codec.ts `decodeFields`, from the same .ksy) turns the result
 * into the typed {@link Message} and checks the text fields (`-text`: the
 * name character set, strict UTF-8); this module checks for trailing bytes
 * and turns every failure into a {@link ProtocolError}.
 *
 * @module
 */
import { decodeFields } from "../generated/codec.ts";
import { acrossFields } from "./across.ts";
import { ProtocolError } from "./errors.ts";
import { describeError, kaitaiStream } from "./kaitai.ts";
import { Layout, Limits, type Message, MESSAGE_NAMES, type MsgTypeName } from "./messages.ts";

/** Offset of the message type in the frame header (SPEC.md §3). */
const TYPE_OFFSET = Layout["frame::header"].msgType.offset;

/** First type of the optional-extension range (SPEC.md §3, §9.1). */
const FIRST_EXTENSION_TYPE = 0x80;

/** The name of a known message type, or undefined. */
export function messageTypeName(type: number): MsgTypeName | undefined {
  return MESSAGE_NAMES[type];
}

class Invalid extends Error {}

/**
 * Decodes one whole frame as `Framer.next()` (framer.ts) returns it: a 12-byte
 * header that the framer has already validated (SPEC.md §3), then exactly
 * its payload. The header is not checked again: its type byte selects the
 * payload type and every byte after it is the payload (see
 * {@link decodePayload}). Code that has bytes from elsewhere runs them
 * through a `Framer` first.
 *
 * @returns the message, or `null` for a frame of an unknown extension type
 *   (0x80–0xFF), which the receiver skips (SPEC.md §3).
 * @throws {ProtocolError} `invalid_message` for fewer than 12 bytes, else
 *   as {@link decodePayload}. Nothing else is ever thrown.
 */
export function decode(frame: Uint8Array): Message | null {
  if (frame.length < Limits.HEADER_SIZE) {
    throw new ProtocolError(
      "invalid_message",
      `Cannot parse frame: ${frame.length} bytes, shorter than the ${Limits.HEADER_SIZE}-byte header`,
    );
  }
  return decodePayload(frame[TYPE_OFFSET]!, frame.subarray(Limits.HEADER_SIZE));
}

/**
 * Decodes the payload of a message of type `type` (exactly the payload
 * bytes) with the generated parser of that type.
 *
 * @returns the message, or `null` for an unknown extension type (0x80–0xFF).
 * @throws {ProtocolError} with the SPEC.md §9.2 code to send:
 *   `unknown_type` for an unknown type below 0x80 (which a framer has
 *   already refused), `invalid_message` when the payload does not parse,
 *   has trailing bytes, is not valid UTF-8 where the .ksy documents text, or
 *   breaks a limit of SPEC.md §10. Nothing else is ever thrown.
 */
export function decodePayload(type: number, payload: Uint8Array): Message | null {
  const name = MESSAGE_NAMES[type];
  if (name === undefined) {
    if (type >= FIRST_EXTENSION_TYPE) return null;
    throw new ProtocolError(
      "unknown_type",
      `Cannot parse frame: unknown message type 0x${type.toString(16).padStart(2, "0")}`,
    );
  }
  try {
    const io = kaitaiStream(payload);
    const msg = decodeFields(type, io)!;
    const across = acrossFields(msg);
    if (across !== null) throw new Invalid(across);
    if (!io.isEof()) {
      const n = io.size - io.pos;
      throw new Invalid(`${n} trailing byte${n === 1 ? "" : "s"}`);
    }
    return msg;
  } catch (err) {
    const why = err instanceof Invalid ? err.message : describeError(err);
    throw new ProtocolError("invalid_message", `Cannot parse ${name} payload: ${why}`, {
      cause: err,
    });
  }
}
