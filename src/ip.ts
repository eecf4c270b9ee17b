/**
 * IP address text <-> bytes, CIDR matching and {@link Target} construction.
 *
 * Parsing is strict and never throws: anything that is not exactly an IPv4
 * dotted quad or an RFC 4291 IPv6 text address gives `null`.
 *
 * - IPv4: four decimal parts `0..255`, no leading zeros (`010.0.0.1` is
 *   rejected: it is octal to `inet_aton`), no whitespace, nothing else.
 * - IPv6: hex groups of 1..4 digits, at most one `::`, an optional embedded
 *   dotted IPv4 in the last 32 bits (`::ffff:10.0.0.1`, `64:ff9b::1.2.3.4`).
 *   No zone id (`%eth0`), no brackets, no prefix length.
 *
 * Formatting is canonical: IPv4 is the dotted quad, IPv6 is RFC 5952 text
 * (lower case, no leading zeros, the longest run of two or more zero groups
 * compressed to `::`, the first such run on a tie). IPv4-mapped addresses
 * (`::ffff:0:0/96`) are written in the mixed form `::ffff:a.b.c.d` (RFC 5952
 * §5), which is also what dual-stack sockets report; no other prefix gets the
 * mixed form.
 *
 * Functions whose input comes from local configuration or the caller's own
 * code ({@link formatIPv4}, {@link formatIPv6}, {@link targetOf}, the `base` and
 * `prefix` of {@link inCidr}) throw `RangeError` on invalid input.
 *
 * @module
 */
import type { Target } from "./messages.ts";

/** The two address families. */
export type IpKind = "ipv4" | "ipv6";

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parse a dotted-quad IPv4 address into 4 bytes, or `null`. */
export function parseIPv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  return parseIPv4Into(text, out, 0) ? out : null;
}

/**
 * Four decimal parts of 0..255 without leading zeros, written to `out` at
 * `at`. A loop over char codes: every CONNECT's address passes here a few
 * times, and split() plus a regex per part allocated for each.
 */
function parseIPv4Into(text: string, out: Uint8Array, at: number): boolean {
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 0x2e; // a "." after the last part ends it
    if (c === 0x2e) {
      if (digits === 0 || part === 4) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return false; // a leading zero
      value = value * 10 + (c - 0x30);
      if (value > 255) return false;
      digits++;
    } else return false;
  }
  return part === 4;
}

/** Parse an IPv6 text address into 16 bytes, or `null`. */
export function parseIPv6(text: string): Uint8Array | null {
  // Longest valid form: 6 groups of 4 + 6 colons + 15-char IPv4 = 45.
  if (text.length < 2 || text.length > 45) return null;
  const dbl = text.indexOf("::");
  if (dbl !== -1 && text.indexOf("::", dbl + 1) !== -1) return null; // two "::" or ":::"
  const head = dbl === -1 ? text : text.slice(0, dbl);
  const tail = dbl === -1 ? "" : text.slice(dbl + 2);
  const headParts = head === "" ? [] : head.split(":");
  const tailParts = tail === "" ? [] : tail.split(":");
  // The part that may be a dotted IPv4: the last one of the whole text.
  const lastParts = dbl === -1 ? headParts : tailParts;
  const last = lastParts.length > 0 ? lastParts[lastParts.length - 1]! : "";
  const v4 = last.includes(".");
  const v4bytes = new Uint8Array(4);
  if (v4) {
    if (!parseIPv4Into(last, v4bytes, 0)) return null;
    lastParts.pop();
  }
  const groups = headParts.length + tailParts.length + (v4 ? 2 : 0);
  if (dbl === -1 ? groups !== 8 : groups > 7) return null;
  const out = new Uint8Array(16);
  let i = 0;
  for (const p of headParts) {
    if (!HEX_GROUP.test(p)) return null;
    const v = parseInt(p, 16);
    out[i++] = v >> 8;
    out[i++] = v & 0xff;
  }
  i = 16 - (v4 ? 4 : 0) - tailParts.length * 2;
  for (const p of tailParts) {
    if (!HEX_GROUP.test(p)) return null;
    const v = parseInt(p, 16);
    out[i++] = v >> 8;
    out[i++] = v & 0xff;
  }
  if (v4) out.set(v4bytes, 12);
  return out;
}

/** Parse either family. */
export function parseIP(text: string): { kind: IpKind; bytes: Uint8Array } | null {
  const b4 = parseIPv4(text);
  if (b4) return { kind: "ipv4", bytes: b4 };
  const b6 = parseIPv6(text);
  if (b6) return { kind: "ipv6", bytes: b6 };
  return null;
}

