/**
 * Every error class of burrow, in one place. Parsers throw only
 * {@link ProtocolError} and {@link SocksError} (or return a value; the fuzz
 * tests hold them to that); adapters map runtime failures onto
 * {@link NetError}; configuration and flags fail with {@link ConfigError},
 * {@link RuleError} and {@link UsageError}, which the CLI reports in one line.
 * Anything else that escapes is a bug.
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
  constructor(
    readonly code: ErrorCodeName,
    message: string,
    options?: { cause?: unknown; reply?: boolean },
  ) {
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
  | "bad_address_type"
  /** A domain name that is not valid UTF-8: answered with reply 0x02 (SPEC.md §8). */
  | "bad_domain"
  /** A UDP datagram with FRAG ≠ 0: dropped and counted (SPEC.md §8.2). */
  | "fragment";

/** A malformed SOCKS5 (RFC 1928/1929) message. */
export class SocksError extends Error {
  override name = "SocksError";
  constructor(readonly code: SocksErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The name of an ERROR/GOAWAY code, or `code_N` for one we do not know. */
export function errorName(code: number): string {
  return codeNames.get(code) ?? `code_${code}`;
}

const codeNames = new Map<number, string>(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

/** The peer sent ERROR (SPEC.md §5.6). */
export class PeerError extends Error {
  override name = "PeerError";
  constructor(readonly code: number, readonly peerMessage: string) {
    super(`peer error ${errorName(code)}: ${peerMessage}`);
  }
}

/** Stable codes of {@link NetError}. */
export type NetErrorCode =
  | "ECONNREFUSED"
  | "EHOSTUNREACH"
  | "ENETUNREACH"
  | "ENOTFOUND"
  | "ETIMEDOUT"
  | "ECONNRESET"
  | "EPIPE"
  | "EADDRINUSE"
  | "ECLOSED"
  /** A bad argument caught before the call: a datagram to no IP literal, or too big. */
  | "EINVAL"
  /** TLS handshake or certificate verification failed (or the pin did not match). */
  | "ETLS"
  | "EOTHER";

/** A network failure, with a stable code whatever the runtime said (src/net.ts). */
export class NetError extends Error {
  override name = "NetError";
  constructor(readonly code: NetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Why a listen failed, in words, by the code any runtime gives (Node's, or Deno's error name). */
const LISTEN_REASONS: ReadonlyMap<string, string> = new Map([
  ["EADDRINUSE", "address already in use"],
  ["AddrInUse", "address already in use"],
  ["EADDRNOTAVAIL", "address not available on this host"],
  ["AddrNotAvailable", "address not available on this host"],
  ["EACCES", "permission denied (a port below 1024 needs privileges)"],
  ["PermissionDenied", "permission denied (a port below 1024 needs privileges)"],
]);

/**
 * A port that could not be opened at start: `cannot listen on ADDR (KEY):
 * REASON`, the config key or flag naming it. The CLI reports it in one
 * line, exit code 3.
 */
export class ListenError extends Error {
  override name = "ListenError";
  constructor(readonly addr: string, readonly key: string, cause: unknown) {
    super(`cannot listen on ${addr} (${key}): ${listenReason(cause)}`, { cause });
  }
}

function listenReason(e: unknown): string {
  for (let c = e, i = 0; c && typeof c === "object" && i < 4; c = (c as Error).cause, i++) {
    const { code, name } = c as { code?: unknown; name?: unknown };
    const r = LISTEN_REASONS.get(String(code)) ?? LISTEN_REASONS.get(String(name));
    if (r) return r;
  }
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

/** Work that did not finish in time (time.ts `deadline`). */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** The peer closed during an unframed handshake (SOCKS5), or sent more than its limit (reader.ts). */
export class EofError extends Error {
  override name = "EofError";
}

/** A bad configuration file or value: reported in one line, exit code 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A target rule that does not parse (policy.ts): a configuration error. */
export class RuleError extends Error {
  override name = "RuleError";
}

/**
 * The state store (server/store.ts) cannot do what was asked: it is
 * unreachable, or refused. At start the CLI reports it in one line, exit
 * code 3; at run time the admin API answers 503 with its message.
 */
export class StoreError extends Error {
  override name = "StoreError";
}

/** Bad flags or a missing one; the CLI reports it in one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * An outbound proxy refused or failed the tunnel (proxy.ts): `status` is the
 * HTTP status (407, 403, …) or the SOCKS5 reply code, when there is one.
 */
export class ProxyError extends Error {
  override name = "ProxyError";
  readonly status: number | undefined;
  constructor(message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.status = options?.status;
  }
}

/** A WebSocket protocol violation by the peer, with the close code to send. */
export class WsError extends Error {
  override name = "WsError";
  constructor(readonly closeCode: number, message: string) {
    super(message);
  }
}

/**
 * A bad PROXY protocol header (proxyproto.ts), or a connection that must
 * start with one and does not: the connection is closed, nothing is sent.
 */
export class ProxyHeaderError extends Error {
  override name = "ProxyHeaderError";
  /** Set when the header is over a size limit (SPEC.md §10.1): the limit's name. */
  readonly limit: string | undefined;
  constructor(message: string, options?: { limit?: string }) {
    super(message);
    this.limit = options?.limit;
  }
}

/**
 * An HTTP request refused before it reaches the app (https_front.ts): the
 * `status` to answer with and, when a limit triggered, its name.
 */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(readonly status: number, message: string, readonly limit?: string) {
    super(message);
  }
}
