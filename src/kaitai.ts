/**
 * Glue between src/ and the parsers that scripts/gen.ts generates from
 * spec/*.ksy into generated/ (which run on the `kaitai-struct` runtime):
 * a stream over exact bytes, a description of whatever a generated parser
 * throws, the UTF-8 text of the byte fields the .ksy files document as
 * UTF-8, and the {@link Target} of a parsed address. Used by decode.ts
 * (frames) and socks5_decode.ts (SOCKS5).
 *
 * The .ksy files declare text as plain byte fields (`size: len_x`, no
 * `type: str`), so the generated parsers never decode text themselves: the
 * runtime's `KaitaiStream.bytesToStr` is lenient (invalid bytes become
 * U+FFFD) and drops a leading BOM, which would let distinct wire bytes
 * decode to the same message. Callers decode with {@link utf8} (strict) or
 * {@link utf8Lenient} instead, field by field.
 *
 * @module
 */
import KaitaiStreamModule from "kaitai-struct/KaitaiStream.js";
import { Addr } from "../generated/Addr.js";
import type { KaitaiStream } from "../generated/Frame.js";
import { formatIPv4, formatIPv6 } from "./ip.ts";
import type { Target } from "./messages.ts";

export type { KaitaiStream };

/** What this module uses of the runtime class `KaitaiStream`. */
interface KaitaiRuntime {
  new (data: DataView): KaitaiStream;
  readonly EOFError: abstract new (...args: never[]) => Error;
}

/**
 * The Kaitai Struct runtime class. `kaitai-struct/KaitaiStream.js` is
 * CommonJS (`module.exports = KaitaiStream`), so its default import is the
 * class in Node, Deno and Bun alike; its bundled typings, however, declare
 * an ES default export, which Deno (applying Node's CommonJS rules) types as
 * the module object. Hence the cast to the interface above.
 */
const Runtime = KaitaiStreamModule as unknown as KaitaiRuntime;

/** A Kaitai stream over exactly the bytes of `bytes` (not the rest of its buffer). */
export function kaitaiStream(bytes: Uint8Array): KaitaiStream {
  // Copy when the view is not over a plain ArrayBuffer (SharedArrayBuffer):
  // TextDecoder refuses shared memory, and byte fields are views of it.
  const own = bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice();
  return new Runtime(new DataView(own.buffer, own.byteOffset, own.byteLength));
}

/** A byte field documented as UTF-8 that is not valid UTF-8 (thrown by {@link utf8}). */
export class Utf8Error extends Error {
  override name = "Utf8Error";
}

/** UTF-8 as SPEC.md §5 requires it: invalid sequences fail, a BOM is kept as U+FEFF. */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Never fails (invalid bytes become U+FFFD) and keeps a leading BOM: for
 * fields that may hold any octets, such as RFC 1929 user names and passwords.
 */
const LENIENT_UTF8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * The text of byte field `field`, which must be valid UTF-8 (a leading BOM
 * is kept as U+FEFF). Throws {@link Utf8Error} naming the field.
 */
export function utf8(bytes: Uint8Array, field: string): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch (err) {
    throw new Utf8Error(`${field} is not valid UTF-8`, { cause: err });
  }
}

const NAME_RE = /^[A-Za-z0-9._-]*$/;

/**
 * An agent or client name (SPEC.md §10): UTF-8 of `A-Z a-z 0-9 . _ -`, at
 * `min`..`max` bytes (the parser has checked the maximum). Throws naming `field`.
 */
export function nameText(bytes: Uint8Array, field: string, min: number, max: number): string {
  const s = utf8(bytes, field);
  if (s.length < min || !NAME_RE.test(s)) {
    throw new Error(
      `${field} ${JSON.stringify(s)} is not ${min}..${max} bytes of A-Z a-z 0-9 . _ -`,
    );
  }
  return s;
}

/** The text of a byte field that may hold any octets; see {@link LENIENT_UTF8}. */
export function utf8Lenient(bytes: Uint8Array): string {
  return LENIENT_UTF8.decode(bytes);
}

/**
 * A short description of anything thrown by a generated parser (or by
 * {@link utf8}), for a `Cannot parse …: <description>` message.
 */
export function describeError(err: unknown): string {
  if (err instanceof Runtime.EOFError) return `truncated (${err.message})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The {@link Target} of a parsed SPEC.md §5.1 address; a domain name must be
 * valid UTF-8 (it is passed on to the agent, and a lossy decode would make it
 * dial something else). Throws {@link Utf8Error} otherwise.
 */
export function addrTarget(addr: Addr): Target {
  const host = addr.host;
  if (host instanceof Addr.Ipv4Host) {
    return { type: "ipv4", host: formatIPv4(host.addr), port: addr.port };
  }
  if (host instanceof Addr.Ipv6Host) {
    return { type: "ipv6", host: formatIPv6(host.addr), port: addr.port };
  }
  if (host instanceof Addr.DomainHost) {
    return { type: "domain", host: utf8(host.name, "domain name"), port: addr.port };
  }
  // Unreachable: spec/addr.ksy validates atyp against the enum.
  throw new Error(`address type ${addr.atyp} has no host`);
}
