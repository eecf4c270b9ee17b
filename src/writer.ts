/**
 * The byte writer under every encoder (encode.ts, socks5_encode.ts): a
 * growable big-endian buffer whose writes check their value and name the
 * field in the error (`RangeError` for a value out of range, `TypeError` for
 * a value of the wrong type), and the SOCKS5-layout address both protocols
 * share (SPEC.md §5.1).
 *
 * @module
 */
import { AddrType } from "../generated/enums.ts";
import { formatIPv4, parseIPv4, parseIPv6 } from "./ip.ts";
import { Limits, type Target } from "./messages.ts";

const LONE_SURROGATE = /\p{Cs}/u;
const UTF8 = new TextEncoder();
const INITIAL = 1024;
const KEEP = 64 * 1024;

/**
 * A growable big-endian byte writer. {@link encode} uses one shared instance;
 * other encoders (SOCKS5) create their own or share it via {@link writer}.
 * All writes check their argument and throw `RangeError`/`TypeError` naming
 * `field`.
 */
export class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(size = INITIAL) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Forget what was written; drop a scratch buffer that grew very large. */
  reset(): this {
    this.pos = 0;
    if (this.buf.length > KEEP) {
      this.buf = new Uint8Array(INITIAL);
      this.view = new DataView(this.buf.buffer);
    }
    return this;
  }

  u8(v: number, field: string): this {
    uint(v, 0xff, field);
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number, field: string): this {
    uint(v, 0xffff, field);
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number, field: string): this {
    uint(v, 0xffffffff, field);
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }

  /** Raw bytes; `size` (if given) is the exact length required. */
  bytes(b: Uint8Array, field: string, size?: number): this {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${field}: must be a Uint8Array`);
    if (size !== undefined && b.length !== size) {
      throw new RangeError(`${field}: must be exactly ${size} bytes, got ${b.length}`);
    }
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Bytes preceded by their length as u1 (`prefix` 1) or u2 (`prefix` 2). */
  lenBytes(b: Uint8Array, prefix: 1 | 2, min: number, max: number, field: string): this {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${field}: must be a Uint8Array`);
    if (b.length < min || b.length > max) {
      throw new RangeError(`${field}: must be ${min}..${max} bytes, got ${b.length}`);
    }
    if (prefix === 1) this.u8(b.length, field);
    else this.u16(b.length, field);
    return this.bytes(b, field);
  }

  /** Skip `n` bytes to be filled in later with {@link fill}; returns where they are. */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** Write `v` as a `size`-byte unsigned integer at `at` (a length, after the data it counts). */
  fill(at: number, size: number, v: number): void {
    if (size === 1) this.buf[at] = v;
    else if (size === 2) this.view.setUint16(at, v);
    else this.view.setUint32(at, v);
  }

  /** Raw bytes of `min`..`max` bytes; returns their number. */
  sized(b: Uint8Array, min: number, max: number, field: string): number {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${field}: must be a Uint8Array`);
    if (b.length < min || b.length > max) {
      throw new RangeError(`${field}: must be ${min}..${max} bytes, got ${b.length}`);
    }
    this.bytes(b, field);
    return b.length;
  }

  /** `s` as UTF-8 of `min`..`max` bytes, encoded in place; returns the number of bytes. */
  utf8(s: string, min: number, max: number, field: string): number {
    if (typeof s !== "string") throw new TypeError(`${field}: must be a string`);
    if (LONE_SURROGATE.test(s)) {
      throw new TypeError(`${field}: contains a lone surrogate (not valid UTF-16)`);
    }
    // Every UTF-16 unit is at least one UTF-8 byte: reject early, before sizing.
    if (s.length > max) {
      throw new RangeError(`${field}: must be ${min}..${max} bytes, got at least ${s.length}`);
    }
    this.ensure(s.length * 3);
    const { written } = UTF8.encodeInto(s, this.buf.subarray(this.pos));
    if (written < min || written > max) {
      throw new RangeError(`${field}: must be ${min}..${max} bytes, got ${written}`);
    }
    this.pos += written;
    return written;
  }

  /**
   * A UTF-8 string preceded by its byte length as u1 or u2, the length
   * back-filled after encoding in place (no intermediate buffer).
   */
  str(s: string, prefix: 1 | 2, min: number, max: number, field: string): this {
    const at = this.reserve(prefix);
    this.fill(at, prefix, this.utf8(s, min, max, field));
    return this;
  }

  /** A copy of everything written, exactly sized. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function uint(v: number, max: number, field: string): void {
  if (typeof v !== "number") throw new TypeError(`${field}: must be a number, got ${typeof v}`);
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${field}: must be an integer in 0..${max}, got ${v}`);
  }
}

const NAME_RE = /^[A-Za-z0-9._-]*$/;

/** An agent or client name (SPEC.md §10): `min`..`max` bytes of `A-Z a-z 0-9 . _ -`. */
export function checkName(s: string, min: number, max: number, field: string): void {
  if (typeof s !== "string") throw new TypeError(`${field}: must be a string`);
  if (s.length < min || s.length > max || !NAME_RE.test(s)) {
    const shown = JSON.stringify(s.length > 80 ? s.slice(0, 80) + "..." : s);
    throw new RangeError(
      `${field}: must be ${min}..${max} bytes of A-Z a-z 0-9 . _ -, got ${shown}`,
    );
  }
}

const shared = new Writer();

/** The module's shared writer, reset. Synchronous use only; copy out with `finish()`. */
export function writer(): Writer {
  return shared.reset();
}

/** The bytes of IP text `s`, or a RangeError naming `field`. */
export function ipBytes(
  parse: (s: string) => Uint8Array | null,
  s: string,
  fam: string,
  field: string,
): Uint8Array {
  if (typeof s !== "string") throw new TypeError(`${field}: must be a string`);
  const b = parse(s);
  if (!b) throw new RangeError(`${field}: ${JSON.stringify(s)} is not an ${fam} address`);
  return b;
}

/**
 * Write a SOCKS5-layout address (SPEC.md §5.1): atyp, body, port. Shared by
 * the frame encoders and the SOCKS5 encoders. `strict` = false allows an empty
 * domain.
 */
export function writeAddr(w: Writer, t: Target, field = "target", strict = true): void {
  if (t === null || typeof t !== "object") throw new TypeError(`${field}: must be an object`);
  switch (t.type) {
    case "ipv4":
      w.u8(AddrType.ipv4, `${field}.type`);
      w.bytes(ipBytes(parseIPv4, t.host, "IPv4", `${field}.host`), `${field}.host`);
      break;
    case "domain":
      w.u8(AddrType.domain, `${field}.type`);
      w.str(t.host, 1, strict ? 1 : 0, Limits.MAX_HOST, `${field}.host`);
      break;
    case "ipv6":
      w.u8(AddrType.ipv6, `${field}.type`);
      w.bytes(ipBytes(parseIPv6, t.host, "IPv6", `${field}.host`), `${field}.host`);
      break;
    default:
      throw new TypeError(
        `${field}.type: unknown address type ${JSON.stringify((t as { type: unknown }).type)}`,
      );
  }
  w.u16(t.port, `${field}.port`);
}

/** The bytes of one address (atyp, body, port), SPEC.md §5.1. */
export function encodeAddr(t: Target): Uint8Array {
  const w = writer();
  writeAddr(w, t, "addr");
  return w.finish();
}

/** IPv4 0.0.0.0:0, the `bound` address when nothing is connected (SPEC.md §5.14). */
export const NO_ADDR: Readonly<Target> = Object.freeze({
  type: "ipv4",
  host: formatIPv4(new Uint8Array(4)),
  port: 0,
});
