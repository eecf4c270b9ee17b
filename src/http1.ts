/**
 * The little of HTTP/1.1 that burrow's HTTPS port and WebSocket handshakes
 * need (RFC 9112): reading a message head (start line and headers, at most
 * the reader's limit), as bytes arrive.
 *
 * @module
 */
import { WsError } from "./errors.ts";
import type { Reader } from "./reader.ts";

/** RFC 6455 §7.4.1: protocol error. */
const PROTOCOL_ERROR = 1002;

/** A request head: method, target (path and query) and headers (lower-case names). */
export interface RequestHead {
  method: string;
  target: string;
  headers: Headers;
}

/**
 * Read an HTTP/1.1 request head (at most the reader's limit in bytes, and
 * `maxHeaders` header lines when given); the reader keeps what follows.
 */
export async function readRequestHead(rd: Reader, maxHeaders?: number): Promise<RequestHead> {
  const text = await rd.parse(headParser, "HTTP request head");
  const lines = text.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (!m) throw new WsError(PROTOCOL_ERROR, "not an HTTP/1.1 request");
  if (maxHeaders !== undefined && lines.length - 1 > maxHeaders) {
    throw new WsError(PROTOCOL_ERROR, `more than ${maxHeaders} header lines`);
  }
  return { method: m[1]!, target: m[2]!, headers: parseHeaders(lines.slice(1)) };
}

export function headParser(buf: Uint8Array): { value: string; size: number } | null {
  for (let i = 3; i < buf.length; i++) {
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
