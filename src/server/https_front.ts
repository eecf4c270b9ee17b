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
 * 1 MiB with Content-Length, responses streamed (chunked when their length is
 * unknown, as server-sent events are).
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { EofError, NetError, TimeoutError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Addr, Conn } from "../net.ts";
import { Reader } from "../reader.ts";
import { readRequestHead, type RequestHead, wsAccept, WsError } from "../ws.ts";
import type { ServerContext } from "./context.ts";
import { withRemote } from "../proxyproto.ts";
import { forwardedFor } from "./trusted.ts";

const BODY_LIMIT = 1024 * 1024;
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
  /** Everything else: the Hono app's fetch; `remote` is the request's source (X-Forwarded-For applied). */
  fetch(req: Request, info: { remote: Addr }): Response | Promise<Response>;
}

export class HttpsFront {
  constructor(readonly ctx: ServerContext, readonly handlers: HttpsHandlers) {}

  async handle(conn: Conn): Promise<void> {
    const admitted = this.ctx.admission.begin(conn, "https");
    if (!admitted) return;
    const log = this.ctx.log.with({ remote: fmt(conn.remote), port: "https" });
    const rd = new Reader(conn, 16 * 1024);
    try {
      const head = await readRequestHead(rd);
      // Behind a trusted proxy, the request's source is in X-Forwarded-For (trusted.ts).
      const peer = conn.remote;
      const remote = forwardedFor(this.ctx.config(), peer, head.headers.get("x-forwarded-for"));
      const upgrade = head.headers.get("upgrade")?.toLowerCase() === "websocket";
      const path = head.target.split("?")[0]!;
      const role = !upgrade
        ? null
        : path.endsWith("/agent")
        ? "agent"
        : path.endsWith("/client")
        ? "client"
        : null;
      if (role === "agent" || (role === "client" && this.handlers.client)) {
        const accepted = await wsAccept(conn, rd, head);
        const ws = remote === peer ? accepted : withRemote(accepted, remote);
        admitted(); // the link's own handshake is admitted and timed on its port
        return await (role === "agent" ? this.handlers.agent(ws) : this.handlers.client!(ws));
      }
      admitted();
      await this.#http(conn, rd, head, log, remote);
    } catch (e) {
      admitted();
      conn.close();
      if (e instanceof WsError || e instanceof EofError) {
        this.ctx.metrics.inc(
          "burrow_protocol_errors_total",
          "Connections closed for a protocol error",
          {
            port: "https",
            code: e instanceof WsError ? "http" : "eof",
          },
        );
        log.warn("bad HTTPS request, closing", { error: e.message });
      } else if (e instanceof NetError || e instanceof TimeoutError) {
        log.debug("https connection ended", { error: e.message });
      } else throw e;
    }
  }

  /** One HTTP request to the Hono app, one response, then close. */
  async #http(
    conn: Conn,
    rd: Reader,
    head: RequestHead,
    log: Logger,
    remote: Addr,
  ): Promise<void> {
    const length = Number(head.headers.get("content-length") ?? "0");
    if (
      head.headers.has("transfer-encoding") || !Number.isInteger(length) || length < 0 ||
      length > BODY_LIMIT
    ) {
      return await respond(conn, new Response("request body not supported\n", { status: 413 }));
    }
    let body: Uint8Array<ArrayBuffer> | null = null;
    if (length > 0) {
      body = await rd.parse(
        (b) => (b.length >= length ? { value: b.slice(0, length), size: length } : null),
        "body",
      );
    }
    const host = head.headers.get("host") ?? "localhost";
    const req = new Request(`https://${host}${head.target.startsWith("/") ? head.target : "/"}`, {
      method: head.method,
      headers: head.headers,
      ...(body && head.method !== "GET" && head.method !== "HEAD" ? { body } : {}),
    });
    let res: Response;
    try {
      res = await this.handlers.fetch(req, { remote });
    } catch (e) {
      log.error("http handler failed", { error: String(e) });
      res = new Response("internal error\n", { status: 500 });
    }
    await respond(conn, res, head.method === "HEAD");
  }
}

/** Write `res` as HTTP/1.1 and end the connection. */
async function respond(conn: Conn, res: Response, headOnly = false): Promise<void> {
  let head = `HTTP/1.1 ${res.status} ${res.statusText || "OK"}\r\n`;
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
