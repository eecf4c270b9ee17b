/**
 * The little of HTTP/1.1 that burrow's HTTPS port and WebSocket handshakes
 * need (RFC 9112): reading a message head (start line and headers) as bytes
 * arrive, within {@link HEAD_LIMIT} bytes and {@link MAX_HEADERS} lines, both
 * checked before more is kept; and checking a request's target and Host.
 *
 * @module
 */
import { HttpError, WsError } from "./errors.ts";
import { normalizeHostName, normalizeIP } from "./host.ts";
import type { Reader } from "./reader.ts";

/** RFC 6455 §7.4.1: protocol error. */
const PROTOCOL_ERROR = 1002;
/** Most bytes of a request head (start line, headers, blank line). */
export const HEAD_LIMIT = 16 * 1024;
/** Most header lines in a request head. */
export const MAX_HEADERS = 100;

/** A request head: method, target (path and query) and headers (lower-case names). */
export interface RequestHead {
  method: string;
  target: string;
  headers: Headers;
}

/**
 * Read an HTTP/1.1 request head; the reader keeps what follows. Throws
 * HttpError (431, with its limit) for a head over `limits.bytes` (default
 * {@link HEAD_LIMIT}) or `limits.headers` (default {@link MAX_HEADERS})
 * header lines, WsError for one that does not parse.
 */
export async function readRequestHead(
  rd: Reader,
  limits: { bytes: number; headers: number } = { bytes: HEAD_LIMIT, headers: MAX_HEADERS },
): Promise<RequestHead> {
  let from = 3; // the end of the head is searched once per byte, not once per chunk read
  const text = await rd.parse((buf) => {
    const r = headParser(buf, from);
    from = Math.max(3, buf.length - 3);
    if ((r === null && buf.length >= limits.bytes) || (r !== null && r.size > limits.bytes)) {
      throw new HttpError(431, `request head over ${limits.bytes} bytes`, "http_head_bytes");
    }
    return r;
  }, "HTTP request head");
  const lines = text.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (!m) throw new WsError(PROTOCOL_ERROR, "not an HTTP/1.1 request");
  if (lines.length - 1 > limits.headers) {
    throw new HttpError(
      431,
      `request head of over ${limits.headers} header lines`,
      "http_headers",
    );
  }
  return { method: m[1]!, target: m[2]!, headers: parseHeaders(lines.slice(1)) };
}

/** The head up to its blank line, looked for from index `from` on (at least 3); null until there. */
export function headParser(buf: Uint8Array, from = 3): { value: string; size: number } | null {
  for (let i = from; i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
      return { value: new TextDecoder("latin1").decode(buf.subarray(0, i - 3)), size: i + 1 };
    }
  }
  return null;
}

export function parseHeaders(lines: string[]): Headers {
  const h = new Headers();
  for (const l of lines) {
    const c = l.indexOf(":");
    if (c <= 0) {
      throw new WsError(
        PROTOCOL_ERROR,
        `bad header line ${JSON.stringify(l.slice(0, 40))}`,
      );
    }
    try {
      h.append(l.slice(0, c).trim(), l.slice(c + 1).trim());
    } catch {
      throw new WsError(PROTOCOL_ERROR, `bad header ${JSON.stringify(l.slice(0, c))}`);
    }
  }
  return h;
}

/** A Host header's parts: `host` a normalized IP literal (IPv6 without brackets) or name. */
export interface HostHeader {
  host: string;
  port: number | null;
  ip: boolean;
}

/**
 * Parse a Host header value (RFC 9110 §7.2: `host [":" port]`, no user info,
 * no path). Throws HttpError 400 naming what is wrong.
 */
export function parseHost(value: string | null): HostHeader {
  if (value === null || value === "") throw new HttpError(400, "no Host header");
  const bad = (why: string) =>
    new HttpError(400, `bad Host header ${JSON.stringify(value.slice(0, 60))}: ${why}`);
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::([0-9]{1,5}))?$/.exec(value);
  if (!m) throw bad("not host[:port]");
  const port = m[3] === undefined ? null : Number(m[3]);
  if (port !== null && port > 65535) throw bad("port over 65535");
  if (m[1] !== undefined) {
    const ip = normalizeIP(m[1]);
    if (ip === null || !ip.includes(":")) throw bad("not an IPv6 address in brackets");
    return { host: ip, port, ip: true };
  }
  const ip = normalizeIP(m[2]!);
  if (ip !== null) return { host: ip, port, ip: true };
  const name = normalizeHostName(m[2]!);
  if (name === null) throw bad("not a host name");
  return { host: name, port, ip: false };
}

/**
 * The path and query of an origin-form request target (RFC 9112 §3.2.1):
 * it starts with `/` and has no fragment; else HttpError 400.
 */
export function originForm(target: string): string {
  if (!/^\/[^#\s]*$/.test(target)) {
    throw new HttpError(
      400,
      `request target ${JSON.stringify(target.slice(0, 60))} is not a path (origin-form)`,
    );
  }
  return target;
}

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

/** The reason phrase for `status` (RFC 9110 §15); empty for one not listed, as RFC 9112 allows. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "";
}
