/**
 * Typed values of every burrow v1 message (SPEC.md §5) and the registries
 * (SPEC.md §9). Encoders live in encode.ts, decoders in decode.ts.
 *
 * @module
 */

/** SPEC.md §9.1 */
export const MsgType = {
  AGENT_HELLO: 0x01,
  CHALLENGE: 0x02,
  AUTH: 0x03,
  WELCOME: 0x04,
  ERROR: 0x05,
  ANNOUNCE: 0x10,
  POOL_REQUEST: 0x11,
  POOL_CONFIRM: 0x12,
  PING: 0x13,
  PONG: 0x14,
  GOAWAY: 0x15,
  POOL_HELLO: 0x20,
  OPEN: 0x21,
  OPEN_RESULT: 0x22,
  CLIENT_HELLO: 0x30,
  CLIENT_READY: 0x31,
  CONNECT: 0x32,
  CONNECT_RESULT: 0x33,
} as const;
export type MsgTypeName = keyof typeof MsgType;

/** SPEC.md §9.2 */
export const ErrorCode = {
  protocol_error: 1,
  bad_magic: 2,
  unsupported_frame_version: 3,
  frame_too_large: 4,
  unknown_type: 5,
  unexpected_message: 6,
  invalid_message: 7,
  unsupported_version: 8,
  auth_failed: 9,
  auth_method_unsupported: 10,
  session_unknown: 11,
  replayed: 12,
  replaced: 13,
  heartbeat_timeout: 14,
  handshake_timeout: 15,
  limit_exceeded: 16,
  shutdown: 17,
  internal_error: 18,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

/** SPEC.md §9.3: SOCKS5 reply codes. */
export const Status = {
  succeeded: 0x00,
  general_failure: 0x01,
  not_allowed: 0x02,
  network_unreachable: 0x03,
  host_unreachable: 0x04,
  connection_refused: 0x05,
  ttl_expired: 0x06,
  command_not_supported: 0x07,
  address_type_not_supported: 0x08,
} as const;
export type StatusName = keyof typeof Status;

/** SPEC.md §9.4 */
export const AuthMethod = { token: 1, ed25519: 2 } as const;
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

/** The protocol versions this implementation speaks (SPEC.md §4). */
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
  | ({ type: "CLIENT_HELLO" } & Hello)
  | { type: "CLIENT_READY"; clientId: number }
  | { type: "CONNECT"; agent: string; target: Target }
  | { type: "CONNECT_RESULT"; status: number; bound: Target };

export type MessageOf<T extends MsgTypeName> = Extract<Message, { type: T }>;
