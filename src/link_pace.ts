/**
 * How many DATA bytes a link may have in flight (SPEC.md §3.2, PING): bytes
 * handed to its connection that the peer has not yet been seen to read.
 *
 * No runtime here sets TCP_NOTSENT_LOWAT on a socket, and each takes bytes
 * as long as the kernel's send buffer has room (autotuned to megabytes): a
 * link that wrote whatever its streams gave it kept megabytes of bulk data
 * in the kernel, and an interactive byte written after them waited for all
 * of them (issue 26: 170 ms at 40 MiB/s). So a link keeps at most
 * {@link LinkPace.cap} in flight and the rest in its own queues, where the
 * scheduler (link_writer.ts) orders it.
 *
 * The cap follows the path, as BBR estimates its bottleneck: each PING the
 * link writes after DATA marks the bytes written before it, and its PONG
 * says the peer read them all. From the PONGs: the round-trip time (lowest
 * over the last {@link RTT_WINDOW_MS}) and the delivery rate (bytes the peer
 * read per second, highest over the last {@link BW_WINDOW_MS}; each sample
 * over the longer of the PONGs' and the writes' interval, so that PONGs
 * arriving together are not taken for a faster path); the cap is
 * {@link GAIN} × rate × round trip (the bandwidth-delay product and a
 * quarter for the estimate's lag), at least {@link CAP_MIN}, the round
 * trip taken as at least {@link RTT_FLOOR_MS} (an event loop under load
 * takes that long to answer; below it the link would starve itself). While
 * the link is held back by its cap, each round trip delivers the cap, so
 * the estimate (and the cap) grows by GAIN a round trip until the path is
 * full.
 *
 * @module
 */

/** In flight before the first estimate, and at least. */
export const CAP_MIN = 256 * 1024;
/** The cap over the estimated bandwidth-delay product. */
const GAIN = 1.25;
/** The round trip is taken as at least this (ms). */
const RTT_FLOOR_MS = 4;
/** The lowest round trip is kept this long (ms), as BBR's. */
const RTT_WINDOW_MS = 10_000;
/** In flight at least while the round trip is probed. */
const PROBE_CAP = 64 * 1024;
/** The highest delivery rate is kept this long (ms). */
const BW_WINDOW_MS = 1000;
/** PINGs awaiting their PONG at most. */
export const MAX_PINGS = 16;
/** A PING follows at least this many DATA bytes not yet marked. */
const PING_EVERY_MIN = 16 * 1024;

interface Ping {
  readonly seq: number;
  /** DATA bytes written before it. */
  readonly sent: number;
  readonly at: number;
  /** Bytes acknowledged, and when, as it was written. */
  readonly acked: number;
  readonly ackedAt: number;
  /** When the PING that acknowledged them was written. */
  readonly ackedSentAt: number;
}

export class LinkPace {
  #sent = 0;
  #acked = 0;
  /** When `#acked` last moved, or when DATA left an idle link. */
  #ackedAt = 0;
  /** When the PING behind `#acked` was written (or DATA left an idle link). */
  #ackedSentAt = 0;
  readonly #pings: Ping[] = [];
  #seq = 0;
  #minRtt = Infinity;
  #minRttAt = 0;
  /** Bytes per ms. */
  #bw = 0;
  #bwAt = 0;
  #cap = CAP_MIN;
  /** Probing the round trip since `start`, the lowest sample since. */
  #probe: { start: number; min: number } | null = null;

  /** DATA bytes written and not yet acknowledged. */
  get inflight(): number {
    return this.#sent - this.#acked;
  }

  /** What may be in flight now. */
  get cap(): number {
    return this.#cap;
  }

