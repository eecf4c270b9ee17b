/**
 * The client proxy's end of one UDP association through the server
 * (SPEC.md §2.5, §5.17 with protocol 17): after CONNECT_RESULT the stream
 * carries datagram records both ways (`udp_records.ts`). Both the local
 * SOCKS5 UDP ASSOCIATE (`client_udp.ts`) and the internal DNS
 * (`dns_front.ts`) send through one.
 *
 * Sending never queues without bound: records the stream has not taken yet
 * are held up to {@link ASSOCIATION_QUEUE_BYTES}; past that a datagram is
 * dropped and counted (UDP's answer to backpressure, as on the server and
 * the agent). A record that does not parse ends the association.
 *
 * @module
 */
import type { Target } from "./messages.ts";
import type { Conn } from "./net.ts";
import { encodeUdpRecord, UdpRecordReader, type UdpRecordValue } from "./udp_records.ts";

/** Bytes of records written and not yet taken by the stream, at most: 256 KiB. */
export const ASSOCIATION_QUEUE_BYTES = 256 * 1024;

/** Why datagrams were dropped on the way out, counted per association. */
export interface AssociationDrops {
  /** The stream's queue was full (backpressure). */
  backpressure: number;
  /** Over 65507 bytes of data, or a record body over its limit. */
  too_big: number;
}

export class Association {
  readonly #conn: Conn;
  readonly #reader = new UdpRecordReader();
  #queued = 0;
  /** Datagrams sent, received; dropped by reason. */
  sent = 0;
  received = 0;
  readonly dropped: AssociationDrops = { backpressure: 0, too_big: 0 };
  /** What ended the association when a record did not parse, else null. */
  error: Error | null = null;

  /** `rest`: the bytes read past CONNECT_RESULT (the start of the first records). */
  constructor(conn: Conn, rest: Uint8Array, readonly queueBytes = ASSOCIATION_QUEUE_BYTES) {
    this.#conn = conn;
    this.#reader.push(rest);
  }

  /** Resolves once the stream is closed. */
  get closed(): Promise<void> {
    return this.#conn.closed;
  }

  /** Send one datagram to `target`; false when it was dropped (and counted). */
  send(target: Target, data: Uint8Array): boolean {
    let rec: Uint8Array;
    try {
      rec = encodeUdpRecord(target, data);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.dropped.too_big++;
      return false;
    }
    if (this.#queued + rec.length > this.queueBytes) {
      this.dropped.backpressure++;
      return false;
    }
    this.#queued += rec.length;
    this.sent++;
    this.#conn.write(rec).then(
      () => (this.#queued -= rec.length),
      () => {
        this.#queued -= rec.length;
        this.#conn.close();
      },
    );
    return true;
  }

  /**
   * The next datagram from the far side (`addr` is its source), or null
   * once the association ended: the server closed the stream, or a record
   * did not parse ({@link error}). Only one receive may be pending.
   */
  async receive(): Promise<UdpRecordValue | null> {
    for (;;) {
      try {
        const r = this.#reader.next();
        if (r) {
          this.received++;
          return r;
        }
      } catch (e) {
        this.error = e as Error;
        this.#conn.close();
        return null;
      }
      const chunk = await this.#conn.read().catch(() => null);
      if (chunk === null) {
        this.#conn.close();
        return null;
      }
      this.#reader.push(chunk);
    }
  }

  /** End the association (datagrams still queued may be lost: they are datagrams). */
  close(): void {
    this.#conn.close();
  }
}
