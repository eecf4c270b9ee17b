/**
 * WebSocket (RFC 6455) as a second transport for burrow's links (SPEC.md
 * §3.1), spoken by burrow itself over any {@link Conn} (TCP or TLS from the
 * adapters, or a tunnel through a proxy), so that pinning, CAs and proxies
 * work exactly as on raw TLS and reading stays pull-based: a peer that sends
 * faster than its stream is drained is held back by TCP, not buffered.
 *
 * - {@link wsConnect}: the client handshake (GET + Upgrade, subprotocol
 *   `burrow`), then a {@link Conn} over the socket.
 * - {@link wsAccept}: the server side, for a request head already read
 *   ({@link readRequestHead}).
 * - The Conn carries the link's bytes in binary messages (boundaries mean
 *   nothing, so a frame's payload is passed on as it arrives and nothing of
 *   a message is held); an empty binary message ends the sender's direction
 *   (half-close); a Close frame ends both. Text frames, bad framing, masking
 *   the wrong way, or a frame over {@link MAX_FRAME} fail the connection with
 *   the RFC's close codes (1002, 1003, 1009).
 *
 * @module
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { toBase64 } from "./auth.ts";
import { EofError, NetError, WsError } from "./errors.ts";
import { HEAD_LIMIT, headParser, parseHeaders, type RequestHead } from "./http1.ts";
import type { Addr, Conn } from "./net.ts";
import { Reader } from "./reader.ts";
import {
  CloseCode,
  encodeFrame,
  FrameDecoder,
  MAX_FRAME,
  Opcode,
  type WsPart,
} from "./ws_frame.ts";

export { readRequestHead, type RequestHead } from "./http1.ts";
export { WsError } from "./errors.ts";
export {
  CloseCode,
  encodeFrame,
  FrameDecoder,
  MAX_FRAME,
  Opcode,
  type WsFrame,
  type WsPart,
} from "./ws_frame.ts";

/**
 * Most frames one message may arrive in (checked before keeping a fragment):
 * burrow never fragments, so this only bounds a peer's empty-fragment flood.
 */
export const MAX_FRAGMENTS = 128;
/** The subprotocol burrow asks for and accepts. */
export const SUBPROTOCOL = "burrow";
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Called when a WebSocket limit triggers (`limit`: ws_frame, ws_message, ws_fragments). */
export type WsLimitHook = (limit: string, fields: Record<string, number>) => void;

const hasToken = (v: string | null, token: string) =>
  v !== null && v.toLowerCase().split(",").some((t) => t.trim() === token);

function acceptKey(key: string): string {
  return toBase64(sha1(new TextEncoder().encode(key + GUID)));
}

/**
 * Client side: ask for a WebSocket on `conn` (`host` for the Host header,
 * `path` such as `/burrow/agent`). Rejects with NetError (code EOTHER) naming
 * what the server answered instead.
 */
