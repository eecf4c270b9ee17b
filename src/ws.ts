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
 *   nothing); an empty binary message ends the sender's direction
 *   (half-close); a Close frame ends both. Text frames, bad framing, masking
 *   the wrong way, or a frame over {@link MAX_FRAME} fail the connection with
 *   the RFC's close codes (1002, 1003, 1009).
 *
 * @module
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { toBase64 } from "./auth.ts";
import { EofError, NetError, WsError } from "./errors.ts";
import { headParser, parseHeaders, type RequestHead } from "./http1.ts";
import type { Addr, Conn } from "./net.ts";
import { Reader } from "./reader.ts";

export { readRequestHead, type RequestHead } from "./http1.ts";
export { WsError } from "./errors.ts";

/** Largest frame payload, and largest message, accepted (checked before allocating). */
export const MAX_FRAME = 1024 * 1024;
/**
 * Most frames one message may arrive in (checked before keeping a fragment):
 * burrow never fragments, so this only bounds a peer's empty-fragment flood.
 */
export const MAX_FRAGMENTS = 128;
/** The subprotocol burrow asks for and accepts. */
export const SUBPROTOCOL = "burrow";
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const HEAD_LIMIT = 16 * 1024;

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
/** RFC 6455 §7.4.1 close codes burrow uses. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  tooBig: 1009,
} as const;

/** Called when a WebSocket limit triggers (`limit`: ws_frame, ws_message, ws_fragments). */
export type WsLimitHook = (limit: string, fields: Record<string, number>) => void;

