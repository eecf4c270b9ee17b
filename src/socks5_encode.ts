/**
 * Encoders for the SOCKS5 subset of SPEC.md §8 (RFC 1928, RFC 1929, and
 * RFC 1928 §7's UDP header), both directions. Parsers are in socks5_decode.ts.
 *
 * Each function returns a fresh, exactly sized `Uint8Array`. Like the frame
 * encoders (encode.ts), they throw `RangeError` for a value that cannot be
 * encoded (integer out of range, no methods or more than 255, an empty or
 * over-255-byte user name or password, an invalid address) and `TypeError`
 * for a value of the wrong type.
 *
 * @module
 */
import { SocksCmd, SocksMethod, SocksVersion } from "../generated/enums.ts";
import { NO_ADDR, writeAddr, Writer } from "./writer.ts";
import type { Target } from "./messages.ts";
import { UDP_MAX_PAYLOAD } from "./net.ts";

/**
 * RFC 1928 §3 methods and §4 commands, generated from the enums of
 * spec/socks5_registries.ksy (scripts/gen.ts → generated/enums.ts).
 */
export { SocksCmd, SocksMethod };

/** RFC 1928 `ver` (`version::socks5` of spec/socks5_registries.ksy). */
export const SOCKS_VERSION = SocksVersion.socks5;
/** RFC 1929 sub-negotiation `ver` (`version::userpass` of spec/socks5_registries.ksy). */
export const USERPASS_VERSION = SocksVersion.userpass;

// Small messages: a private writer sized for the largest (user/pass: 513 bytes).
const w = new Writer(520);

function out(): Uint8Array {
  const b = w.finish();
  w.reset();
  return b;
}

/** Client greeting: `05 n methods...` (1..255 methods, each a u1). */
export function greeting(methods: ArrayLike<number>): Uint8Array {
  w.reset();
  const n = methods.length;
  if (!(n >= 1 && n <= 255)) {
    throw new RangeError(`greeting.methods: must be 1..255 methods, got ${n}`);
  }
  w.u8(SOCKS_VERSION, "greeting.ver").u8(n, "greeting.nmethods");
  for (let i = 0; i < n; i++) w.u8(methods[i]!, `greeting.methods[${i}]`);
  return out();
}

/** Server method selection: `05 method`. */
export function methodSelection(method: number): Uint8Array {
  w.reset();
  w.u8(SOCKS_VERSION, "methodSelection.ver").u8(method, "methodSelection.method");
  return out();
}

/**
 * RFC 1929 request: `01 ulen user plen pass`. Strings are sent as UTF-8;
 * each field must be 1..255 bytes (SPEC.md §8).
 */
export function userpassRequest(user: string | Uint8Array, pass: string | Uint8Array): Uint8Array {
  w.reset();
  w.u8(USERPASS_VERSION, "userpassRequest.ver");
  field(user, "userpassRequest.user", 0); // may be empty: an issued token names the client (SPEC.md §8)
  field(pass, "userpassRequest.pass", 1);
  return out();
}

function field(v: string | Uint8Array, name: string, min: number): void {
  if (typeof v === "string") w.str(v, 1, min, 255, name);
  else w.lenBytes(v, 1, min, 255, name);
}

/** RFC 1929 reply: `01 status` (0 = success). */
export function userpassReply(status: number): Uint8Array {
  w.reset();
  w.u8(USERPASS_VERSION, "userpassReply.ver").u8(status, "userpassReply.status");
  return out();
}

/** Client request: `05 cmd 00 addr`. */
export function request(cmd: number, target: Target): Uint8Array {
  w.reset();
  w.u8(SOCKS_VERSION, "request.ver").u8(cmd, "request.cmd").u8(0, "request.rsv");
  writeAddr(w, target, "request.target");
  return out();
}

/** Server reply: `05 rep 00 addr`; `bound` defaults to IPv4 0.0.0.0:0. */
export function reply(rep: number, bound: Target = NO_ADDR): Uint8Array {
  w.reset();
  w.u8(SOCKS_VERSION, "reply.ver").u8(rep, "reply.rep").u8(0, "reply.rsv");
  writeAddr(w, bound, "reply.bound");
  return out();
}

/**
 * RFC 1928 §7 UDP datagram: `00 00 00 addr data` (FRAG 0), one buffer;
 * throws RangeError when header and data exceed `UDP_MAX_PAYLOAD` (65507) bytes.
 */
export function udpDatagram(target: Target, data: Uint8Array): Uint8Array {
  w.reset();
  w.u8(0, "udpDatagram.rsv").u8(0, "udpDatagram.rsv").u8(0, "udpDatagram.frag");
  writeAddr(w, target, "udpDatagram.target");
  const header = out();
  const size = header.length + data.length;
  if (size > UDP_MAX_PAYLOAD) {
    throw new RangeError(`udpDatagram: ${size} bytes exceed the limit of ${UDP_MAX_PAYLOAD}`);
  }
  const b = new Uint8Array(size);
  b.set(header);
  b.set(data, header.length);
  return b;
}
