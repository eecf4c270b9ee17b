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

/** A piece of a frame as it arrives ({@link FrameDecoder.nextPart}). */
export interface WsPart extends WsFrame {
  /** The first piece of its frame: `length` is then the frame's payload length. */
  start: boolean;
  /** The last piece of its frame. */
  end: boolean;
  length: number;
}

interface Header {
  fin: boolean;
  opcode: number;
  len: number;
  /** Header bytes, the masking key included. */
  at: number;
  key: Uint8Array | null;
}

/**
 * Incremental frame decoder. `masked`: whether frames from the peer must be
 * masked (true on the server). Throws {@link WsError}. {@link next} gives
 * whole frames; {@link nextPart} gives a data frame's payload as it arrives,
 * so a large frame is never held whole.
 */
export class FrameDecoder {
  /** Pushed chunks not yet consumed; `#off` bytes of the first are. */
  #chunks: Uint8Array[] = [];
  #off = 0;
  #size = 0;
  readonly #head = new Uint8Array(14);
  /** The data frame {@link nextPart} is inside: its payload bytes still to come. */
  #cur:
    | { fin: boolean; opcode: number; left: number; key: Uint8Array | null; keyOff: number }
    | null = null;
  constructor(readonly masked: boolean, readonly maxFrame = MAX_FRAME) {}

  /** Add bytes; they are copied only once, when taken. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** Bytes held that are not yet taken. */
  get buffered(): number {
    return this.#size;
  }

  /** Whether the stream stops inside a frame (bytes held, or a frame's payload still due). */
  get inFrame(): boolean {
    return this.#size > 0 || this.#cur !== null;
  }

  /** The next whole frame, or null until it has arrived. */
  next(): WsFrame | null {
    const h = this.#header();
    if (!h || this.#size < h.at + h.len) return null;
    return this.#frame(h);
  }

  /**
   * The next piece: a control frame whole, or what has arrived of a data
   * frame's payload (possibly empty, on its header); null until there is one.
   */
  nextPart(): WsPart | null {
    let c = this.#cur;
    let start = false;
    let length = 0;
    if (!c) {
      const h = this.#header();
      if (!h) return null;
      if (h.opcode >= 8) {
        if (this.#size < h.at + h.len) return null;
        const f = this.#frame(h);
        return {
          fin: f.fin,
          opcode: f.opcode,
          payload: f.payload,
          start: true,
          end: true,
          length: h.len,
        };
      }
      this.#skip(h.at);
      c = this.#cur = { fin: h.fin, opcode: h.opcode, left: h.len, key: h.key, keyOff: 0 };
      start = true;
      length = h.len;
    } else if (this.#size === 0) return null;
    const n = Math.min(c.left, this.#size);
    const payload = this.#take(n);
    if (c.key) unmask(payload, c.key, c.keyOff);
    c.keyOff += n;
    c.left -= n;
    const end = c.left === 0;
    if (end) this.#cur = null;
    return { fin: c.fin, opcode: c.opcode, payload, start, end, length };
  }

  /** Take the frame whose header `h` is at the front (all of it has arrived). */
  #frame(h: Header): WsFrame {
    this.#skip(h.at);
    const payload = this.#take(h.len);
    if (h.key) unmask(payload, h.key);
    return { fin: h.fin, opcode: h.opcode, payload };
  }

  /** The header at the front, checked against the rules and limits; null until complete. */
  #header(): Header | null {
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
    if ((opcode > 2 && opcode < 8) || opcode > 10) {
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
    if (masked && this.#size < at + 4) return null;
    const key = masked ? Uint8Array.from(b.subarray(at, at + 4)) : null; // a copy: b may be a view
    return { fin, opcode, len, at: masked ? at + 4 : at, key };
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

/**
 * XOR `data` (a buffer of its own, at offset 0) with the 4-byte `key`, four
 * bytes at a time; `from`: how far into the payload `data` starts.
 */
function unmask(data: Uint8Array, key: Uint8Array, from = 0): void {
  if (from % 4 !== 0) key = Uint8Array.from({ length: 4 }, (_, i) => key[(from + i) & 3]!);
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
