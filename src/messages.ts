/**
 * Typed values of every burrow message (SPEC.md §5, protocol version 1)
 * and the registries (SPEC.md §9), the latter generated from spec/*.ksy.
 * Encoders live in encode.ts, decoders in decode.ts.
 *
 * @module
 */

import { AuthMethod, ErrorCode, MsgType, Reason, RuleKind, Status } from "../generated/enums.ts";

/**
 * The registries of SPEC.md §9, generated from the enums of spec/*.ksy
 * (scripts/gen.ts → generated/enums.ts): `MsgType` (§9.1, `msg_type` of
 * frame.ksy), `ErrorCode` (§9.2), `Status` (§9.3, the SOCKS5 reply codes),
 * `AuthMethod` (§9.4), all three from registries.ksy, and `RuleKind` (§9.5,
 * control.ksy). test/spec_test.ts checks them against the tables of SPEC.md.
 */
export { AuthMethod, ErrorCode, MsgType, Reason, RuleKind, Status };

export type MsgTypeName = keyof typeof MsgType;
export type ErrorCodeName = keyof typeof ErrorCode;
export type StatusName = keyof typeof Status;
export type AuthMethodName = keyof typeof AuthMethod;

/** SPEC.md §10 */
export const Limits = {
  MAX_PAYLOAD: 262144,
  HEADER_SIZE: 12,
  MAX_NAME: 64,
  MAX_SOFTWARE: 255,
  MAX_HOST: 255,
  MAX_RULES: 512,
  MAX_MESSAGE: 1024,
  NONCE_SIZE: 32,
  SESSION_ID_SIZE: 16,
} as const;

/** The protocol versions this implementation speaks (SPEC.md §4): one, 1, a draft until the first release. */
export const VERSION_MIN = 1;
export const VERSION_MAX = 1;

/** SPEC.md §5.1. IPv4/IPv6 hosts are canonical text (`10.0.0.1`, `fd00::1`). */
export type Target =
  | { type: "ipv4"; host: string; port: number }
  | { type: "ipv6"; host: string; port: number }
  | { type: "domain"; host: string; port: number };

/** SPEC.md §5.7 */
export type Rule =
  & { client: string; portMin: number; portMax: number }
  & (
    | { kind: "host"; pattern: string }
    | { kind: "cidr4"; addr: string; prefix: number }
    | { kind: "cidr6"; addr: string; prefix: number }
  );

export interface Hello {
  minVersion: number;
  maxVersion: number;
  authMethod: number;
  name: string;
  software: string;
}

/** Every message, discriminated by `type`. */
export type Message =
  | ({ type: "AGENT_HELLO" } & Hello)
  | { type: "CHALLENGE"; version: number; nonce: Uint8Array }
  | { type: "AUTH"; proof: Uint8Array }
  | {
    type: "WELCOME";
    agentId: number;
    sessionId: Uint8Array;
    heartbeatIntervalMs: number;
    heartbeatTimeoutMs: number;
    poolMin: number;
    poolMax: number;
  }
  | { type: "ERROR"; code: number; message: string }
  | { type: "ANNOUNCE"; rules: Rule[] }
  | { type: "POOL_REQUEST"; requestId: number; count: number }
  | { type: "POOL_CONFIRM"; requestId: number; count: number }
  | { type: "PING"; data: Uint8Array }
  | { type: "PONG"; data: Uint8Array }
  | { type: "GOAWAY"; code: number; message: string }
  /** SPEC.md §5.19. */
  | { type: "INSTANCE"; instance: Uint8Array }
  | {
    type: "POOL_HELLO";
    version: number;
    agentId: number;
    sessionId: Uint8Array;
    seq: number;
    proof: Uint8Array;
  }
  | { type: "OPEN"; streamId: number; clientId: number; client: string; target: Target }
  | { type: "OPEN_RESULT"; streamId: number; status: number; bound: Target }
  /** SPEC.md §5.20. */
  | {
    type: "LINK_HELLO";
    version: number;
    agentId: number;
    sessionId: Uint8Array;
    seq: number;
    proof: Uint8Array;
  }
  | ({ type: "CLIENT_HELLO" } & Hello)
  | { type: "CLIENT_READY"; clientId: number }
  | { type: "CONNECT"; agent: string; target: Target }
  | { type: "CHECK"; agent: string }
  | { type: "CONNECT_RESULT"; status: number; reason: number; bound: Target };

export type MessageOf<T extends MsgTypeName> = Extract<Message, { type: T }>;
