/**
 * Errors of the runtime adapters: {@link toNetError} maps what any runtime
 * throws or reports onto the stable {@link NetErrorCode}s, with one table
 * for all three (their codes and error names do not overlap); the other
 * functions make the errors the adapters raise themselves.
 *
 * @module
 */
import { formatFingerprint, noPeerCertificate, pinMismatch } from "../tls.ts";
import { NetError, type NetErrorCode } from "../errors.ts";

/** Runtime error codes that are {@link NetErrorCode}s as they are. */
const SAME: ReadonlySet<string> = new Set<NetErrorCode>([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "ETIMEDOUT",
  "ECONNRESET",
  "EPIPE",
  "EADDRINUSE",
  "EINVAL",
]);

/** Other runtime error codes, and Deno's error class names, by what they mean. */
const ALIASES: ReadonlyMap<string, NetErrorCode> = new Map<string, NetErrorCode>([
  ["ECONNABORTED", "ECONNRESET"],
  ["EAI_NONAME", "ENOTFOUND"],
  ["EAI_AGAIN", "ENOTFOUND"],
  ["EAI_NODATA", "ENOTFOUND"], // Node
  ["ENODATA", "ENOTFOUND"], // Bun (DNS_ENODATA)
  ["ERR_STREAM_DESTROYED", "ECLOSED"], // Node
  ["ERR_STREAM_WRITE_AFTER_END", "ECLOSED"], // Node
  ["ERR_SOCKET_CLOSED", "ECLOSED"], // Node
  ["ERR_SOCKET_DGRAM_NOT_RUNNING", "ECLOSED"], // node:dgram
  ["ERR_SOCKET_BAD_PORT", "EINVAL"], // node:dgram
  ["EMSGSIZE", "EINVAL"], // a datagram too big for the socket
  ["EAFNOSUPPORT", "EINVAL"], // a datagram to an address of the other family
  ["UnexpectedEof", "ECONNRESET"], // Deno (rustls): the peer closed without close_notify
  ["BadResource", "ECLOSED"], // Deno
  ["Interrupted", "ECLOSED"], // Deno
  ["NotConnected", "ECLOSED"], // Deno
]);

/** OpenSSL, BoringSSL and node:tls codes of handshake and verification failures. */
const TLS_CODES =
  /^(ERR_SSL_|ERR_TLS_|ERR_OSSL_|UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH_EXCEEDED)/;

/** Deno's words for a name that does not resolve (its errors have no code then). */
const NOT_FOUND_MESSAGE = /failed to lookup address|Name or service not known/i;

/** rustls' words for handshake and certificate failures (Deno's errors have no code then). */
const TLS_MESSAGE =
  /certificate|handshake|peer is incompatible|received corrupt message|alert|tls|ssl|NotValidForName|UnknownIssuer/i;

/** How to read an error in {@link toNetError}. */
export interface ErrorContext {
  /**
   * The error came from a TLS connection whose errors carry no code (Deno):
   * `InvalidData`, or rustls' words in the message, mean ETLS.
   */
  tls?: boolean;
  /** The code of an error nothing else classifies; default EOTHER. */
  fallback?: NetErrorCode;
}

/**
 * The {@link NetError} for whatever a runtime threw or reported, by its
 * `code` (Bun's `DNS_` prefix dropped), else its `name`, else its message.
 * An ETLS message starts with `TLS: ` and ends with the runtime's code in
 * parentheses, if there is one.
 */
export function toNetError(e: unknown, ctx: ErrorContext = {}): NetError {
  if (e instanceof NetError) return e;
  const { code: rawCode, name: rawName, message: rawMessage } = (e ?? {}) as {
    code?: unknown;
    name?: unknown;
    message?: unknown;
  };
  const code = String(rawCode ?? "").replace(/^DNS_/, "");
  const name = typeof rawName === "string" ? rawName : "";
  const message = typeof rawMessage === "string" ? rawMessage : String(e);
  const mapped: NetErrorCode = SAME.has(code)
    ? code as NetErrorCode
    : ALIASES.get(code) ?? ALIASES.get(name) ??
      (TLS_CODES.test(code)
        ? "ETLS"
        : NOT_FOUND_MESSAGE.test(message)
        ? "ENOTFOUND"
        : ctx.tls && (name === "InvalidData" || TLS_MESSAGE.test(message))
        ? "ETLS"
        : ctx.fallback ?? "EOTHER");
  const text = mapped === "ETLS" ? `TLS: ${message}${code ? ` (${code})` : ""}` : message;
  return new NetError(mapped, text, { cause: e });
}

/** ECLOSED: the connection was closed (or ended) before this operation. */
export const closedError = (): NetError => new NetError("ECLOSED", "connection closed");

/** ETIMEDOUT of a dial; `what` is "connect" or "TLS connect". */
export const timedOut = (host: string, port: number, ms: number, what = "connect"): NetError =>
  new NetError("ETIMEDOUT", `${what} to ${host}:${port} timed out after ${ms} ms`);

/** ETLS: the runtime refused a TLS listener's certificate or key (`e`). */
export function unusableCertificate(e: unknown): NetError {
  const message = e instanceof Error ? e.message : String(e);
  return new NetError("ETLS", `TLS certificate or key not usable: ${message}`, { cause: e });
}

/**
 * The error of a failed `listen()`: as {@link toNetError}, except that an
 * error it cannot classify is, for a TLS listener, an unusable certificate
 * or key.
 */
export function listenError(e: unknown, tls: boolean): NetError {
  const err = toNetError(e);
  return tls && err.code === "EOTHER" ? unusableCertificate(e) : err;
}

/**
 * The pin check of a TLS dial, right in the handshake callback: `null` if
 * the SHA-256 of the server's leaf certificate `der` is `pin` (or one of them), else the
 * ETLS error (a missing certificate included). `sha256` is the runtime's
 * synchronous hash.
 */
export function checkPin(
  pin: string | readonly string[],
  der: Uint8Array | undefined,
  sha256: (data: Uint8Array) => Uint8Array,
): NetError | null {
  if (der === undefined || der.byteLength === 0) return noPeerCertificate();
  return pinMismatch(pin, formatFingerprint(sha256(der)));
}
