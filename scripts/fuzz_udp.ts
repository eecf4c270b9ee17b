/**
 * Fuzz properties of datagram records (SPEC.md §2.5, spec/udp_record.ksy),
 * part of scripts/fuzz.ts's set: random and mutated bytes, cut anywhere,
 * into {@link UdpRecordReader}. It may return records, wait, or throw
 * ProtocolError (invalid_message) — nothing else; every record it returns
 * is what Kaitai's generated parser reads from the same bytes, and
 * re-encodes to exactly them; and it never holds more than one record and
 * the chunk that brought it.
 *
 * @module
 */
import fc from "fast-check";
import { UdpRecord } from "../generated/UdpRecord.js";
import { ProtocolError } from "../src/errors.ts";
import { addrTarget, kaitaiStream } from "../src/kaitai.ts";
import type { Target } from "../src/messages.ts";
import { encodeUdpRecord, UDP_RECORD_MAX_BODY, UdpRecordReader } from "../src/udp_records.ts";
import { chunk, concat, mutate, mutation, target } from "../test/arbitraries.ts";

/** A record's address and data, as the arbitraries make them. */
export const udpRecordValue: fc.Arbitrary<{ addr: Target; data: Uint8Array }> = fc.record({
  addr: target,
  data: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 1500 })),
});

const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Feed `b` to a reader in the pieces `cuts` makes; check every record
 * against Kaitai and the encoder. Throws Error on a misbehaving reader.
 */
export function udpRecordsChecked(b: Uint8Array, cuts: readonly number[]): void {
  const r = new UdpRecordReader();
  let at = 0; // bytes of `b` consumed by records so far
  let largest = 0;
  try {
    for (const piece of chunk(b, cuts)) {
      largest = Math.max(largest, piece.length);
      r.push(piece);
      for (let rec = r.next(); rec !== null; rec = r.next()) {
        const len = 2 + ((b[at]! << 8) | b[at + 1]!);
        const bytes = b.subarray(at, at + len);
        const k = new UdpRecord(kaitaiStream(bytes));
        const again = encodeUdpRecord(rec.addr, rec.data);
        if (!same(again, bytes)) {
          throw new Error(`record ${hexOf(bytes)} re-encodes as ${hexOf(again)}`);
        }
        if (
          JSON.stringify(addrTarget(k.body.addr)) !== JSON.stringify(rec.addr) ||
          !same(Uint8Array.from(k.body.data), rec.data)
        ) throw new Error(`record ${hexOf(bytes)}: Kaitai's parser reads something else`);
        at += len;
      }
      if (r.buffered > 2 + UDP_RECORD_MAX_BODY + largest) {
        throw new Error(`${r.buffered} bytes held`);
      }
    }
  } catch (e) {
    if (e instanceof ProtocolError && e.code === "invalid_message" && !e.reply) return;
    throw e;
  }
  if (at + r.buffered !== b.length) throw new Error(`${b.length - at - r.buffered} bytes lost`);
}

const cuts = fc.array(fc.nat(), { maxLength: 6 });

/** Valid records back to back, mutated or not, or random bytes. */
export const recordish: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.array(udpRecordValue, { minLength: 1, maxLength: 3 }).map((rs) =>
    concat(rs.map((x) => encodeUdpRecord(x.addr, x.data)))
  ),
  fc.tuple(
    fc.array(udpRecordValue, { minLength: 1, maxLength: 3 }),
    fc.array(mutation, { minLength: 1, maxLength: 4 }),
  ).map(([rs, muts]) => mutate(concat(rs.map((x) => encodeUdpRecord(x.addr, x.data))), muts)),
);

/** The property scripts/fuzz.ts adds (name, runs of the long run, property). */
export const udpRecordProperty = {
  name: "udp records: random and mutated bytes, cut anywhere -> UdpRecordReader and Kaitai",
  runs: 70_000,
  property: fc.property(recordish, cuts, (b, c) => udpRecordsChecked(b, c)),
};
