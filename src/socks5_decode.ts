/**
 * Incremental parsers for the SOCKS5 subset of SPEC.md §8 (RFC 1928,
 * RFC 1929, and RFC 1928 §7's UDP header), both directions, on top of the
 * parsers that scripts/gen.ts
 * generates from spec/socks5_*.ksy. Encoders are in socks5_encode.ts.
 *
 * Each `parseX(buf)` looks at the start of `buf` and returns
 * `{ value, size }` once a whole message is there (`size` bytes of it; the
 * rest belongs to what follows), or `null` when more bytes are needed. The
 * needed length is worked out from the bytes seen so far before the generated
 * parser runs, checking the version byte first, so garbage fails on its first
 * byte instead of waiting for more input.
 *
 * They throw only {@link SocksError}: `bad_version` (wrong `ver`),
 * `no_methods` (a greeting with zero methods), `bad_address_type` (unknown
 * `atyp`), `fragment` (a UDP datagram with FRAG ≠ 0, to be dropped and
 * counted), `bad_domain` (a domain name that is not valid UTF-8: the message
 * is well-formed, so the server answers it) and `invalid_message` (anything
 * else malformed, e.g. an empty password or a non-zero reserved byte). An
 * empty user name is taken (SPEC.md §8: an issued token names the client).
 *
 * Text: a domain name must be valid UTF-8 (it is passed on to the agent, and
 * a lossy decode would make it dial something else); RFC 1929 user names and
 * passwords may be any octets and are decoded leniently. See kaitai.ts.
 *
 * @module
 */
import { Socks5Greeting } from "../generated/Socks5Greeting.js";
import { Socks5MethodSelection } from "../generated/Socks5MethodSelection.js";
import { Socks5Reply } from "../generated/Socks5Reply.js";
import { Socks5Request } from "../generated/Socks5Request.js";
import { Socks5UdpDatagram } from "../generated/Socks5UdpDatagram.js";
import { Socks5UserpassReply } from "../generated/Socks5UserpassReply.js";
import { Socks5UserpassRequest } from "../generated/Socks5UserpassRequest.js";
import { AddrType, SocksVersion } from "../generated/enums.ts";
import { SocksError } from "./errors.ts";
import { addrTarget, describeError, kaitaiStream, Utf8Error, utf8Lenient } from "./kaitai.ts";
import type { Target } from "./messages.ts";
import { UDP_MAX_PAYLOAD } from "./net.ts";

/** RFC 1928 greeting (client → server). */
export interface Greeting {
  /** Offered methods, in order; at least one. 0x02 is user/password. */
  methods: number[];
}

/** RFC 1928 method selection (server → client). */
export interface MethodSelection {
  /** The chosen method; 0xFF = no acceptable method. */
  method: number;
}

/** RFC 1929 user/password request (client → server). */
export interface UserpassRequest {
  /** `client` or `client@agent` (SPEC.md §7.1). */
  username: string;
  /** The client's token. */
  password: string;
}

/** RFC 1929 user/password reply (server → client). */
export interface UserpassReply {
  /** 0 = success; anything else is a failure. */
  status: number;
}

/** RFC 1928 request (client → server). */
export interface Request {
  /** 1 = CONNECT, 2 = BIND, 3 = UDP ASSOCIATE. */
  command: number;
  target: Target;
}

/** RFC 1928 reply (server → client). */
export interface Reply {
  /** A SPEC.md §9.3 status code. */
  reply: number;
  bound: Target;
}

/** RFC 1928 §7 UDP datagram (client ↔ UDP relay): the header and the data. */
export interface UdpDatagram {
  /** From the client: where `data` goes; from the relay: where it came from. */
  target: Target;
  /** A view of the parsed datagram's bytes (no copy). */
  data: Uint8Array;
}

/** What every parser returns: a whole message and its size, or `null` for "need more bytes". */
export type Parsed<T> = { value: T; size: number } | null;

