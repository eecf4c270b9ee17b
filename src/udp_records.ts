/**
 * Datagram records (SPEC.md §2.5, spec/udp_record.ksy): the bytes of a UDP
 * association's stream, one record per datagram, `len_body` (u2), then the
 * address (§5.1) and the payload. {@link encodeUdpRecord} writes one;
 * {@link UdpRecordReader} reads them incrementally from a stream's chunks,
 * checking `len_body` from its 2 bytes before it holds the body, and parsing
 * the body with the parser generated from the .ksy. Every violation is a
 * {@link ProtocolError} (`invalid_message`, no reply: the stream is reset).
 *
 * @module
 */
import { UdpRecord } from "../generated/UdpRecord.js";
import { Valid } from "../generated/messages.ts";
import { ProtocolError } from "./errors.ts";
import { addrTarget, describeError, kaitaiStream } from "./kaitai.ts";
import type { Target } from "./messages.ts";
import { UDP_MAX_PAYLOAD } from "./net.ts";
import { writeAddr, writer } from "./writer.ts";

/** The smallest record body: a one-byte name and no data (spec/udp_record.ksy). */
export const UDP_RECORD_MIN_BODY: number = Valid["udp_record"].lenBody.min;
/** The largest record body: 65507 bytes of data after an IPv6 address. */
export const UDP_RECORD_MAX_BODY: number = Valid["udp_record"].lenBody.max;

/** One datagram: toward the agent its target, toward the client its source. */
export interface UdpRecordValue {
  addr: Target;
  data: Uint8Array;
}

/**
 * The record of one datagram (a fresh buffer). RangeError when `data` is
 * over 65507 bytes or the body over {@link UDP_RECORD_MAX_BODY}; what
 * `writeAddr` throws for a bad address.
 */
export function encodeUdpRecord(addr: Target, data: Uint8Array): Uint8Array {
  if (data.length > UDP_MAX_PAYLOAD) {
    throw new RangeError(
      `udpRecord.data: ${data.length} bytes exceed the limit of ${UDP_MAX_PAYLOAD}`,
    );
  }
  const w = writer();
  w.u16(0, "udpRecord.lenBody");
  writeAddr(w, addr, "udpRecord.addr");
  const head = w.finish();
  const body = head.length - 2 + data.length;
  if (body > UDP_RECORD_MAX_BODY) {
    throw new RangeError(
      `udpRecord: a body of ${body} bytes exceeds the limit of ${UDP_RECORD_MAX_BODY}`,
    );
  }
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out[0] = body >> 8;
  out[1] = body & 0xff;
  out.set(data, head.length);
  return out;
}

const invalid = (why: string, cause?: unknown) =>
  new ProtocolError("invalid_message", `Cannot parse datagram record: ${why}`, {
    reply: false,
    ...(cause === undefined ? {} : { cause }),
  });

/**
 * One whole record (`len_body` and body, nothing after it) parsed by the
 * generated parser; ProtocolError otherwise. The data is a view of `bytes`.
 */
export function parseUdpRecord(bytes: Uint8Array): UdpRecordValue {
  if (bytes.length < 2) throw invalid(`truncated (${bytes.length} bytes)`);
  const len = (bytes[0]! << 8) | bytes[1]!;
  checkLength(len);
  if (bytes.length !== 2 + len) {
    throw invalid(`${bytes.length} bytes for a record of ${2 + len}`);
  }
  let addr: Target;
  let at: number;
  try {
    const io = kaitaiStream(bytes);
    const r = new UdpRecord(io);
    addr = addrTarget(r.body.addr);
    at = bytes.length - r.body.data.length;
  } catch (e) {
    throw invalid(describeError(e), e);
  }
  return { addr, data: bytes.subarray(at) };
}

function checkLength(len: number): void {
  if (len < UDP_RECORD_MIN_BODY || len > UDP_RECORD_MAX_BODY) {
    throw invalid(
      `a body of ${len} bytes is outside ${UDP_RECORD_MIN_BODY}..${UDP_RECORD_MAX_BODY}`,
    );
  }
}

/**
 * Records from a stream's chunks: {@link push} bytes, {@link next} until it
 * returns null. At most one record (65528 bytes) plus one chunk is held.
 * After an error every call throws it again and pushes are ignored. Pushed
 * chunks must not be modified afterwards (a record inside one chunk is a
 * view of it).
 */
export class UdpRecordReader {
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #error: ProtocolError | null = null;

  /** Bytes held and not yet returned as records. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): void {
    if (this.#error || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next whole record, or null until more bytes arrive. */
  next(): UdpRecordValue | null {
    if (this.#error) throw this.#error;
    if (this.#buffered < 2) return null;
    const first = this.#chunks[0]!;
    const hi = first[0]!;
    const lo = first.length > 1 ? first[1]! : this.#chunks[1]![0]!;
    const len = (hi << 8) | lo;
    try {
      checkLength(len);
      if (this.#buffered < 2 + len) return null;
      return parseUdpRecord(this.#take(2 + len));
    } catch (e) {
      this.#error = e instanceof ProtocolError ? e : invalid(describeError(e), e);
      this.#chunks = [];
      this.#buffered = 0;
      throw this.#error;
    }
  }

  /** The next `n` bytes (n ≤ buffered): a view when they lie in one chunk, else a copy. */
  #take(n: number): Uint8Array {
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = this.#chunks[0]!;
      const step = Math.min(n - got, c.length);
      out.set(c.subarray(0, step), got);
      got += step;
      if (step === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(step);
    }
    return out;
  }
}
