/**
 * One stream of a link (link.ts, SPEC.md §3.2): a {@link Conn} with
 * per-direction flow control. Its frames go out through the link; the link
 * hands it the frames the peer sent for it.
 *
 * @module
 */
import { NetError, ProtocolError } from "./errors.ts";
import type { Link } from "./link.ts";
import { LINK_MAX_DATA, type LinkFrame } from "./link_frame.ts";
import type { Addr, Conn } from "./net.ts";

/** Each direction of each stream starts with this window (SPEC.md §3.2). */
export const LINK_WINDOW = 1 << 20;

type Waiter = { resolve: (c: Uint8Array | null) => void; reject: (e: Error) => void };

/** One stream of a link: a {@link Conn}. */
export class Stream implements Conn {
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #reader: Waiter | null = null;
  /** The peer sent FIN. */
  #eof = false;
  /** Bytes the peer may still send before it needs more window. */
  #allowed = LINK_WINDOW;
  /** Bytes read by our reader and not yet granted back. */
  #consumed = 0;
  /** Bytes we may still send. */
  #window = LINK_WINDOW;
  #windowWaiter: (() => void) | null = null;
  #writing: Promise<void> = Promise.resolve();
  #ended: Promise<void> | null = null;
  #finSent = false;
  /** Closed here, reset, or the link failed. */
  #done = false;
  #error: Error | null = null;
  /** The link is gone after the peer's FIN: writes fail with this, reads drain the queue. */
  #lost: Error | null = null;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(readonly link: Link, readonly id: number) {
    this.closed = new Promise((r) => this.#resolveClosed = r);
  }

  get local(): Addr {
    return this.link.local;
  }

  get remote(): Addr {
    return this.link.remote;
  }

  setNoDelay(): void {}

  read(): Promise<Uint8Array | null> {
    const chunk = this.#queue.shift();
    if (chunk) {
      this.#queued -= chunk.length;
      this.#grant(chunk.length);
      this.#settleIfDone();
      return Promise.resolve(chunk);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#eof || this.#done) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.#reader = { resolve, reject });
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#done || this.#ended || this.#lost) {
      return Promise.reject(this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed"));
    }
    const p = this.#writing.then(() => this.#send(chunk));
    this.#writing = p.catch(() => {});
    return p;
  }

  end(): Promise<void> {
    if ((this.#done || this.#lost) && !this.#ended) {
      return Promise.reject(this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed"));
    }
    this.#ended ??= this.#writing.then(async () => {
      if (this.#done || this.#lost) {
        throw this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed");
      }
      this.#finSent = true;
      await this.link.fin(this.id);
      this.#settleIfDone();
    });
    return this.#ended;
  }

  close(): void {
    if (this.#done) return;
    this.link.send({ type: "RESET", stream: this.id });
    this.abort(null);
  }

  /**
   * @internal The link is gone. After the peer's FIN nothing more was coming:
   * the reader still gets what was received, then EOF; writes fail. Else as
   * {@link abort}.
   */
  linkLost(error: Error): void {
    if (this.#done) return;
    if (!this.#eof) return this.abort(error);
    this.#lost = error;
    this.#windowWaiter?.();
    this.#settleIfDone();
  }

  /** @internal Fail or close locally: wake everyone, forget the stream. */
  abort(error: Error | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#queue.length = 0;
    this.#queued = 0;
    const r = this.#reader;
    this.#reader = null;
    if (r) error ? r.reject(error) : r.resolve(null);
    this.#windowWaiter?.();
    this.link.forget(this.id, error ?? new NetError("ECLOSED", "stream closed"));
    this.#resolveClosed();
  }

  /** @internal A frame for this stream arrived. */
  receive(f: LinkFrame): void {
    if (this.#done) return;
    switch (f.type) {
      case "DATA": {
        if (this.#eof) {
          throw new ProtocolError("invalid_message", `Link stream ${this.id}: DATA after FIN`, {
            reply: false,
          });
        }
        if (f.data.length > this.#allowed) {
          throw new ProtocolError(
            "invalid_message",
            `Link stream ${this.id}: ${f.data.length} bytes exceed the window of ${this.#allowed}`,
            { reply: false },
          );
        }
        this.#allowed -= f.data.length;
        const r = this.#reader;
        if (r) {
          this.#reader = null;
          this.#grant(f.data.length);
          r.resolve(f.data);
        } else {
          this.#queue.push(f.data);
          this.#queued += f.data.length;
        }
        return;
      }
      case "WINDOW":
        this.#window = Math.min(Number.MAX_SAFE_INTEGER, this.#window + f.increment);
        this.#windowWaiter?.();
        return;
      case "FIN": {
        this.#eof = true;
        const r = this.#reader;
        this.#reader = null;
        r?.resolve(null);
        this.#settleIfDone();
        return;
      }
      case "RESET":
        return this.abort(new NetError("ECONNRESET", "stream reset by the peer"));
      default:
        throw new ProtocolError("unexpected_message", `${f.type} on an open link stream`, {
          reply: false,
        });
    }
  }

  /** Bytes buffered and not yet read. */
  get buffered(): number {
    return this.#queued;
  }

  async #send(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.#done || this.#lost) {
        throw this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed");
      }
      if (this.#window === 0) {
        await new Promise<void>((r) => this.#windowWaiter = r);
        this.#windowWaiter = null;
        continue;
      }
      // Even pieces: 65 536 bytes go as 2 × 32 768, not 65 535 + 1.
      const left = chunk.length - off;
      const pieces = Math.ceil(left / LINK_MAX_DATA);
      const n = Math.min(Math.ceil(left / pieces), this.#window);
      this.#window -= n;
      const piece = n === chunk.length ? chunk : chunk.subarray(off, off + n);
      await this.link.data(this.id, piece);
      off += n;
    }
  }

  /** Our reader consumed `n` bytes: grant them back once a quarter of the window has gathered. */
  #grant(n: number): void {
    this.#consumed += n;
    if (this.#consumed < LINK_WINDOW / 4 || this.#eof) return;
    const increment = this.#consumed;
    this.#consumed = 0;
    this.#allowed += increment;
    this.link.send({ type: "WINDOW", stream: this.id, increment });
  }

  /** Both directions ended and everything was read: the stream is done. */
  #settleIfDone(): void {
    if ((this.#finSent || this.#lost) && this.#eof && this.#queue.length === 0 && !this.#done) {
      this.#done = true;
      this.link.forget(this.id);
      this.#resolveClosed();
    }
  }
}
