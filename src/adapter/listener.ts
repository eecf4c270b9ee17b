/**
 * Accepting: {@link AcceptQueue} is a whole {@link Listener} for a socket
 * that accepts by itself (Node, Bun, Deno's TLS listener), and
 * {@link acceptAll} is the async iterator of any Listener.
 *
 * @module
 */
import { type Addr, type Conn, type Listener } from "../net.ts";
import { NetError } from "../errors.ts";

/** {@link Listener}'s async iterator: `accept()` until it gives `null`. */
export async function* acceptAll(listener: Pick<Listener, "accept">): AsyncGenerator<Conn> {
  for (let c = await listener.accept(); c !== null; c = await listener.accept()) yield c;
}

/**
 * A {@link Listener} on a socket that accepts by itself: the adapter
 * {@link push}es every Conn it accepts (or an accept error, which the next
 * `accept()` rejects with); `accept()` takes them in order, and waiting
 * `accept()`s are served in order. `close()` stops the socket (the `stop`
 * given), resolves waiting `accept()`s with `null` and closes Conns not yet
 * taken; Conns pushed after that are closed at once.
 */
export class AcceptQueue implements Listener {
  readonly addr: Addr;
  #stop: () => void;
  #items: (Conn | NetError)[] = [];
  #waiters: [resolve: (c: Conn | null) => void, reject: (e: NetError) => void][] = [];
  #closed = false;
  #room: (() => void) | null = null;

  constructor(addr: Addr, stop: () => void) {
    this.addr = addr;
    this.#stop = stop;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Items pushed and not taken yet. */
  get size(): number {
    return this.#items.length;
  }

  /** An accepted Conn, or an accept error, for the next `accept()`. */
  push(item: Conn | NetError): void {
    if (this.#closed) {
      if (!(item instanceof NetError)) item.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter === undefined) this.#items.push(item);
    else if (item instanceof NetError) waiter[1](item);
    else waiter[0](item);
  }

  /** Resolves once fewer than `limit` items wait, or the listener is closed. */
  async room(limit: number): Promise<void> {
    while (!this.#closed && this.#items.length >= limit) {
      await new Promise<void>((r) => (this.#room = r));
    }
  }

  accept(): Promise<Conn | null> {
    const item = this.#items.shift();
    if (item !== undefined) {
      this.#wake();
      return item instanceof NetError ? Promise.reject(item) : Promise.resolve(item);
    }
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.#waiters.push([resolve, reject]));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop();
    this.#wake();
    for (const [resolve] of this.#waiters.splice(0)) resolve(null);
    for (const c of this.#items.splice(0)) if (!(c instanceof NetError)) c.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<Conn> {
    return acceptAll(this);
  }

  #wake(): void {
    const room = this.#room;
    this.#room = null;
    room?.();
  }
}
