/**
 * WebSocket frames (RFC 6455 §5): encoding, and an incremental decoder that
 * checks every length against its limit before allocating. The Conn over
 * them is in ws.ts.
 *
 * @module
 */
import { WsError } from "./errors.ts";

/** Largest frame payload, and largest message, accepted (checked before allocating). */
export const MAX_FRAME = 1024 * 1024;

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
/** RFC 6455 §7.4.1 close codes burrow uses. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  tooBig: 1009,
} as const;

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