/** `"ipv4"` or `"ipv6"` if `host` is an IP literal (strict, no brackets), else `null`. */
export function ipKind(host: string): IpKind | null {
  if (parseIPv4(host)) return "ipv4";
  if (parseIPv6(host)) return "ipv6";
  return null;
}

/** The canonical text of an IP literal (RFC 5952 for IPv6), or `null` if `text` is none. */
export function canonicalIP(text: string): string | null {
  const ip = parseIP(text);
  if (!ip) return null;
  return ip.kind === "ipv4" ? formatIPv4(ip.bytes) : formatIPv6(ip.bytes);
}

/** Dotted quad of the 4 bytes at `offset`. Throws `RangeError` if fewer than 4 bytes are there. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  if (!(offset >= 0 && offset + 4 <= bytes.length)) {
    throw new RangeError(`formatIPv4: need 4 bytes at offset ${offset}, have ${bytes.length}`);
  }
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952 text of the 16 bytes at `offset`. Throws `RangeError` if fewer than 16 bytes are there. */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  if (!(offset >= 0 && offset + 16 <= bytes.length)) {
    throw new RangeError(`formatIPv6: need 16 bytes at offset ${offset}, have ${bytes.length}`);
  }
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!);
  // IPv4-mapped: ::ffff:a.b.c.d
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes, offset + 12)}`;
  }
  // Longest run of >= 2 zero groups; first one wins a tie.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((v) => v.toString(16)).join(":");
  if (bestAt === -1) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}

/**
 * Whether `ip` lies inside `base/prefix`.
 *
 * `base` must be an IP literal and `prefix` an integer in 0..32 (IPv4) or
 * 0..128 (IPv6), else `RangeError` (a configuration error). An `ip` that is
 * not an IP literal (a domain name, garbage) is simply not inside: `false`.
 * An IPv4-mapped IPv6 `ip` (`::ffff:a.b.c.d`) is matched as the IPv4 address
 * it reaches against an IPv4 `base`; otherwise families must be equal.
 */
export function inCidr(ip: string, base: string, prefix: number): boolean {
  const b = parsedBase(base);
  if (!b) throw new RangeError(`inCidr: base ${JSON.stringify(base)} is not an IP address`);
  const max = b.kind === "ipv4" ? 32 : 128;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new RangeError(`inCidr: prefix ${prefix} is not in 0..${max} for ${b.kind}`);
  }
  const a = parseIP(ip);
  if (!a) return false;
  let bytes = a.bytes;
  if (a.kind !== b.kind) {
    if (a.kind === "ipv6" && isV4Mapped(bytes)) bytes = bytes.subarray(12);
    else return false;
  }
  return prefixEqual(bytes, b.bytes, prefix);
}

/** Rule bases, parsed once: a rule is matched on every CONNECT. Bounded, as bases come from configuration. */
const bases = new Map<string, { kind: IpKind; bytes: Uint8Array } | null>();

function parsedBase(base: string): { kind: IpKind; bytes: Uint8Array } | null {
  let b = bases.get(base);
  if (b === undefined) {
    if (bases.size >= 4096) bases.clear();
    b = parseIP(base);
    bases.set(base, b);
  }
  return b;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function prefixEqual(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const full = prefix >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const bits = prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

const UTF8 = new TextEncoder();

/**
 * The {@link Target} for `host:port`: `ipv4` or `ipv6` (with canonical host
 * text) for an IP literal, else `domain`. An IPv6 literal may be given in
 * brackets (`[::1]`). Throws `RangeError` if `port` is not an integer in
 * 0..65535, or the domain is empty or longer than 255 UTF-8 bytes
 * (SPEC.md §5.1), or brackets enclose no IPv6 address.
 */
export function targetOf(host: string, port: number): Target {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`targetOf: port ${port} is not in 0..65535`);
  }
  if (host.startsWith("[") && host.endsWith("]")) {
    const b6 = parseIPv6(host.slice(1, -1));
    if (!b6) {
      throw new RangeError(`targetOf: ${JSON.stringify(host)} is not a bracketed IPv6 address`);
    }
    return { type: "ipv6", host: formatIPv6(b6), port };
  }
  const b4 = parseIPv4(host);
  if (b4) return { type: "ipv4", host: formatIPv4(b4), port };
  const b6 = parseIPv6(host);
  if (b6) return { type: "ipv6", host: formatIPv6(b6), port };
  const n = UTF8.encode(host).length;
  if (n < 1 || n > 255) {
    throw new RangeError(`targetOf: domain must be 1..255 bytes, got ${n}`);
  }
  return { type: "domain", host, port };
}

/** `host:port`, with IPv6 hosts in brackets (`[fd00::1]:22`), for logs and dialing. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
