/**
 * The few bytes of a DNS message (RFC 1035 §4.1) the internal DNS front
 * reads and writes: the header's id, QR and TC bits, and a failure answer
 * made from a query. Everything else is passed on as it came.
 *
 * @module
 */

/** A DNS header: id, flags, four counts (RFC 1035 §4.1.1). */
export const DNS_HEADER = 12;

/** RFC 1035 §4.1.1 RCODE 2: the server could not answer (here: the tunnel). */
export const SERVFAIL = 2;
/** RCODE 5: refused (here: a query over the pending limit). */
export const REFUSED = 5;

/** The message's id, or null when it is shorter than a header. */
export function messageId(msg: Uint8Array): number | null {
  return msg.length < DNS_HEADER ? null : (msg[0]! << 8) | msg[1]!;
}

/** Is `msg` (a whole header at least) a response (QR = 1)? */
export function isResponse(msg: Uint8Array): boolean {
  return (msg[2]! & 0x80) !== 0;
}

/** Is `msg` a truncated response (TC = 1, RFC 1035 §4.2.1)? */
export function isTruncated(msg: Uint8Array): boolean {
  return (msg[2]! & 0x02) !== 0;
}

/** A copy of `msg` (a whole header at least) with its id set to `id`. */
export function withId(msg: Uint8Array, id: number): Uint8Array {
  const out = msg.slice();
  out[0] = id >> 8;
  out[1] = id & 0xff;
  return out;
}

/**
 * The end of the question section of `msg`, when it has exactly one
 * question that lies within it (labels, or a compression pointer, then
 * QTYPE and QCLASS); else null.
 */
function questionEnd(msg: Uint8Array): number | null {
  if (((msg[4]! << 8) | msg[5]!) !== 1) return null;
  let at = DNS_HEADER;
  for (let labels = 0; labels <= 128; labels++) {
    const len = msg[at];
    if (len === undefined) return null;
    if (len === 0) return at + 5 <= msg.length ? at + 5 : null;
    if (len >= 0xc0) return at + 6 <= msg.length ? at + 6 : null;
    if (len > 63) return null;
    at += 1 + len;
  }
  return null;
}

/**
 * The answer `rcode` to the query `msg` (a whole header at least): its id,
 * opcode and RD, QR = 1, and its question when it has one that parses
 * (else none); no records.
 */
export function failure(msg: Uint8Array, rcode: number): Uint8Array {
  const end = questionEnd(msg);
  const out = msg.slice(0, end ?? DNS_HEADER);
  out[2] = 0x80 | (msg[2]! & 0x79); // QR, opcode, RD (AA and TC cleared)
  out[3] = rcode & 0x0f; // RA 0: no recursion of our own
  out[4] = 0;
  out[5] = end === null ? 0 : 1;
  out.fill(0, 6, DNS_HEADER); // no answer, authority or additional records
  return out;
}
