/**
 * The two queues of a `Conn` on a push-based socket (Node, Bun):
 * {@link ReadQueue} for the bytes the socket delivers before anyone reads
 * them, {@link Waiters} for the writes waiting for the socket to drain.
 *
 * @module
 */
import type { NetError } from "../errors.ts";

/** Unread bytes a {@link ReadQueue} holds before it pauses the socket. */
export const READ_HWM = 256 * 1024;

/** How a {@link ReadQueue} stops and restarts its socket's reading. */
export interface FlowControl {
  pause(): void;
  resume(): void;
}

/**
 * The read side of a push-based socket: `Conn.read()` on the chunks the
 * socket delivers. Chunks go straight to a pending read, else into the
 * queue; once `hwm` unread bytes are queued the socket is paused, and it
 * is resumed when the queue is empty and a read wants more. After the
 * peer's EOF or the socket's close, queued chunks are still read, then
 * `null`; after a failure, queued chunks are still read, then the error.
 */
export class ReadQueue {
  #flow: FlowControl;
  #hwm: number;
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #paused = false;
  #eof = false;
  #closed = false;
  #error: NetError | null = null;
  #resolve: ((c: Uint8Array | null) => void) | null = null;
  #reject: ((e: NetError) => void) | null = null;
  #exec = (resolve: (c: Uint8Array | null) => void, reject: (e: NetError) => void) => {
    this.#resolve = resolve;
    this.#reject = reject;
  };

  constructor(flow: FlowControl, hwm = READ_HWM) {
    this.#flow = flow;
    this.#hwm = hwm;
  }

  /** The peer's EOF came. */
  get eof(): boolean {
    return this.#eof;
  }

  /** Unread bytes queued. */
  get queued(): number {
    return this.#queued;
  }

  /** The socket delivered `chunk`. Ignored once the queue is closed. */
  push(chunk: Uint8Array): void {
    if (this.#closed) return;
    if (this.#resolve !== null) return this.#settle(chunk, null);
    this.#chunks.push(chunk);
    this.#queued += chunk.byteLength;
    if (this.#queued >= this.#hwm && !this.#paused) {
      this.#paused = true;
      this.#flow.pause();
    }
  }

  /** The peer ended its send side. */
  end(): void {
    this.#eof = true;
    this.#settle(null, null);
  }

  /** The connection failed (the first error counts): a pending read rejects. */
  fail(e: NetError): void {
    this.#error ??= e;
    this.#settle(null, this.#error);
  }

  /**
   * The socket is gone: nothing more comes and the socket is not resumed.
   * `discard` (the owner's `close()`) drops the queued chunks too. A pending
   * read gets `null`, or the error after {@link fail}.
   */
  close(discard = false): void {
    this.#closed = true;
    if (discard) {
      this.#chunks = [];
      this.#queued = 0;
    }
    this.#settle(null, this.#error);
  }

  /** Takes the chunks not read yet (a Conn handing its socket over). */
  take(): Uint8Array[] {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#queued = 0;
    return chunks;
  }

  /** `Conn.read()`. */
  read(): Promise<Uint8Array | null> {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) {
      this.#queued -= chunk.byteLength;
      if (this.#queued === 0) this.#resume();
      return Promise.resolve(chunk);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#eof || this.#closed) return Promise.resolve(null);
    this.#resume();
    return new Promise(this.#exec);
  }

  #resume(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    this.#flow.resume();
  }

  #settle(chunk: Uint8Array | null, e: NetError | null): void {
    const resolve = this.#resolve, reject = this.#reject;
    if (resolve === null || reject === null) return;
    this.#resolve = this.#reject = null;
    if (e) reject(e);
    else resolve(chunk);
  }
}

/** Promises settled all at once: the writes waiting for a socket to drain. */
export class Waiters {
  #list: [resolve: () => void, reject: (e: NetError) => void][] = [];
  #exec = (resolve: () => void, reject: (e: NetError) => void) => {
    this.#list.push([resolve, reject]);
  };

  /** How many wait. */
  get size(): number {
    return this.#list.length;
  }

  /** A promise settled by the next {@link resolve} or {@link reject}. */
  wait(): Promise<void> {
    return new Promise(this.#exec);
  }

  resolve(): void {
    for (const [resolve] of this.#take()) resolve();
  }

  reject(e: NetError): void {
    for (const [, reject] of this.#take()) reject(e);
  }

  #take() {
    const list = this.#list;
    if (list.length > 0) this.#list = [];
    return list;
  }
}