export interface WsFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** One frame; `mask` (clients must, servers must not) masks with a random key. */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  mask: boolean,
  fin = true,
): Uint8Array {
  const n = payload.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = 2 + ext + (mask ? 4 : 0);
  const out = new Uint8Array(head + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = (mask ? 0x80 : 0) | (ext === 0 ? n : ext === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (ext === 2) view.setUint16(2, n);
  if (ext === 8) view.setBigUint64(2, BigInt(n));
  out.set(payload, head);
  if (mask) {
    const key = crypto.getRandomValues(new Uint8Array(4));
    out.set(key, 2 + ext);
    // The payload starts at `head` (2, 4, 8 or 14: not always 4-aligned): mask a copy in place.
    if (head % 4 === 0) unmask(out.subarray(head), key);
    else {
      const p = out.slice(head);
      unmask(p, key);
      out.set(p, head);
    }
  }
  return out;
}

/**
 * Incremental frame decoder. `masked`: whether frames from the peer must be
 * masked (true on the server). Throws {@link WsError}.
 */
export class FrameDecoder {
  /** Pushed chunks not yet consumed; `#off` bytes of the first are. */
  #chunks: Uint8Array[] = [];
  #off = 0;
  #size = 0;
  readonly #head = new Uint8Array(14);
  constructor(readonly masked: boolean, readonly maxFrame = MAX_FRAME) {}

  /** Add bytes; they are copied only once, when their frame is complete. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** Bytes held that do not yet make a frame. */
  get buffered(): number {
    return this.#size;
  }

  next(): WsFrame | null {
    if (this.#size < 2) return null;
    const b = this.#peek(Math.min(14, this.#size));
    const fin = (b[0]! & 0x80) !== 0;
    if ((b[0]! & 0x70) !== 0) {
      throw new WsError(CloseCode.protocolError, "reserved bits set (no extension was agreed)");
    }
    const opcode = b[0]! & 0x0f;
    const masked = (b[1]! & 0x80) !== 0;
    if (masked !== this.masked) {
      throw new WsError(
        CloseCode.protocolError,
        this.masked ? "client frame not masked" : "server frame masked",
      );
    }
    if (![0, 1, 2, 8, 9, 10].includes(opcode)) {
      throw new WsError(CloseCode.protocolError, `unknown opcode ${opcode}`);
    }
    let len = b[1]! & 0x7f;
    let at = 2;
    if (len === 126) {
      if (this.#size < 4) return null;
      len = (b[2]! << 8) | b[3]!;
      at = 4;
    } else if (len === 127) {
      if (this.#size < 10) return null;
      const big = new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0);
      if (big > BigInt(this.maxFrame)) {
        throw new WsError(CloseCode.tooBig, `frame of ${big} bytes is over ${this.maxFrame}`);
      }
      len = Number(big);
      at = 10;
    }
    if (opcode >= 8 && (len > 125 || !fin)) {
      throw new WsError(CloseCode.protocolError, "control frame too long or fragmented");
    }
    if (len > this.maxFrame) {
      throw new WsError(CloseCode.tooBig, `frame of ${len} bytes is over ${this.maxFrame}`);
    }
    const key = masked ? Uint8Array.from(b.subarray(at, at + 4)) : null; // a copy: b may be a view
    if (masked) at += 4;
    if (this.#size < at + len) return null;
    this.#skip(at);
    const payload = this.#take(len);
    if (key) unmask(payload, key);
    return { fin, opcode, payload };
  }

  /** The first `n` bytes, without consuming them. */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length - this.#off >= n) return first.subarray(this.#off, this.#off + n);
    let got = 0;
    for (let i = 0, off = this.#off; got < n; i++, off = 0) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length - off, n - got);
      this.#head.set(c.subarray(off, off + k), got);
      got += k;
    }
    return this.#head.subarray(0, n);
  }

  #skip(n: number): void {
    while (n > 0) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length - this.#off, n);
      this.#off += k;
      this.#size -= k;
      n -= k;
      if (this.#off === c.length) {
        this.#chunks.shift();
        this.#off = 0;
      }
    }
  }

  /** The next `n` bytes, as a fresh buffer of their own. */
  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length - this.#off, n - got);
      out.set(c.subarray(this.#off, this.#off + k), got);
      got += k;
      this.#off += k;
      if (this.#off === c.length) {
        this.#chunks.shift();
        this.#off = 0;
      }
    }
    this.#size -= n;
    return out;
  }
}

/** XOR `data` (a buffer of its own, at offset 0) with the 4-byte `key`, four bytes at a time. */
function unmask(data: Uint8Array, key: Uint8Array): void {
  const words = data.length >>> 2;
  if (data.byteOffset % 4 === 0 && words > 0) {
    const k = new Uint32Array(Uint8Array.from(key.subarray(0, 4)).buffer)[0]!;
    const w = new Uint32Array(data.buffer, data.byteOffset, words);
    for (let i = 0; i < words; i++) w[i]! ^= k;
    for (let i = words << 2; i < data.length; i++) data[i]! ^= key[i & 3]!;
  } else {
    for (let i = 0; i < data.length; i++) data[i]! ^= key[i & 3]!;
  }
}

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
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  /** Frames of the message being reassembled (empty ones too). */
  #fragmentCount = 0;
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
      let f: WsFrame | null;
      try {
        f = this.#dec.next();
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
        if (this.#dec.buffered > 0) {
          throw new NetError("ECONNRESET", "WebSocket closed inside a frame");
        }
        return null;
      }
      this.#dec.push(chunk);
    }
  }

  /** The data a frame delivers; EMPTY for none (control frames, fragments so far); null at EOF. */
  async #frame(f: WsFrame): Promise<Uint8Array | null> {
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

  async #data(f: WsFrame): Promise<Uint8Array | null> {
    if ((f.opcode === Opcode.continuation) !== (this.#fragmentCount > 0)) {
      return await this.#refuse(CloseCode.protocolError, "continuation frame out of place");
    }
    // Both limits are checked before the fragment is kept.
    if (this.#fragmentBytes + f.payload.length > MAX_FRAME) {
      return await this.#refuse(
        CloseCode.tooBig,
        `message over ${MAX_FRAME} bytes`,
        "ws_message",
        MAX_FRAME,
      );
    }
    if (!f.fin) {
      if (this.#fragmentCount + 1 >= MAX_FRAGMENTS) {
        return await this.#refuse(
          CloseCode.tooBig,
          `message in over ${MAX_FRAGMENTS} frames`,
          "ws_fragments",
          MAX_FRAGMENTS,
        );
      }
      this.#fragmentCount++;
      this.#fragmentBytes += f.payload.length;
      if (f.payload.length > 0) this.#fragments.push(f.payload);
      return EMPTY;
    }
    let msg = f.payload;
    if (this.#fragmentCount > 0) {
      const parts = [...this.#fragments, f.payload];
      msg = new Uint8Array(this.#fragmentBytes + f.payload.length);
      let o = 0;
      for (const p of parts) {
        msg.set(p, o);
        o += p.length;
      }
      this.#fragments = [];
      this.#fragmentBytes = 0;
      this.#fragmentCount = 0;
    }
    // An empty binary message is the peer's end of its direction.
    return msg.length === 0 ? null : msg;
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