function checkVersion(what: string, buf: Uint8Array, want: number): void {
  const ver = buf[0];
  if (ver !== undefined && ver !== want) {
    throw new SocksError(
      "bad_version",
      `Cannot parse SOCKS5 ${what}: version ${ver} is not ${want}`,
    );
  }
}

/** Runs a generated parser over exactly `size` bytes and converts its result. */
function run<P, T>(
  what: string,
  buf: Uint8Array,
  size: number,
  parse: (bytes: Uint8Array) => P,
  convert: (parsed: P) => T,
): Parsed<T> {
  let value: T;
  try {
    value = convert(parse(size === buf.length ? buf : buf.subarray(0, size)));
  } catch (err) {
    if (err instanceof SocksError) throw err;
    // Only a domain name is strict UTF-8: the message is well-formed, its target unusable.
    const code = err instanceof Utf8Error ? "bad_domain" : "invalid_message";
    throw new SocksError(code, `Cannot parse SOCKS5 ${what}: ${describeError(err)}`, {
      cause: err,
    });
  }
  return { value, size };
}

/**
 * Size of the address (SPEC.md §5.1) that starts at `buf[at]`, or `null`
 * when more bytes are needed to know it.
 */
function addrSize(what: string, buf: Uint8Array, at: number): number | null {
  const atyp = buf[at];
  if (atyp === undefined) return null;
  switch (atyp) {
    case AddrType.ipv4:
      return 1 + 4 + 2;
    case AddrType.ipv6:
      return 1 + 16 + 2;
    case AddrType.domain: {
      const len = buf[at + 1];
      if (len === undefined) return null;
      if (len === 0) {
        throw new SocksError("invalid_message", `Cannot parse SOCKS5 ${what}: empty domain name`);
      }
      return 1 + 1 + len + 2;
    }
    default:
      throw new SocksError(
        "bad_address_type",
        `Cannot parse SOCKS5 ${what}: unknown address type ${atyp}`,
      );
  }
}

/** `ver rep/cmd rsv addr`: the common layout of request and reply. */
function requestSize(what: string, buf: Uint8Array): number | null {
  checkVersion(what, buf, SocksVersion.socks5);
  const rsv = buf[2];
  if (rsv === undefined) return null;
  if (rsv !== 0) {
    throw new SocksError(
      "invalid_message",
      `Cannot parse SOCKS5 ${what}: reserved byte is ${rsv}, not 0`,
    );
  }
  const a = addrSize(what, buf, 3);
  if (a === null) return null;
  const size = 3 + a;
  return buf.length >= size ? size : null;
}

/** RFC 1928 §3 greeting: `05 nmethods methods...`. */
export function parseGreeting(buf: Uint8Array): Parsed<Greeting> {
  const what = "greeting";
  checkVersion(what, buf, SocksVersion.socks5);
  const n = buf[1];
  if (n === undefined) return null;
  if (n === 0) {
    throw new SocksError("no_methods", `Cannot parse SOCKS5 ${what}: no methods offered`);
  }
  const size = 2 + n;
  if (buf.length < size) return null;
  return run(
    what,
    buf,
    size,
    (b) => new Socks5Greeting(kaitaiStream(b)),
    (p) => ({ methods: [...p.methods] }),
  );
}

/** RFC 1928 §3 method selection: `05 method`. */
export function parseMethodSelection(buf: Uint8Array): Parsed<MethodSelection> {
  const what = "method selection";
  checkVersion(what, buf, SocksVersion.socks5);
  if (buf.length < 2) return null;
  return run(
    what,
    buf,
    2,
    (b) => new Socks5MethodSelection(kaitaiStream(b)),
    (p) => ({ method: p.method }),
  );
}