  /** DATA bytes that may be written now. */
  get room(): number {
    return Math.max(0, this.#cap - this.inflight);
  }

  /** The lowest round trip seen (ms), Infinity before the first PONG. */
  get rtt(): number {
    return this.#minRtt;
  }

  /** `n` DATA bytes were handed to the connection. */
  wrote(n: number, now: number): void {
    if (this.#sent === this.#acked) this.#ackedAt = this.#ackedSentAt = now; // leaving idle: the rate's clocks restart
    this.#sent += n;
  }

  /**
   * A PING to write after what was written so far (its id), or 0 when none
   * is due: at least {@link PING_EVERY_MIN} of DATA is not yet marked, and
   * an eighth of the cap while a PING is awaited. Less than that needs no
   * pacing (see {@link settle}): a stream that sends a few bytes now and
   * then costs no PING and PONG.
   */
  ping(now: number): number {
    const last = this.#pings.at(-1)?.sent ?? this.#acked;
    const unmarked = this.#sent - last;
    if (unmarked < PING_EVERY_MIN || this.#pings.length >= MAX_PINGS) return 0;
    if (this.#pings.length > 0 && unmarked < this.#cap / 8) return 0;
    this.#seq = this.#seq >= 0xffffffff ? 1 : this.#seq + 1;
    this.#pings.push({
      seq: this.#seq,
      sent: this.#sent,
      at: now,
      acked: this.#acked,
      ackedAt: this.#ackedAt,
      ackedSentAt: this.#ackedSentAt,
    });
    return this.#seq;
  }

  /**
   * The link has no DATA queued: with no PING awaited, the less than
   * {@link PING_EVERY_MIN} not marked is taken as delivered, so that the
   * link is idle again (the rate's clock restarts with the next DATA). It
   * counts at most that much less in flight than there is.
   */
  settle(): void {
    if (this.#pings.length === 0 && this.#sent - this.#acked < PING_EVERY_MIN) {
      this.#acked = this.#sent;
    }
  }

  /** A PONG arrived; false if it answers no PING awaited (the oldest). */
  pong(seq: number, now: number): boolean {
    const p = this.#pings[0];
    if (!p || p.seq !== seq) return false;
    this.#pings.shift();
    this.#acked = p.sent;
    this.#ackedAt = now;
    this.#ackedSentAt = p.at;
    this.#rtt(now - p.at, p.at, now);
    // Over the longer of the time the PONGs took and the time the bytes took
    // to be written (as BBR's delivery rate): a PONG held up and the next
    // one on time make the first alone look faster than the path.
    const interval = Math.max(now - p.ackedAt, p.at - p.ackedSentAt);
    if (interval > 0) {
      const bw = (p.sent - p.acked) / interval;
      if (bw >= this.#bw || now - this.#bwAt > BW_WINDOW_MS) {
        this.#bw = bw;
        this.#bwAt = now;
      }
    }
    const bdp = this.#bw * Math.max(this.#minRtt, RTT_FLOOR_MS);
    this.#cap = this.#probe
      ? Math.max(PROBE_CAP, Math.ceil(bdp / 2))
      : Math.max(CAP_MIN, Math.ceil(GAIN * bdp));
    return true;
  }

  /**
   * A round-trip sample of a PING written at `at`. The lowest is kept for
   * {@link RTT_WINDOW_MS}; then, as BBR's ProbeRTT, the cap drops to half
   * the estimate until a PING written a round trip later returns (the
   * queue the link itself keeps at the bottleneck drains meanwhile), and
   * the lowest sample of that time is the new round trip. Below
   * {@link RTT_FLOOR_MS} no probe is needed: the sample is taken as it is.
   */
  #rtt(rtt: number, at: number, now: number): void {
    const expired = now - this.#minRttAt > RTT_WINDOW_MS;
    if (rtt <= this.#minRtt || (expired && this.#minRtt < RTT_FLOOR_MS)) {
      this.#minRtt = rtt;
      this.#minRttAt = now;
      this.#probe = null;
      return;
    }
    if (!expired) return;
    const probe = this.#probe ??= { start: now, min: Infinity };
    if (at < probe.start) return;
    probe.min = Math.min(probe.min, rtt);
    if (at < probe.start + this.#minRtt) return;
    this.#minRtt = probe.min;
    this.#minRttAt = now;
    this.#probe = null;
  }
}
