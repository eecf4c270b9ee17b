/**
 * A token bucket that paces bytes (bandwidth.ts has one per client and per
 * agent, per direction): it refills at `rate` bytes per second up to a small
 * burst, and a take that finds it empty (or others waiting) waits its turn.
 * Turns go by bytes, not by who asks first: each flow (a stream's direction)
 * gets a start tag, start-time fair queuing, so a flow that reads big chunks
 * waits as much longer as its chunks are bigger, and flows that wait share
 * the rate evenly. One timer per bucket, only while someone waits.
 *
 * @module
 */

/** A flow's place in the fair queue: where its last take ended, in bytes of virtual time. */
export interface Flow {
  finish: number;
}

interface Waiter {
  readonly start: number;
  readonly n: number;
  readonly flow: Flow;
  readonly resolve: () => void;
}

/** The burst: a tenth of a second at the rate, at most this much. */
export const MAX_BURST = 8 * 2 ** 20;

export class Bucket {
  /** Bytes per second; 0: no limit. */
  #rate = 0;
  #cap = 0;
  /** May go below zero: a chunk is taken whole, and its debt is paid before the next turn. */
  #tokens = 0;
  /** When {@link #tokens} was last refilled (ms). */
  #at = 0;
  /** The start tag of the latest take served. */
  #virtual = 0;
  /** Waiting takes, by start tag (ties: first come). */
  readonly #waiting: Waiter[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Bytes taken, limited or not (the rate meter reads it). */
  bytes = 0;

  /** `held(n, rate)`: `n` bytes had to wait (the held-back counter, the log). */
  constructor(readonly held: (n: number, rate: number) => void) {}

  get rate(): number {
    return this.#rate;
  }

  /** Set the rate (null or 0: no limit); waiting takes go at the new rate (all at once if none). */
  setRate(rate: number | null, now = Date.now()): void {
    const r = rate ?? 0;
    if (r === this.#rate) return;
    if (this.#rate > 0) this.#refill(now);
    const was = this.#rate;
    this.#rate = r;
    this.#cap = Math.min(MAX_BURST, r / 10);
    if (was === 0) [this.#tokens, this.#at] = [this.#cap, now];
    this.#tokens = Math.min(this.#tokens, this.#cap);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#release();
    this.#schedule();
  }

  /**
   * `n` bytes that need no turn while the bucket has no rate: counted, and
   * true; false (nothing counted) if it has one: {@link take} them. A taker
   * needs no flow until then.
   */
  free(n: number): boolean {
    if (this.#rate !== 0) return false;
    this.bytes += n;
    return true;
  }

  /**
   * `n` bytes of `flow` were read: undefined if they may go on now, else a
   * promise that resolves when their turn comes.
   */
  take(n: number, flow: Flow): Promise<void> | undefined {
    this.bytes += n;
    if (this.#rate === 0) return undefined;
    this.#refill(Date.now());
    const start = Math.max(this.#virtual, flow.finish);
    flow.finish = start + n;
    if (this.#waiting.length === 0 && this.#tokens > 0) {
      this.#tokens -= n;
      this.#virtual = start;
      return undefined;
    }
    this.held(n, this.#rate);
    return new Promise((resolve) => {
      const w: Waiter = { start, n, flow, resolve };
      let i = this.#waiting.length;
      while (i > 0 && this.#waiting[i - 1]!.start > start) i--;
      this.#waiting.splice(i, 0, w);
      this.#release();
      this.#schedule();
    });
  }

  /**
   * Bytes a datagram of `n` bytes may pass now (the UDP hook, bandwidth.ts):
   * true and counted if nobody waits and the bucket is not empty; false if
   * it would have to wait (the caller drops it; counted as held back).
   */
  pass(n: number): boolean {
    this.bytes += n;
    if (this.#rate === 0) return true;
    this.#refill(Date.now());
    if (this.#waiting.length > 0 || this.#tokens <= 0) {
      this.held(n, this.#rate);
      return false;
    }
    this.#tokens -= n;
    return true;
  }

  /** Let `flow`'s waiting takes go at once (its stream is closing). */
  cancel(flow: Flow): void {
    for (let i = this.#waiting.length - 1; i >= 0; i--) {
      const w = this.#waiting[i]!;
      if (w.flow !== flow) continue;
      this.#waiting.splice(i, 1);
      w.resolve();
    }
  }

  /** Nothing waits and the bucket is full: forgetting it changes nothing. */
  idle(now = Date.now()): boolean {
    if (this.#waiting.length > 0) return false;
    if (this.#rate === 0) return true;
    this.#refill(now);
    return this.#tokens >= this.#cap;
  }

  /** Stop the timer; everyone waiting goes on. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiting.splice(0)) w.resolve();
  }

  #refill(now: number): void {
    const t = this.#tokens + (now - this.#at) * this.#rate / 1000;
    this.#tokens = t > this.#cap ? this.#cap : t;
    this.#at = now;
  }

  /** Serve waiting takes in order while there are tokens (or no limit). */
  #release(): void {
    while (this.#waiting.length > 0 && (this.#rate === 0 || this.#tokens > 0)) {
      const w = this.#waiting.shift()!;
      if (this.#rate > 0) this.#tokens -= w.n;
      this.#virtual = w.start;
      w.resolve();
    }
  }

  /** The one timer: when the tokens are back above zero for the first waiter. */
  #schedule(): void {
    if (this.#timer !== undefined || this.#waiting.length === 0 || this.#rate === 0) return;
    const ms = Math.max(1, Math.ceil((-this.#tokens * 1000) / this.#rate) + 1);
    this.#timer = setTimeout(this.#tick, ms);
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    this.#refill(Date.now());
    this.#release();
    this.#schedule();
  };
}
