/**
 * Incremental framing (SPEC.md §3): bytes in, whole frames out.
 *
 * ```ts
 * const framer = new Framer();
 * for (;;) {
 *   const chunk = await conn.read();
 *   if (chunk === null) break;           // EOF; framer.buffered > 0 = truncated frame
 *   framer.push(chunk);
 *   let f;
 *   while ((f = framer.next()) !== null) handle(decode(f));
 * }
 * const raw = framer.rest();             // switching to the raw phase
 * ```
 *
 * Pushed chunks are kept in a list and never re-concatenated: the 12 header
 * bytes are validated as soon as they are present, before anything of the
 * payload is needed, and a frame is copied exactly once, into a buffer of its
 * exact size, when its last byte has arrived. A frame that lies entirely in
 * one chunk is returned as a `subarray` of that chunk, without copying, so
 * callers must not modify a chunk after pushing it (what `Conn.read()`
 * returns belongs to the caller, so that holds by construction).
 *
 * Header checks, in this order (SPEC.md §3), each a {@link ProtocolError}
 * thrown by {@link Framer.next}:
 *
 * | condition                        | code                        |
 * |----------------------------------|-----------------------------|
 * | magic ≠ `BRRW`                   | `bad_magic`                 |
 * | framing version ≠ 1              | `unsupported_frame_version` |
 * | flags ≠ 0                        | `invalid_message`           |
 * | payload length > MAX_PAYLOAD     | `frame_too_large`           |
 * | type 0x00–0x7F not in §9.1       | `unknown_type`              |
 * | length outside the type's sizes  | `invalid_message`           |
 *
 * Types 0x80–0xFF pass (the decoder skips them). Messages read
 * `Cannot parse frame: …`. After an error the framer drops everything it
 * holds, ignores further pushes, and `next()` throws the same error again:
 * nothing beyond the bad header is ever buffered.
 *
 * This is the one header check of a frame: `decode` (decode.ts) trusts the
 * header of a frame that {@link Framer.next} returned and parses only its
 * payload.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import { type ErrorCodeName, Layout, Limits, MsgType } from "./messages.ts";

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(MsgType));
/** The header layout of spec/frame.ksy. */
const H = Layout["frame::header"];
/** The smallest and largest payload of each message type, from its payload type in spec/*.ksy. */
const SIZES: Readonly<Record<number, readonly [number, number]>> = Layout.frame.payloadSizes;

/** First type of the optional-extension range (SPEC.md §3, §9.1). */
const FIRST_EXTENSION_TYPE = 0x80;

const hex = (n: number, digits: number) => `0x${n.toString(16).padStart(digits, "0")}`;

function fail(code: ErrorCodeName, why: string): ProtocolError {
  return new ProtocolError(code, `Cannot parse frame: ${why}`);
}

/**
 * Validate the 12-byte frame header at `offset` of `buf` (which must hold at
 * least 12 bytes from there) and return its type and payload length. This is
 * the only check of a frame header: `decode` trusts a frame the framer
 * returned. Throws {@link ProtocolError} as described in the module doc.
 */
export function checkHeader(buf: Uint8Array, offset = 0): { type: number; length: number } {
  if (buf.length - offset < Limits.HEADER_SIZE) {
    throw fail(
      "invalid_message",
      `header is ${buf.length - offset} bytes, expected ${Limits.HEADER_SIZE}`,
    );
  }
  if (
    buf[offset] !== 0x42 || buf[offset + 1] !== 0x52 || buf[offset + 2] !== 0x52 ||
    buf[offset + 3] !== 0x57
  ) {
    const got = Array.from(buf.subarray(offset, offset + 4), (x) => x.toString(16).padStart(2, "0"))
      .join(" ");
    throw fail("bad_magic", `bad magic ${got}, expected 42 52 52 57 ("BRRW")`);
  }
  const version = buf[offset + H.frameVersion.offset]!;
  if (version !== 1) throw fail("unsupported_frame_version", `framing version ${version} is not 1`);
  const type = buf[offset + H.msgType.offset]!;
  const flags = (buf[offset + H.flags.offset]! << 8) | buf[offset + H.flags.offset + 1]!;
  if (flags !== 0) throw fail("invalid_message", `flags ${hex(flags, 4)} are not 0`);
  const at = offset + H.lenPayload.offset;
  const length = buf[at]! * 0x1000000 + (buf[at + 1]! << 16) + (buf[at + 2]! << 8) + buf[at + 3]!;
  if (length > Limits.MAX_PAYLOAD) {
    throw fail("frame_too_large", `payload length ${length} exceeds ${Limits.MAX_PAYLOAD}`);
  }
  if (type < FIRST_EXTENSION_TYPE && !KNOWN_TYPES.has(type)) {
    throw fail("unknown_type", `unknown message type ${hex(type, 2)}`);
  }
  const sizes = SIZES[type];
  if (sizes !== undefined && (length < sizes[0] || length > sizes[1])) {
    const want = sizes[0] === sizes[1] ? `${sizes[0]}` : `${sizes[0]}..${sizes[1]}`;
    throw fail(
      "invalid_message",
      `payload length ${length} of type ${hex(type, 2)} is not ${want}`,
    );
  }
  return { type, length };
}