export async function wsConnect(conn: Conn, host: string, path: string): Promise<Conn> {
  const key = toBase64(crypto.getRandomValues(new Uint8Array(16)));
  const req =
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`;
  await conn.write(new TextEncoder().encode(req));
  const rd = new Reader(conn, HEAD_LIMIT);
  let text: string;
  try {
    text = await rd.parse(headParser, "WebSocket handshake answer");
  } catch (e) {
    if (e instanceof EofError) {
      throw new NetError("ECONNRESET", `${e.message} (is this a WebSocket endpoint?)`);
    }
    throw e;
  }
  const lines = text.split("\r\n");
  const status = /^HTTP\/1\.1 (\d{3})(.*)$/.exec(lines[0] ?? "");
  if (!status || status[1] !== "101") {
    throw new NetError(
      "EOTHER",
      `WebSocket handshake refused: the server answered ${
        JSON.stringify((lines[0] ?? "").slice(0, 80))
      } to GET ${path}`,
    );
  }
  const h = parseHeaders(lines.slice(1));
  if (!hasToken(h.get("upgrade"), "websocket") || !hasToken(h.get("connection"), "upgrade")) {
    throw new NetError("EOTHER", "WebSocket handshake: the answer does not upgrade to websocket");
  }
  if (h.get("sec-websocket-accept") !== acceptKey(key)) {
    throw new NetError("EOTHER", "WebSocket handshake: wrong Sec-WebSocket-Accept");
  }
  if (h.get("sec-websocket-protocol") !== SUBPROTOCOL) {
    throw new NetError(
      "EOTHER",
      `WebSocket handshake: the server did not agree to subprotocol ${SUBPROTOCOL}`,
    );
  }
  return new WsConn(conn, "client", rd.rest());
}

/**
 * Server side: answer `head` (read from `conn` with `rd`) with 101 and return
 * the Conn; or answer 400/426 and throw WsError for a request that is not a
 * WebSocket upgrade burrow accepts.
 */
export async function wsAccept(
  conn: Conn,
  rd: Reader,
  head: RequestHead,
  onLimit?: WsLimitHook,
): Promise<Conn> {
  const h = head.headers;
  const key = h.get("sec-websocket-key");
  let problem = "";
  if (head.method !== "GET") problem = `method ${head.method} is not GET`;
  else if (!hasToken(h.get("upgrade"), "websocket") || !hasToken(h.get("connection"), "upgrade")) {
    problem = "not a WebSocket upgrade";
  } else if (h.get("sec-websocket-version") !== "13") problem = "Sec-WebSocket-Version must be 13";
  else if (!key || !/^[A-Za-z0-9+/]{22}==$/.test(key)) problem = "bad Sec-WebSocket-Key";
  else if (!hasToken(h.get("sec-websocket-protocol"), SUBPROTOCOL)) {
    problem = `subprotocol ${SUBPROTOCOL} not offered`;
  }
  if (problem) {
    const status = problem.startsWith("Sec-WebSocket-Version")
      ? "426 Upgrade Required"
      : "400 Bad Request";
    const body = `${problem}\n`;
    await conn.write(
      new TextEncoder().encode(
        `HTTP/1.1 ${status}\r\nSec-WebSocket-Version: 13\r\nContent-Type: text/plain\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
    throw new WsError(CloseCode.protocolError, `WebSocket handshake: ${problem}`);
  }
  await conn.write(
    new TextEncoder().encode(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${
          acceptKey(key!)
        }\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`,
    ),
  );
  return new WsConn(conn, "server", rd.rest(), onLimit);
}

const EMPTY = new Uint8Array(0);

/** A {@link Conn} over a WebSocket: see the module doc. */
class WsConn implements Conn {
  readonly #dec: FrameDecoder;
  readonly #mask: boolean;
  /** The binary message being received: its frames so far (empty ones too) and payload bytes. */
  #message: { frames: number; bytes: number } | null = null;
  #eof = false;
  #ended: Promise<void> | undefined;
  #closeSent = false;

  constructor(
    readonly inner: Conn,
    role: "client" | "server",
    rest: Uint8Array,
    readonly onLimit: WsLimitHook = () => {},
  ) {
    this.#mask = role === "client";
    this.#dec = new FrameDecoder(role === "server");
    if (rest.length > 0) this.#dec.push(rest);
  }

  get local(): Addr {
    return this.inner.local;
  }
  get remote(): Addr {
    return this.inner.remote;
  }
  get nagle(): boolean {
    return this.inner.nagle ?? false;
  }
  get closed(): Promise<void> {
    return this.inner.closed;
  }

  async read(): Promise<Uint8Array | null> {
    if (this.#eof) return null;
    for (;;) {
      let f: WsPart | null;
      try {
        f = this.#dec.nextPart();
      } catch (e) {
        if (e instanceof WsError) {
          if (e.closeCode === CloseCode.tooBig) this.onLimit("ws_frame", { max: MAX_FRAME });
          await this.#fail(e);
        }
        throw e;
      }
      if (f) {
        const data = await this.#frame(f);
        if (data === null) {
          this.#eof = true;
          // Both directions done: close the WebSocket (the peer answers with Close).
          if (this.#ended) {
            await this.#ended.then(() => this.#sendClose(CloseCode.normal), () => {});
          }
          return null;
        }
        if (data !== EMPTY) return data;
        continue;
      }
      const chunk = await this.inner.read();
      if (chunk === null) {
        this.#eof = true;
        if (this.#dec.inFrame) {
          throw new NetError("ECONNRESET", "WebSocket closed inside a frame");
        }
        return null;
      }
      this.#dec.push(chunk);
    }
  }

  /** The data a piece of a frame delivers; EMPTY for none (control frames, empty pieces); null at EOF. */
  async #frame(f: WsPart): Promise<Uint8Array | null> {
    switch (f.opcode) {
      case Opcode.ping:
        await this.inner.write(encodeFrame(Opcode.pong, f.payload, this.#mask)).catch(() => {});
        return EMPTY;
      case Opcode.pong:
        return EMPTY;
      case Opcode.close:
        if (f.payload.length === 1) {
          return await this.#refuse(CloseCode.protocolError, "close frame of 1 byte");
        }
        await this.#sendClose(CloseCode.normal);
        return null;
      case Opcode.text:
        return await this.#refuse(CloseCode.unsupportedData, "text message on a burrow link");
      default:
        return this.#data(f);
    }
  }

  /** Fail the connection with `code` and throw. */
  async #refuse(code: number, message: string, limit?: string, max = 0): Promise<never> {
    if (limit) this.onLimit(limit, { max });
    const e = new WsError(code, limit ? `${message} (limit=${limit})` : message);
    await this.#fail(e);
    throw e;
  }

  /**
   * A piece of a binary message, passed on as it arrives (boundaries carry
   * no meaning): nothing of a message is kept, and its limits are checked on
   * each frame's header, before its payload is read.
   */
  async #data(f: WsPart): Promise<Uint8Array | null> {
    if (f.start) {
      if ((f.opcode === Opcode.continuation) !== (this.#message !== null)) {
        return await this.#refuse(CloseCode.protocolError, "continuation frame out of place");
      }
      const m = this.#message ??= { frames: 0, bytes: 0 };
      if (++m.frames > MAX_FRAGMENTS) {
        return await this.#refuse(
          CloseCode.tooBig,
          `message in over ${MAX_FRAGMENTS} frames`,
          "ws_fragments",
          MAX_FRAGMENTS,
        );
      }
      if (m.bytes + f.length > MAX_FRAME) {
        return await this.#refuse(
          CloseCode.tooBig,
          `message over ${MAX_FRAME} bytes`,
          "ws_message",
          MAX_FRAME,
        );
      }
      m.bytes += f.length;
    }
    if (f.end && f.fin) {
      const empty = this.#message!.bytes === 0;
      this.#message = null;
      // An empty binary message is the peer's end of its direction.
      if (empty) return null;
    }
    return f.payload.length > 0 ? f.payload : EMPTY;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#ended || this.#closeSent) {
      return Promise.reject(new NetError("ECLOSED", "WebSocket ended"));
    }
    if (chunk.length === 0) return Promise.resolve();
    return this.inner.write(encodeFrame(Opcode.binary, chunk, this.#mask));
  }

  end(): Promise<void> {
    this.#ended ??= this.inner.write(encodeFrame(Opcode.binary, EMPTY, this.#mask)).then(
      async () => {
        // Both directions done: close the WebSocket, then the socket.
        if (this.#eof) await this.#sendClose(CloseCode.normal);
      },
    );
    return this.#ended;
  }

  close(): void {
    if (!this.#closeSent) {
      this.#closeSent = true;
      void this.inner.write(encodeFrame(Opcode.close, closePayload(CloseCode.normal), this.#mask))
        .catch(() => {})
        .finally(() => this.inner.close());
    } else this.inner.close();
  }

  setNoDelay(on: boolean): void {
    this.inner.setNoDelay(on);
  }

  async #sendClose(code: number, reason = ""): Promise<void> {
    if (this.#closeSent) return;
    this.#closeSent = true;
    await this.inner.write(encodeFrame(Opcode.close, closePayload(code, reason), this.#mask)).catch(
      () => {},
    );
    await this.inner.end().catch(() => {});
  }

  async #fail(e: WsError): Promise<void> {
    await this.#sendClose(e.closeCode, e.message.slice(0, 100));
    this.inner.close();
  }
}

function closePayload(code: number, reason = ""): Uint8Array {
  const r = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + r.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}
