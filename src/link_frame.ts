/**
 * Link frames (SPEC.md §3.2): the 7-byte header and body that multiplex pool
 * streams over a link. spec/link.ksy describes the frame; this hand codec is
 * the hot path (every DATA chunk of every stream passes through it), but its
 * type table (`LinkFrameType`, generated/enums.ts), header layout and body
 * sizes (`Layout`, generated/messages.ts) come from that .ksy, and
 * test/link_frame_test.ts checks it against the generated parser on random
 * frames and random bytes at every test run.
 *
 * ```
 *  0      1           5          7
 *  | type | stream id | len_body | body …
 *  |  u1  |    u4     |    u2    |
 * ```
 *
 * @module
 */
import { LinkFrameType as TYPE } from "../generated/enums.ts";
import { Layout } from "../generated/messages.ts";
import { ProtocolError } from "./errors.ts";

const L = Layout.link;

/** The header: type u1, stream id u4, len_body u2 (spec/link.ksy). */
export const LINK_HEADER_SIZE = L.size;
/** The largest DATA body (len_body's maximum): a longer write is split into several frames. */
export const LINK_MAX_DATA = 2 ** (8 * L.lenBody.size) - 1;
/** The size of WINDOW's body. */
const WINDOW_SIZE = L.bodySizes[TYPE.WINDOW][0];

type Name = keyof typeof TYPE;
/** Link frame types by code (SPEC.md §9.6). */
const NAMES: readonly (Name | undefined)[] = (() => {
  const out: (Name | undefined)[] = [];
  for (const [name, code] of Object.entries(TYPE)) out[code] = name as Name;
  return out;
})();
/** The smallest and largest body of each type but DATA, by code. */
const BODY: Readonly<Record<number, readonly [number, number]>> = L.bodySizes;

/**
 * A link frame. GRANT carries no stream: its `stream` field is the highest
 * stream id the server may open so far; PING's and PONG's is the PING
 * sender's number.
 */
export type LinkFrame =
  | { type: "DATA"; stream: number; data: Uint8Array }
  | { type: "OPEN" | "FIN" | "RESET" | "GRANT" | "PING" | "PONG"; stream: number }
  | { type: "WINDOW"; stream: number; increment: number };

const T = L.type.offset;
const S = L.streamId.offset;
const N = L.lenBody.offset;

function header(buf: Uint8Array, type: number, stream: number, len: number, at = 0): void {
  buf[at + T] = type;
  buf[at + S] = stream >>> 24;
  buf[at + S + 1] = stream >>> 16;
  buf[at + S + 2] = stream >>> 8;
  buf[at + S + 3] = stream;
  buf[at + N] = len >>> 8;
  buf[at + N + 1] = len;
}

/**
 * The header of stream `stream`'s DATA frame with a body of `len` bytes, or
 * of its FIN when `len` is 0, written at `at` in `buf` (checked by
 * {@link checkData} before; the body follows it, here or in another buffer).
 */
export function dataHeader(buf: Uint8Array, at: number, stream: number, len: number): void {
  header(buf, len === 0 ? TYPE.FIN : TYPE.DATA, stream, len, at);
}

function checkU32(n: number, what: string, min: number): void {
  if (!Number.isInteger(n) || n < min || n > 0xffffffff) {
    throw new RangeError(`Cannot encode link frame: ${what} ${n} is outside ${min}..4294967295`);
  }
}

/** Throws unless `stream` and `data` (1..{@link LINK_MAX_DATA} bytes) make a DATA frame. */
export function checkData(stream: number, data: Uint8Array): void {
  checkU32(stream, "stream id", 1);
  if (data.length < 1 || data.length > LINK_MAX_DATA) {
    throw new RangeError(
      `Cannot encode link frame: DATA body of ${data.length} bytes is outside 1..${LINK_MAX_DATA}`,
    );
  }
}

export function encodeLinkFrame(f: LinkFrame): Uint8Array {
  if (f.type === "DATA") {
    checkData(f.stream, f.data);
    const buf = new Uint8Array(LINK_HEADER_SIZE + f.data.length);
    dataHeader(buf, 0, f.stream, f.data.length);
    buf.set(f.data, LINK_HEADER_SIZE);
    return buf;
  }
  checkU32(f.stream, "stream id", 1);
  if (f.type === "WINDOW") {
    checkU32(f.increment, "WINDOW increment", 1);
    const buf = new Uint8Array(LINK_HEADER_SIZE + WINDOW_SIZE);
    header(buf, TYPE.WINDOW, f.stream, WINDOW_SIZE);
    new DataView(buf.buffer).setUint32(LINK_HEADER_SIZE, f.increment);
    return buf;
  }
  const buf = new Uint8Array(LINK_HEADER_SIZE);
  header(buf, TYPE[f.type], f.stream, 0);
  return buf;
}

function fail(why: string): ProtocolError {
  return new ProtocolError("invalid_message", `Cannot parse link frame: ${why}`, { reply: false });
}

