/**
 * The HTTPS port (`listen.https`, SPEC.md §3.1): one TLS port for what a
 * closed network lets out, typically 443 or a reverse proxy in front. A
 * WebSocket upgrade to a path ending in `/agent` is an agent's control or
 * pool connection, one ending in `/client` a client proxy's connection; both
 * then go to the same handlers as on the raw ports. Every other request goes
 * to the Hono app (health, metrics, admin API, dashboard).
 *
 * burrow speaks WebSocket itself (ws.ts) rather than through each runtime's
 * upgrade helper: those push received messages as events, with no way to stop
 * reading, so a fast sender into a slow stream would fill memory; here reads
 * are pulled and TCP holds the sender back. The HTTP side is deliberately
 * small: one request per connection (`Connection: close`), bodies up to
 * {@link BODY_LIMIT} with Content-Length, responses streamed (chunked when their length is
 * unknown, as server-sent events are).
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { EofError, HttpError, NetError, TimeoutError } from "../errors.ts";
import type { HttpPeer } from "../http/app.ts";
import { HEAD_LIMIT, originForm, parseHost, reasonPhrase } from "../http1.ts";
import type { Logger } from "../log.ts";
import type { Addr, Conn } from "../net.ts";
import { Reader } from "../reader.ts";
import { readRequestHead, type RequestHead, wsAccept, WsError } from "../ws.ts";
import { withRemote } from "../proxyproto.ts";
import type { ServerContext } from "./context.ts";
import { forwardedFor } from "./trusted.ts";

/** Largest request body (Content-Length) the HTTP app is given; checked before reading it. */
export const BODY_LIMIT = 64 * 1024;
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);
const enc = new TextEncoder();

export interface HttpsHandlers {
  /** An agent's control or pool connection (AgentPort.handle). */
  agent(conn: Conn): Promise<void>;
  /** A client proxy's connection (ClientFront.handle); absent when the client port is off. */
  client?: (conn: Conn) => Promise<void>;
  /** Everything else: the Hono app's fetch, told where the request came from. */
  fetch(req: Request, peer: Pick<HttpPeer, "remote" | "listener">): Response | Promise<Response>;
}

/** Which link a request upgrades to, if any. */
function wsRole(head: RequestHead): "agent" | "client" | null {
  if (head.headers.get("upgrade")?.toLowerCase() !== "websocket") return null;
  const path = head.target.split("?")[0]!;
  return path.endsWith("/agent") ? "agent" : path.endsWith("/client") ? "client" : null;
}

export class HttpsFront {
  constructor(readonly ctx: ServerContext, readonly handlers: HttpsHandlers) {}

  /**
   * One connection. It stays in admission (a pending handshake, under the
   * handshake timeout) until its request head and body are read, or until a
   * WebSocket link's own handshake takes over.
   */
  async handle(conn: Conn): Promise<void> {
    const admitted = this.ctx.admission.begin(conn, "https");
    if (!admitted) return;
    const remote = fmt(conn.remote);
    const log = this.ctx.log.with({ remote, port: "https" });
    const rd = new Reader(conn, HEAD_LIMIT);
    try {
      const head = await readRequestHead(rd);
      originForm(head.target); // upgrades too: a path, and a valid Host
      parseHost(head.headers.get("host"));
      // Behind a trusted proxy, the request's source is in X-Forwarded-For (trusted.ts).
      const real = forwardedFor(
        this.ctx.config(),
        conn.remote,
        head.headers.get("x-forwarded-for"),
      );
      const role = wsRole(head);
      if (role === "agent" || (role === "client" && this.handlers.client)) {
        const accepted = await wsAccept(conn, rd, head, (limit, fields) => {
          this.ctx.admission.limitHit(limit, { port: "https", remote, ...fields });
        });
        const ws = real === conn.remote ? accepted : withRemote(accepted, real);
        admitted(); // the link's own handshake is admitted and timed on its port
        return await (role === "agent" ? this.handlers.agent(ws) : this.handlers.client!(ws));
      }
      const req = await readRequest(conn, rd, head);
      admitted();
      await this.#serve(conn, req, head.method === "HEAD", log, real);
    } catch (e) {
      admitted();
      await this.#refuse(conn, e, log);
    }
  }

