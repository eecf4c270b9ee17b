/**
 * Host names and targets in their one canonical form (SPEC.md §7.3), so that
 * a rule and a target are compared as the resolver will read them.
 *
 * A domain target is a **host name**: labels of letters, digits, `-` and `_`,
 * each 1..63 bytes, at most 253 bytes in all, one optional trailing dot, and
 * a last label that is not a number (all digits, or `0x` and hex digits), so
 * that no resolver reads the name as an IPv4 address (`127.1`, `2130706433`,
 * `0x7f.1`; the WHATWG URL standard's "ends in a number" rule). Normalized, it
 * is lower case without the trailing dot. Anything else (a NUL byte, `%`,
 * spaces, non-ASCII text) is refused: a resolver may cut or reinterpret it,
 * and then the name that was matched is not the host that is dialed.
 *
 * An IP literal sent as a domain name becomes the IP target it denotes, and an
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) becomes the IPv4 target, so
 * that it is matched against IPv4 rules only.
 *
 * @module
 */
import { NetError } from "./errors.ts";
import { err, ok, type Result } from "./result.ts";
import { formatIPv4, formatIPv6, ipKind, parseIP, parseIPv6 } from "./ip.ts";
import type { Target } from "./messages.ts";

const LABEL = /^[A-Za-z0-9_-]{1,63}$/;
const NUMBER = /^(?:[0-9]+|0[xX][0-9a-fA-F]*)$/;

/** The normalized form of host name `name`, or `null` if it is not one (see the module doc). */
export function normalizeHostName(name: string): string | null {
  // Checked before lower-casing: some non-ASCII letters lower-case to ASCII
  // (U+212A KELVIN SIGN becomes "k"), and the name must be ASCII as sent.
  let h = name;
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return null;
  const labels = h.split(".");
  for (const l of labels) if (!LABEL.test(l)) return null;
  if (NUMBER.test(labels[labels.length - 1]!)) return null;
  return h.toLowerCase();
}

/** The IPv4 text of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), or `null`. */
export function unmapIPv4(ipv6: string): string | null {
  const b = parseIPv6(ipv6);
  return b && mappedIPv4(b);
}

/** The IPv4 text of 16 bytes that are an IPv4-mapped IPv6 address, or `null`. */
function mappedIPv4(b: Uint8Array): string | null {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return null;
  if (b[10] !== 0xff || b[11] !== 0xff) return null;
  return formatIPv4(b, 12);
}

/** An IP literal in canonical text, IPv4-mapped addresses as IPv4; `null` if `ip` is none. */
export function normalizeIP(ip: string): string | null {
  const p = parseIP(ip);
  if (!p) return null;
  if (p.kind === "ipv4") return formatIPv4(p.bytes);
  return mappedIPv4(p.bytes) ?? formatIPv6(p.bytes);
}

/**
 * Why IP `ip` cannot be dialed, whatever the runtime would say, or `null`.
 * An IPv4-compatible IPv6 address (`::a.b.c.d`, deprecated by RFC 4291
 * §2.5.5.1; `::` and `::1` are not) has no route: Node and Deno report host
 * unreachable, Bun connection refused. EHOSTUNREACH on every runtime.
 */
export function unroutable(ip: string): NetError | null {
  if (!ip.includes(":")) return null; // IPv4 text: not parsed (it is on every dial)
  const b = parseIPv6(ip);
  if (!b || b.subarray(0, 12).some((x) => x !== 0)) return null;
  if ((b[12]! | b[13]! | b[14]!) === 0 && b[15]! <= 1) return null; // :: and ::1
  return new NetError("EHOSTUNREACH", `${ip} is an IPv4-compatible IPv6 address: no route`);
}

/**
 * `t` in canonical form (see the module doc), or why it is refused. Both the
 * server and the agent call it before they match a target against any rule.
 */
export function normalizeTarget(t: Target): Result<Target> {
  if (t.type === "domain") {
    const kind = ipKind(t.host);
    if (kind) return normalizeTarget({ type: kind, host: t.host, port: t.port });
    const host = normalizeHostName(t.host);
    if (host === null) return err(`target ${describeHost(t.host)} is not a valid host name`);
    return ok({ type: "domain", host, port: t.port });
  }
  const host = normalizeIP(t.host);
  if (host === null) return err(`target ${describeHost(t.host)} is not an IP address`);
  // Normalized, an IPv6 address has a colon and an IPv4 one none.
  return ok({ type: host.includes(":") ? "ipv6" : "ipv4", host, port: t.port });
}

/** A host text safe for logs: JSON-quoted, control characters escaped, at most 80 characters. */
export function describeHost(host: string): string {
  const q = JSON.stringify(host.length > 80 ? `${host.slice(0, 80)}…` : host);
  // JSON.stringify leaves U+2028/U+2029 and other non-ASCII as they are: escape them too.
  return q.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
