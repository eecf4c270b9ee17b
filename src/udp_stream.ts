/**
 * Both ends of a UDP association's stream (SPEC.md §2.5): reading its
 * datagram records ({@link readRecords}), handing records to it one at a
 * time and dropping what comes meanwhile ({@link RecordWriter}), and the
 * counts every association keeps ({@link UdpCounts}).
 *
 * @module
 */
import type { Target } from "./messages.ts";
import type { Conn } from "./net.ts";
import { encodeUdpRecord, UdpRecordReader, type UdpRecordValue } from "./udp_records.ts";

/** Why a datagram was dropped (`burrow_udp_dropped_total{reason}`). */
export type UdpDropReason =
  /** From an address the association does not take (server), or with no client address yet. */
  | "source"
  /** A SOCKS5 UDP header that does not parse (server). */
  | "malformed"
  /** FRAG ≠ 0 (server, SPEC.md §8.2). */
  | "fragment"
  /** The target is outside the policy, or has no canonical form. */
  | "refused"
  /** Too many datagrams before it still wait for the stream or a socket's send. */
  | "backpressure"
  /** A reply from an address the agent's socket has not sent to (agent). */
  | "unsolicited"
  /** The target's name does not resolve, or the send failed (agent). */
  | "unreachable"
  /** A socket's receive queue was full (counted from the socket's `dropped`). */
  | "queue"
  /** Over the client's or the agent's bandwidth (server, when limits are set). */
  | "bandwidth";

/** The drop reasons, in the order metrics and the dashboard list them. */
export const UDP_DROP_REASONS: readonly UdpDropReason[] = [
  "source",
  "malformed",
  "fragment",
  "refused",
  "backpressure",
  "unsolicited",
  "unreachable",
  "queue",
  "bandwidth",
];

/**
 * Datagrams and bytes of one association, `up` being toward the agent's
 * targets; each count goes to `parent` too (the process's totals).
 */
export class UdpCounts {
  datagramsUp = 0;
  datagramsDown = 0;
  bytesUp = 0;
  bytesDown = 0;
  readonly dropped: Record<UdpDropReason, number> = {
    source: 0,
    malformed: 0,
    fragment: 0,
    refused: 0,
    backpressure: 0,
    unsolicited: 0,
    unreachable: 0,
    queue: 0,
    bandwidth: 0,
  };

  constructor(readonly parent: UdpCounts | null = null) {}

  up(bytes: number): void {
    this.datagramsUp++;
    this.bytesUp += bytes;
    this.parent?.up(bytes);
  }

  down(bytes: number): void {
    this.datagramsDown++;
    this.bytesDown += bytes;
    this.parent?.down(bytes);
  }

  drop(reason: UdpDropReason, n = 1): void {
    if (n <= 0) return;
    this.dropped[reason] += n;
    this.parent?.drop(reason, n);
  }

  /** Every drop, summed. */
  get droppedTotal(): number {
    let n = 0;
    for (const r of UDP_DROP_REASONS) n += this.dropped[r];
    return n;
  }

  /** The fields of an audit line. */
  fields(): Record<string, number> {
    const out: Record<string, number> = {
      datagrams_up: this.datagramsUp,
      datagrams_down: this.datagramsDown,
      up: this.bytesUp,
      down: this.bytesDown,
    };
    for (const r of UDP_DROP_REASONS) {
      if (this.dropped[r] > 0) out[`dropped_${r}`] = this.dropped[r];
    }
    return out;
  }
}

/** Datagrams one direction of an association may have waiting at once (SPEC.md §2.5). */
export const UDP_WAITING = 64;
/** Bytes one direction of an association may have waiting at once. */
export const UDP_WAITING_BYTES = 256 * 1024;

/**
 * What one direction of an association has handed on and not yet seen
 * taken (a stream's write, a socket's send): at most {@link UDP_WAITING}
 * datagrams and {@link UDP_WAITING_BYTES} bytes; past either, the next
 * datagram is dropped (SPEC.md §2.5 "Never waiting").
 */
export class Waiting {
  #n = 0;
  #bytes = 0;

  /** Take a place for `size` bytes, or false (drop it). */
  take(size: number): boolean {
    if (this.#n >= UDP_WAITING || this.#bytes + size > UDP_WAITING_BYTES) return false;
    this.#n++;
    this.#bytes += size;
    return true;
  }

  /** Give back the place of `size` bytes. */
  done(size: number): void {
    this.#n--;
    this.#bytes -= size;
  }
}

/**
 * Hands records to a stream, never waiting: while {@link UDP_WAITING}
 * records (or their bytes) still wait for the stream (its window, the
 * link's socket, a connection's socket), {@link send} drops the datagram.
 */
export class RecordWriter {
  readonly #waiting = new Waiting();

  /** `failed`: the stream failed under a write (the association ends). */
  constructor(readonly conn: Conn, readonly failed: () => void) {}

  /** True when the record went to the stream; false (dropped) while too many wait. */
  send(addr: Target, data: Uint8Array): boolean {
    const record = encodeUdpRecord(addr, data);
    if (!this.#waiting.take(record.length)) return false;
    this.conn.write(record).then(() => this.#waiting.done(record.length), this.failed);
    return true;
  }
}

/**
 * Read the records of `conn` (after `rest`, bytes already read past the
 * result) until its end, calling `each` for every one; a malformed record
 * throws ProtocolError (the caller resets the stream). Resolves at the
 * stream's end (FIN, or a close).
 */
export async function readRecords(
  conn: Conn,
  rest: Uint8Array,
  each: (r: UdpRecordValue) => void,
): Promise<void> {
  const reader = new UdpRecordReader();
  reader.push(rest);
  for (;;) {
    for (let r = reader.next(); r !== null; r = reader.next()) each(r);
    const chunk = await conn.read();
    if (chunk === null) return;
    reader.push(chunk);
  }
}
