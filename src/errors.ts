/**
 * Typed errors of the protocol layer. Every parser in src/ throws only these
 * (or returns a value); the fuzz tests hold it to that.
 *
 * @module
 */
import { ErrorCode, type ErrorCodeName } from "./messages.ts";

/**
 * A violation of SPEC.md by the peer, with the SPEC.md §9.2 code to send.
 * `reply` is false where SPEC.md says to close without ERROR (a frame
 * truncated by EOF: nobody is left to read it).
 */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  readonly reply: boolean;
  constructor(readonly code: ErrorCodeName, message: string, options?: { cause?: unknown; reply?: boolean }) {
    super(message, options);
    this.reply = options?.reply ?? true;
  }
  /** The numeric code for an ERROR frame. */
  get wire(): number {
    return ErrorCode[this.code];
  }
}

/** Stable codes of {@link SocksError}. */
export type SocksErrorCode =
  | "bad_version"
  | "no_methods"
  | "invalid_message"
  | "bad_address_type";

/** A malformed SOCKS5 (RFC 1928/1929) message. */
export class SocksError extends Error {
  override name = "SocksError";
  constructor(readonly code: SocksErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
