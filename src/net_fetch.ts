/**
 * A `fetch` over burrow's own {@link Net} (runtime-free): one HTTP/1.1
 * request per connection, TLS verified against given roots (`oidc.ca`, the
 * private CA a company runs its identity provider under) or the runtime's.
 * The OIDC server side and `burrow login` hand it to `jose` and
 * `oauth4webapi`, which take a custom fetch: the runtimes' own fetch cannot
 * be given extra roots in a way all three share.
 *
 * @module
 */
import { concat } from "./auth.ts";
import { NetError } from "./errors.ts";
import { parseHeaders } from "./http1.ts";
import type { Net } from "./net.ts";

/** The most a response may hold (head and body). */
const MAX_RESPONSE = 1024 * 1024;
const TIMEOUT_MS = 15_000;

const enc = new TextEncoder();

/** A chunked body (RFC 9112 §7.1) as its bytes; trailers dropped. */
function dechunk(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let i = 0;
  for (;;) {
    const eol = b.indexOf(10, i);
    if (eol < 0) throw new NetError("EOTHER", "Cannot read HTTP response: truncated chunk size");
    const size = parseInt(new TextDecoder().decode(b.subarray(i, eol)).split(";")[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) {
      throw new NetError("EOTHER", "Cannot read HTTP response: bad chunk size");
    }
    if (size === 0) return concat(parts);
    parts.push(b.subarray(eol + 1, eol + 1 + size));
    i = eol + 1 + size + 2;
  }
}

/** Parse a whole HTTP/1.1 response (the connection was closed after it). */
function parseResponse(b: Uint8Array): Response {
  let end = -1;
  for (let i = 3; i < b.length; i++) {
    if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) {
      end = i + 1;
      break;
    }
  }
  if (end < 0) throw new NetError("EOTHER", "Cannot read HTTP response: no complete head");
  const lines = new TextDecoder("latin1").decode(b.subarray(0, end - 4)).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (!m) throw new NetError("EOTHER", "Cannot read HTTP response: bad status line");
  const headers = parseHeaders(lines.slice(1));
  let body = b.subarray(end);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = dechunk(body);
  else if (headers.has("content-length")) {
    body = body.subarray(0, Number(headers.get("content-length")));
  }
  headers.delete("transfer-encoding");
  const status = Number(m[1]);
  const empty = status === 204 || status === 304;
  return new Response(empty ? null : body.slice(), { status, headers });
}

/** A fetch that dials through `net`, trusting `ca` (PEM roots) for https when given. */
export function netFetch(net: Net, ca?: string[]): typeof fetch {
  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new TypeError(`Cannot fetch ${url.protocol} URLs`);
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const tls = url.protocol === "https:"
      ? { tls: { ...(ca && ca.length > 0 ? { ca } : {}), serverName: host } }
      : {};
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const conn = await net.dial({ host, port, ...tls, timeoutMs: TIMEOUT_MS });
    const timer = setTimeout(() => conn.close(), TIMEOUT_MS);
    try {
      const body = req.body ? new Uint8Array(await req.arrayBuffer()) : new Uint8Array(0);
      const head = [`${req.method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
      req.headers.forEach((v, k) => {
        if (k !== "host" && k !== "connection" && k !== "content-length") head.push(`${k}: ${v}`);
      });
      head.push("connection: close");
      if (body.length > 0 || !["GET", "HEAD"].includes(req.method)) {
        head.push(`content-length: ${body.length}`);
      }
      const headBytes = enc.encode(head.join("\r\n") + "\r\n\r\n");
      await conn.write(concat([headBytes, body]));
      const chunks: Uint8Array[] = [];
      let n = 0;
      for (let c = await conn.read(); c !== null; c = await conn.read()) {
        n += c.length;
        if (n > MAX_RESPONSE) {
          throw new NetError("EOTHER", `Cannot read HTTP response: over ${MAX_RESPONSE} bytes`);
        }
        chunks.push(c.slice());
      }
      return parseResponse(concat(chunks));
    } finally {
      clearTimeout(timer);
      conn.close();
    }
  };
  return f as typeof fetch;
}
