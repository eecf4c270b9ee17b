/**
 * Typed values of every burrow message (SPEC.md §5), the registries (SPEC.md
 * §9) and the limits (SPEC.md §10), all generated from spec/*.ksy by
 * scripts/gen.ts (generated/messages.ts, generated/enums.ts); what is written
 * here by hand is the address type and the names the rest of src/ uses.
 * Encoders live in encode.ts, decoders in decode.ts.
 *
 * @module
 */

import {
  AuthMethod,
  ErrorCode,
  MsgType,
  Reason,
  RuleKind,
  RuleProtocol,
  Status,
} from "../generated/enums.ts";
import { Layout, type Message, Sizes, Valid } from "../generated/messages.ts";

/**
 * The registries of SPEC.md §9, generated from the enums of spec/*.ksy
 * (scripts/gen.ts → generated/enums.ts): `MsgType` (§9.1, `msg_type` of
 * frame.ksy), `ErrorCode` (§9.2), `Status` (§9.3, the SOCKS5 reply codes),
 * `AuthMethod` (§9.4), all three from registries.ksy, `RuleKind` (§9.5)
 * and `RuleProtocol` (§9.8) of control.ksy. test/spec_test.ts checks them against the tables of SPEC.md.
 */
export { AuthMethod, ErrorCode, MsgType, Reason, RuleKind, RuleProtocol, Status };

export type MsgTypeName = keyof typeof MsgType;
export type ErrorCodeName = keyof typeof ErrorCode;
export type StatusName = keyof typeof Status;
export type AuthMethodName = keyof typeof AuthMethod;

/**
 * SPEC.md §10, as the .ksy files write the limits (`valid:` on length and
 * count fields, generated into {@link Valid}), the sizes of fixed fields
 * ({@link Sizes}) and the header layout ({@link Layout}).
 */
export const Limits = {
  MAX_PAYLOAD: Valid["frame::header"].lenPayload.max,
  HEADER_SIZE: Layout["frame::header"].size,
  MAX_NAME: Valid["handshake::hello"].lenName.max,
  MAX_SOFTWARE: Valid["handshake::hello"].lenSoftware.max,
  MAX_HOST: Valid["addr::domain_host"].lenName.max,
  MAX_RULES: Valid["control::announce"].numRules.max,
  MAX_MESSAGE: Valid["handshake::error"].lenMessage.max,
  NONCE_SIZE: Sizes["handshake::challenge"].nonce,
  SESSION_ID_SIZE: Sizes["handshake::welcome"].sessionId,
} as const;

/** The protocol versions this implementation speaks (SPEC.md §4): one, 1, a draft until the first release. */
export const VERSION_MIN = 1;
export const VERSION_MAX = 1;

/** SPEC.md §5.1. IPv4/IPv6 hosts are canonical text (`10.0.0.1`, `fd00::1`). */
export type Target =
  | { type: "ipv4"; host: string; port: number }
  | { type: "ipv6"; host: string; port: number }
  | { type: "domain"; host: string; port: number };

/**
 * Every message (`Message`, discriminated by `type`) and its fields (`Hello`,
 * `Rule`, …): generated from spec/*.ksy into generated/messages.ts.
 */
export type { Hello, Message, Rule } from "../generated/messages.ts";
export { Layout, MESSAGE_NAMES, Sizes, Valid } from "../generated/messages.ts";

export type MessageOf<T extends MsgTypeName> = Extract<Message, { type: T }>;
