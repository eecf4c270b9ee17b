/**
 * HTTP CONNECT (SPEC.md §8.1), the second language of the server's SOCKS5
 * port and of the client proxy's local port: the first byte tells an HTTP
 * request (an upper-case letter) from SOCKS5; the request head is read within fixed limits
 * (size, header lines) and answered with one status line and, for a refusal,
 * a one-line reason.
 *
 * @module
 */
import { HttpError, WsError } from "./errors.ts";
import { readRequestHead } from "./http1.ts";
import { targetOf } from "./ip.ts";
import { linger } from "./linger.ts";
import { Status, type Target } from "./messages.ts";
import type { Conn } from "./net.ts";
import { Reader } from "./reader.ts";
import { err, ok, type Result } from "./result.ts";

/** The largest request head read, in bytes (`http_head_bytes`). */
export const HTTP_HEAD_MAX = 8192;
/** The most header lines a request head may have (`http_headers`). */
export const HTTP_HEADERS_MAX = 64;

/**
 * Does a connection starting with `byte` speak HTTP? An HTTP method begins
 * with an upper-case letter; anything else is taken for SOCKS5 (SPEC.md §8.1).
 */
export function isHttp(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

/** The first byte of a connection, left in the reader. */
export function firstByte(rd: Reader): Promise<number> {
  return rd.parse(peekByte, "first byte");
}

/** The first byte, left in the buffer (one function for every connection, not a closure each). */
const peekByte = (b: Uint8Array) => b.length > 0 ? { value: b[0]!, size: 0 } : null;

/** Credentials of `Proxy-Authorization: Basic`: user and password (RFC 7617). */
export interface BasicAuth {
  user: string;
  password: string;
}

/** A CONNECT request read. */
export interface HttpConnectRequest {
  target: Target;
  /** null: no `Proxy-Authorization: Basic`; the credentials otherwise, "" when undecodable. */
  auth: BasicAuth | null;
  /** A reader holding what followed the head (the stream's first bytes). */
  rd: Reader;
}

/** Why a CONNECT head is refused (not yet answered). */
export interface HttpRefusal {
  code: 400 | 405 | 431;
  detail: string;
  limit?: "http_head_bytes" | "http_headers";
}

/**
 * Read an HTTP/1.1 CONNECT request head from `first` (a reader that has seen
 * at most the first byte), within {@link HTTP_HEAD_MAX} bytes and
 * {@link HTTP_HEADERS_MAX} header lines. Throws EofError when the peer
 * closes within the head.
 */
export async function readConnect(
  conn: Conn,
  first: Reader,
): Promise<Result<HttpConnectRequest, HttpRefusal>> {
  const rd = new Reader(conn, HTTP_HEAD_MAX, first.rest());
  let head;
  try {
    head = await readRequestHead(rd, { bytes: HTTP_HEAD_MAX, headers: HTTP_HEADERS_MAX });
  } catch (e) {
    if (e instanceof HttpError && (e.limit === "http_head_bytes" || e.limit === "http_headers")) {
      return err({ code: 431, detail: e.message, limit: e.limit });
    }
    if (!(e instanceof WsError)) throw e;
    return err({ code: 400, detail: e.message });
  }
  if (head.method !== "CONNECT") {
    return err({
      code: 405,
      detail: `method ${head.method} is not proxied: use CONNECT (an https:// URL) or SOCKS5`,
    });
  }
  const target = parseAuthority(head.target);
  if (!target) return err({ code: 400, detail: "the CONNECT target must be host:port" });
  return ok({ target, auth: basicAuth(head.headers.get("proxy-authorization")), rd });
}

/** `host:port` or `[v6]:port` of a CONNECT request, port 1..65535; null if it is not one. */
export function parseAuthority(text: string): Target | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]/@]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) return null;
  try {
    return targetOf(m[1] !== undefined ? `[${m[1]}]` : m[2]!, port);
  } catch {
    return null; // a bad IPv6 address, a name over 255 bytes
  }
}

/** The credentials of a `Basic` Proxy-Authorization; null without one; empty when undecodable. */
export function basicAuth(header: string | null): BasicAuth | null {
  const m = header === null ? null : /^Basic\s+(\S*)$/i.exec(header);
  if (!m) return null;
  let text: string;
  try {
    const bytes = Uint8Array.from(atob(m[1]!), (c) => c.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { user: "", password: "" };
  }
  const colon = text.indexOf(":");
  return colon < 0
    ? { user: text, password: "" }
    : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

const REASONS: Record<number, string> = {
  200: "Connection established",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

/** The challenge of a 407. */
export const PROXY_AUTHENTICATE = { "Proxy-Authenticate": 'Basic realm="burrow"' };

/**
 * Answer with `code`. 200 has no body and the stream follows; any other
 * code carries `body` as one line of text and then ends the connection
 * cleanly, as a SOCKS5 refusal does (SPEC.md §8).
 */
export async function httpReply(
  conn: Conn,
  code: number,
  body = "",
  headers: Record<string, string> = {},
): Promise<void> {
  const line = `HTTP/1.1 ${code} ${REASONS[code] ?? "Error"}\r\n`;
  if (code === 200) return await conn.write(new TextEncoder().encode(`${line}\r\n`));
  const text = `${body.replace(/[\r\n]+/g, " ")}\n`;
  const bytes = new TextEncoder().encode(text);
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  const head = `${line}${extra}Content-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`;
  await conn.write(new TextEncoder().encode(head + text));
  void linger(conn);
}

/** The HTTP code for a CONNECT refused with SOCKS5 `status` (SPEC.md §8.1). */
export function httpCodeOf(status: number): 403 | 502 | 504 {
  if (status === Status.not_allowed) return 403;
  return status === Status.ttl_expired ? 504 : 502;
}

const statusNames = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]));

/** The one-line body of a refused CONNECT: the status name and the reason. */
export function refusalText(status: number, reason: string): string {
  return `${statusNames.get(status) ?? `status_${status}`}: ${reason}`;
}