/** RFC 1929 §2 request: `01 ulen uname plen passwd`. */
export function parseUserpassRequest(buf: Uint8Array): Parsed<UserpassRequest> {
  const what = "user/password request";
  checkVersion(what, buf, SocksVersion.userpass);
  const ulen = buf[1];
  if (ulen === undefined) return null;
  const plen = buf[2 + ulen];
  if (plen === undefined) return null;
  if (plen === 0) {
    throw new SocksError("invalid_message", `Cannot parse SOCKS5 ${what}: empty password`);
  }
  const size = 3 + ulen + plen;
  if (buf.length < size) return null;
  return run(
    what,
    buf,
    size,
    (b) => new Socks5UserpassRequest(kaitaiStream(b)),
    // RFC 1929 allows any octets: decoded leniently, never failing (U+FFFD
    // matches no configured name or token), a leading BOM kept.
    (p) => ({ username: utf8Lenient(p.uname), password: utf8Lenient(p.passwd) }),
  );
}

/** RFC 1929 §2 reply: `01 status`. */
export function parseUserpassReply(buf: Uint8Array): Parsed<UserpassReply> {
  const what = "user/password reply";
  checkVersion(what, buf, SocksVersion.userpass);
  if (buf.length < 2) return null;
  return run(
    what,
    buf,
    2,
    (b) => new Socks5UserpassReply(kaitaiStream(b)),
    (p) => ({ status: p.status }),
  );
}

/** RFC 1928 §4 request: `05 cmd 00 addr`. */
export function parseRequest(buf: Uint8Array): Parsed<Request> {
  const what = "request";
  const size = requestSize(what, buf);
  if (size === null) return null;
  return run(
    what,
    buf,
    size,
    (b) => new Socks5Request(kaitaiStream(b)),
    (p) => ({ command: p.command, target: addrTarget(p.target) }),
  );
}

/** RFC 1928 §6 reply: `05 rep 00 addr`. */
export function parseReply(buf: Uint8Array): Parsed<Reply> {
  const what = "reply";
  const size = requestSize(what, buf);
  if (size === null) return null;
  return run(
    what,
    buf,
    size,
    (b) => new Socks5Reply(kaitaiStream(b)),
    (p) => ({ reply: p.reply, bound: addrTarget(p.bound) }),
  );
}

/**
 * RFC 1928 §7 UDP datagram: `00 00 frag addr data`, the whole of `buf` (a
 * datagram is never partial, so there is no "need more"). Throws
 * {@link SocksError}: `fragment` when FRAG ≠ 0 (the caller drops and
 * counts it; the rest is not parsed), `invalid_message` for more than
 * {@link UDP_MAX_PAYLOAD} bytes (checked first), a non-zero RSV or a
 * truncated header, `bad_address_type`, `bad_domain`.
 */
export function parseUdpDatagram(buf: Uint8Array): UdpDatagram {
  const what = "UDP datagram";
  const invalid = (why: string) =>
    new SocksError("invalid_message", `Cannot parse SOCKS5 ${what}: ${why}`);
  if (buf.length > UDP_MAX_PAYLOAD) {
    throw invalid(`${buf.length} bytes exceed the limit of ${UDP_MAX_PAYLOAD}`);
  }
  if (buf.length < 4) throw invalid(`truncated (${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    throw invalid(`reserved bytes are ${buf[0]} ${buf[1]}, not 0 0`);
  }
  const frag = buf[2]!;
  if (frag !== 0) {
    throw new SocksError(
      "fragment",
      `Cannot parse SOCKS5 ${what}: fragment ${frag} (fragments are not supported)`,
    );
  }
  const a = addrSize(what, buf, 3);
  if (a === null || buf.length < 3 + a) throw invalid(`truncated (${buf.length} bytes)`);
  const header = 3 + a;
  return run(
    what,
    buf,
    header,
    (b) => new Socks5UdpDatagram(kaitaiStream(b)),
    (p) => ({ target: addrTarget(p.target), data: buf.subarray(header) }),
  )!.value;
}
