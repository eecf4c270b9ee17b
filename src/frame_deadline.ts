/**
 * A deadline from a frame's first byte (SPEC.md §10.1 `frame_timeout`): a
 * long-lived connection that holds bytes of a frame with no frame completed
 * for `ms` expires, so a peer cannot keep its buffer filled by trickling one
 * frame in forever. One timer per connection while bytes are held, none per
 * frame: the reader counts frames ({@link FrameDeadline.frame}) and says when
 * it holds bytes ({@link FrameDeadline.holding}); the timer, when it fires,
 * expires the connection if no frame was counted since it was set, and is
 * set again otherwise. So expiry comes within `2 × ms` of the first byte.
 *
 * @module
 */
export class FrameDeadline {
  #frames = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param ms the deadline
   * @param held bytes held now, not yet a frame
   * @param expire called once the deadline passed with bytes held
   */
  constructor(
    readonly ms: number,
    readonly held: () => number,
    readonly expire: () => void,
  ) {}

  /** A frame completed. */
  frame(): void {
    this.#frames++;
  }

  /** The reader took a chunk and may hold part of a frame: start the deadline if so. */
  holding(): void {
    if (this.#timer === undefined && this.held() > 0) this.#set();
  }

  /** The connection is gone. */
  stop(): void {
    clearTimeout(this.#timer);
  }

  #set(): void {
    const seen = this.#frames;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.held() === 0) return;
      if (this.#frames !== seen) return this.#set();
      this.expire();
    }, this.ms);
  }
}