const EMPTY = new Uint8Array(0);

/** Splits a byte stream into frames. See the module doc. */
export class Framer {
  /** Pushed chunks; the live ones are `#chunks[#head..]`. */
  #chunks: Uint8Array[] = [];
  #head = 0;
  /** Bytes of `#chunks[#head]` already consumed. */
  #off = 0;
  /** Bytes buffered and not yet returned. */
  #size = 0;
  /** Whole length (header + payload) of the frame whose header passed, or -1. */
  #need = -1;
  #error: ProtocolError | null = null;
  #hdr = new Uint8Array(Limits.HEADER_SIZE);

  /** Bytes buffered and not yet returned as frames. */
  get buffered(): number {
    return this.#size;
  }

  /** Add bytes from the stream. Never throws; ignored after an error. */
  push(chunk: Uint8Array): void {
    if (this.#error || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /**
   * The next whole frame (header and payload, one contiguous `Uint8Array`),
   * or `null` if it has not fully arrived. Throws {@link ProtocolError} as
   * soon as a complete header is invalid.
   */
  next(): Uint8Array | null {
    if (this.#error) throw this.#error;
    if (this.#need < 0) {
      if (this.#size < Limits.HEADER_SIZE) return null;
      try {
        this.#need = Limits.HEADER_SIZE + checkHeader(this.#peekHeader()).length;
      } catch (e) {
        this.#error = e as ProtocolError;
        this.#clear();
        throw e;
      }
    }
    if (this.#size < this.#need) return null;
    const n = this.#need;
    this.#need = -1;
    return this.#take(n);
  }

  /**
   * Remove and return every buffered byte not yet returned by {@link next},
   * including a partial frame, e.g. to switch the connection to the raw phase.
   * Empty if nothing is buffered. Not copied when it lies in one chunk.
   */
  rest(): Uint8Array {
    const out = this.#size === 0 ? EMPTY : this.#take(this.#size);
    this.#clear();
    return out;
  }

  #clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#off = 0;
    this.#size = 0;
    this.#need = -1;
  }

  /** The 12 header bytes at the front: a view if they are in one chunk, else a copy into #hdr. */
  #peekHeader(): Uint8Array {
    const first = this.#chunks[this.#head]!;
    const H = Limits.HEADER_SIZE;
    if (first.length - this.#off >= H) return first.subarray(this.#off, this.#off + H);
    let got = 0;
    for (let i = this.#head, off = this.#off; got < H; i++, off = 0) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length - off, H - got);
      this.#hdr.set(c.subarray(off, off + k), got);
      got += k;
    }
    return this.#hdr;
  }

  /** Remove `n` (≤ #size) bytes from the front. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[this.#head]!;
    let out: Uint8Array;
    if (first.length - this.#off >= n) {
      out = first.subarray(this.#off, this.#off + n);
      this.#off += n;
      if (this.#off === first.length) this.#dropHead();
    } else {
      out = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const c = this.#chunks[this.#head]!;
        const k = Math.min(c.length - this.#off, n - got);
        out.set(c.subarray(this.#off, this.#off + k), got);
        got += k;
        this.#off += k;
        if (this.#off === c.length) this.#dropHead();
      }
    }
    this.#size -= n;
    return out;
  }

  #dropHead(): void {
    this.#chunks[this.#head] = EMPTY; // let it be collected
    this.#head++;
    this.#off = 0;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