  /** Answer a request that failed before the app (a one-line reason), count and log it; close. */
  async #refuse(conn: Conn, e: unknown, log: Logger): Promise<void> {
    if (e instanceof HttpError || e instanceof WsError || e instanceof EofError) {
      this.ctx.metrics.inc(
        "burrow_protocol_errors_total",
        "Connections closed for a protocol error",
        { port: "https", code: e instanceof EofError ? "eof" : "http" },
      );
    }
    if (e instanceof HttpError) {
      if (e.limit) {
        this.ctx.admission.limitHit(e.limit, { port: "https", remote: fmt(conn.remote) });
      } else log.debug("bad HTTP request", { status: e.status, error: e.message });
      const body = enc.encode(`${e.message}\n`);
      const headers = { "content-type": "text/plain", "content-length": String(body.length) };
      await respond(conn, new Response(body, { status: e.status, headers })).catch(() => {});
    } else if (e instanceof WsError || e instanceof EofError) {
      log.warn("bad HTTPS request, closing", { error: e.message });
    } else if (e instanceof NetError || e instanceof TimeoutError) {
      log.debug("https connection ended", { error: e.message });
    } else {
      conn.close();
      throw e;
    }
    conn.close();
  }

  /** The app's answer to `req`, then close. */
  async #serve(
    conn: Conn,
    req: Request,
    headOnly: boolean,
    log: Logger,
    remote: Addr,
  ): Promise<void> {
    let res: Response;
    try {
      res = await this.handlers.fetch(req, { remote, listener: "https" });
    } catch (e) {
      log.error("http handler failed", { error: String(e) });
      res = new Response("internal error\n", { status: 500 });
    }
    await respond(conn, res, headOnly);
  }
}

/**
 * The Request for `head` and its body (at most {@link BODY_LIMIT} bytes, by
 * Content-Length), else HttpError; its target and Host are already checked.
 */
async function readRequest(conn: Conn, rd: Reader, head: RequestHead): Promise<Request> {
  const host = head.headers.get("host")!; // checked by handle()
  if (head.headers.has("transfer-encoding")) {
    throw new HttpError(501, "Transfer-Encoding is not supported: send Content-Length");
  }
  const cl = head.headers.get("content-length") ?? "0";
  if (!/^[0-9]{1,15}$/.test(cl)) throw new HttpError(400, "bad Content-Length");
  const length = Number(cl);
  if (length > BODY_LIMIT) {
    throw new HttpError(413, `request body over ${BODY_LIMIT} bytes`, "http_body_bytes");
  }
  const body = length > 0 ? await readBody(conn, rd, length) : null;
  return new Request(`https://${host}${head.target}`, {
    method: head.method,
    headers: head.headers,
    ...(body && head.method !== "GET" && head.method !== "HEAD" ? { body } : {}),
  });
}

/** `length` bytes (already checked against the limit); memory grows with what arrives. */
async function readBody(conn: Conn, rd: Reader, length: number): Promise<Uint8Array<ArrayBuffer>> {
  let buf = new Uint8Array(Math.min(length, 4096));
  let got = 0;
  for (let chunk: Uint8Array | null = rd.rest(); got < length; chunk = await conn.read()) {
    if (chunk === null) throw new EofError("connection closed during the request body");
    const k = Math.min(chunk.length, length - got);
    if (got + k > buf.length) {
      const grown = new Uint8Array(Math.min(length, Math.max(buf.length * 2, got + k)));
      grown.set(buf.subarray(0, got));
      buf = grown;
    }
    buf.set(chunk.subarray(0, k), got);
    got += k;
  }
  return buf;
}

/** Write `res` as HTTP/1.1 and end the connection. */
async function respond(conn: Conn, res: Response, headOnly = false): Promise<void> {
  let head = `HTTP/1.1 ${res.status} ${reasonPhrase(res.status)}\r\n`;
  res.headers.forEach((v, k) => {
    if (!HOP_BY_HOP.has(k)) head += `${k}: ${v}\r\n`;
  });
  const known = res.headers.get("content-length");
  let chunked = false;
  if (headOnly || !res.body) head += `content-length: ${known ?? 0}\r\n`;
  else if (known !== null) head += `content-length: ${known}\r\n`;
  else {
    head += "transfer-encoding: chunked\r\n";
    chunked = true;
  }
  await conn.write(enc.encode(`${head}connection: close\r\n\r\n`));
  if (!headOnly && res.body) {
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value.length === 0) continue;
        if (chunked) await conn.write(enc.encode(`${value.length.toString(16)}\r\n`));
        await conn.write(value);
        if (chunked) await conn.write(enc.encode("\r\n"));
      }
      if (chunked) await conn.write(enc.encode("0\r\n\r\n"));
    } finally {
      reader.releaseLock();
      await res.body.cancel().catch(() => {});
    }
  }
  await conn.end().catch(() => {});
  conn.close();
}