/**
 * Incremental link framing: bytes in, frames out. Like framer.ts, chunks are
 * kept in a list; a header is checked as soon as its 7 bytes are present
 * (before its body is needed), and a body that lies in one chunk is returned
 * as a `subarray` of it, so pushed chunks must not be modified afterwards.
 * After an error every call throws it again and pushes are ignored.
 */
export class LinkFramer {
  #chunks: Uint8Array[] = [];
  /** Offset into the first chunk. */
  #off = 0;
  #buffered = 0;
  #error: ProtocolError | null = null;
  readonly #scratch = new Uint8Array(LINK_HEADER_SIZE);
  /** Where the header {@link #header} returned starts in it. */
  #at = 0;

  /** Bytes held and not yet returned as frames. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): void {
    if (this.#error || chunk.length === 0) return;
    this.#buffered += chunk.length;
    const n = this.#chunks.length;
    const last = n > 0 ? this.#chunks[n - 1]! : null;
    // A chunk that goes on where the last one ends, in the same buffer (a
    // runtime reading into slabs, runtimes/node/slab_reads.ts), extends it:
    // a frame across both is then a subarray, not a copy. (byteOffset first:
    // it is 0 for most runtimes' chunks, and JavaScriptCore materialises a
    // view's buffer on first access.)
    if (
      last !== null && chunk.byteOffset > 0 &&
      chunk.byteOffset === last.byteOffset + last.length && chunk.buffer === last.buffer
    ) {
      this.#chunks[n - 1] = new Uint8Array(
        last.buffer,
        last.byteOffset,
        last.length + chunk.length,
      );
      return;
    }
    this.#chunks.push(chunk);
  }

  /** The next whole frame, or null until more bytes arrive. */
  next(): LinkFrame | null {
    if (this.#error) throw this.#error;
    if (this.#buffered < LINK_HEADER_SIZE) return null;
    const h = this.#header();
    const at = this.#at;
    const type = h[at + T]!;
    const s = at + S;
    const stream = ((h[s]! << 24) | (h[s + 1]! << 16) | (h[s + 2]! << 8) | h[s + 3]!) >>> 0;
    const len = (h[at + N]! << 8) | h[at + N + 1]!;
    const name = NAMES[type];
    let bad: string | null = null;
    if (name === undefined) bad = `unknown type ${type}`;
    else if (stream === 0) bad = `${name} on stream 0`;
    else if (name === "DATA" ? len === 0 : !(len >= BODY[type]![0] && len <= BODY[type]![1])) {
      bad = `${name} with a body of ${len} bytes`;
    }
    if (bad !== null) {
      this.#error = fail(bad);
      this.#chunks = [];
      this.#buffered = 0;
      throw this.#error;
    }
    if (this.#buffered < LINK_HEADER_SIZE + len) return null;
    this.#skip(LINK_HEADER_SIZE);
    switch (name) {
      case "DATA":
        return { type: name, stream, data: this.#take(len) };
      case "WINDOW": {
        const b = this.#take(WINDOW_SIZE);
        const increment = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
        if (increment === 0) {
          this.#error = fail("WINDOW increment 0");
          this.#chunks = [];
          this.#buffered = 0;
          throw this.#error;
        }
        return { type: name, stream, increment };
      }
      default:
        return { type: name!, stream };
    }
  }

  /**
   * Where the next header's 7 bytes are (7 ≤ buffered), without consuming
   * them: the first chunk at the current offset, or, when the header spans
   * chunks, a scratch copy; the offset in it is left in `#at`. No
   * allocation per frame (a flood of small frames makes no garbage here).
   */
  #header(): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length - this.#off >= LINK_HEADER_SIZE) {
      this.#at = this.#off;
      return first;
    }
    let got = 0;
    let off = this.#off;
    for (const c of this.#chunks) {
      const part = c.subarray(off, Math.min(c.length, off + LINK_HEADER_SIZE - got));
      this.#scratch.set(part, got);
      got += part.length;
      off = 0;
      if (got === LINK_HEADER_SIZE) break;
    }
    this.#at = 0;
    return this.#scratch;
  }

  /** Consume `n` bytes (n ≤ buffered) without returning them. */
  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[0]!;
      const step = Math.min(n, c.length - this.#off);
      this.#off += step;
      n -= step;
      if (this.#off === c.length) {
        this.#chunks.shift();
        this.#off = 0;
      }
    }
  }

  /** Consume `n` bytes (n ≤ buffered): a subarray when they lie in one chunk, else one copy. */
  #take(n: number): Uint8Array {
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    const avail = first.length - this.#off;
    if (avail >= n) {
      const out = first.subarray(this.#off, this.#off + n);
      this.#off += n;
      if (this.#off === first.length) {
        this.#chunks.shift();
        this.#off = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = this.#chunks[0]!;
      const part = c.subarray(this.#off, Math.min(c.length, this.#off + n - got));
      out.set(part, got);
      got += part.length;
      this.#off += part.length;
      if (this.#off === c.length) {
        this.#chunks.shift();
        this.#off = 0;
      }
    }
    return out;
  }
}
