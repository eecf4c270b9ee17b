/**
 * The client proxy's end of one UDP association through the server
 * (SPEC.md §2.5, §5.17 with protocol 17): after CONNECT_RESULT the stream
 * carries datagram records both ways (`udp_records.ts`): the internal DNS
 * (`dns_front.ts`) sends its queries through one.
 *
 * Sending never waits: past what `RecordWriter` lets wait for the stream
 * (64 records, 256 KiB) a datagram is dropped and counted, as on the server
 * and the agent. A record that does not parse ends the association.
 *
 * @module
 */
import type { Target } from "./messages.ts";
import type { Conn } from "./net.ts";
import { UdpRecordReader, type UdpRecordValue } from "./udp_records.ts";
import { RecordWriter } from "./udp_stream.ts";

/** Why datagrams were dropped on the way out, counted per association. */
export interface AssociationDrops {
  /** Too many records wait for the stream (SPEC.md §2.5, `RecordWriter`). */
  backpressure: number;
  /** Over 65507 bytes of data, or a record body over its limit. */
  too_big: number;
}

export class Association {
  readonly #conn: Conn;
  readonly #writer: RecordWriter;
  readonly #reader = new UdpRecordReader();
  /** Datagrams sent, received; dropped by reason. */
  sent = 0;
  received = 0;
  readonly dropped: AssociationDrops = { backpressure: 0, too_big: 0 };
  /** What ended the association when a record did not parse, else null. */
  error: Error | null = null;

  /** `rest`: the bytes read past CONNECT_RESULT (the start of the first records). */
  constructor(conn: Conn, rest: Uint8Array) {
    this.#conn = conn;
    this.#writer = new RecordWriter(conn, () => conn.close());
    this.#reader.push(rest);
  }

  /** Resolves once the stream is closed. */
  get closed(): Promise<void> {
    return this.#conn.closed;
  }

  /** Send one datagram to `target`; false when it was dropped (and counted). */
  send(target: Target, data: Uint8Array): boolean {
    let sent: boolean;
    try {
      sent = this.#writer.send(target, data);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.dropped.too_big++;
      return false;
    }
    if (sent) this.sent++;
    else this.dropped.backpressure++;
    return sent;
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
