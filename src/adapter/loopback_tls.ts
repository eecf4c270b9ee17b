/**
 * A `deferTls` listener for a runtime whose TLS server starts only at
 * accept and has no usable other one (Deno: `Deno.listenTls`; its
 * `node:tls` server path has no write backpressure and loses data at
 * half-close, test/defer_tls_test.ts), built on the runtime's own
 * {@link Net}: a plain listener on the address, and an internal TLS
 * listener on 127.0.0.1, port 0. `startTls(head)` dials the internal
 * listener, writes `head` and splices the two connections (a copy loop
 * each way: backpressure by awaited writes, half-close by `end()`); the
 * TLS Conn the internal listener accepts for that dial (matched by its
 * source address and port) is the result, with the real remote address.
 *
 * The cost, per connection: two more sockets (the loopback pair) and every
 * byte copied twice more; per listener, one loopback port.
 *
 * @module
 */
import type { Addr, Conn, Listener, ListenOptions, Net, TlsServerOptions } from "../net.ts";
import { NetError } from "../errors.ts";
import { withRemote } from "../proxyproto.ts";
import { acceptAll } from "./listener.ts";

/** How long a loopback dial and its accepted TLS Conn wait for each other, at most. */
const MATCH_MS = 5_000;

/** Copies `from` to `to` until EOF, then ends `to`; a failure closes both. */
export async function pump(from: Conn, to: Conn): Promise<void> {
  try {
    for (let c = await from.read(); c !== null; c = await from.read()) await to.write(c);
    await to.end();
  } catch {
    from.close();
    to.close();
  }
}

/** `host port` of an address: what matches a loopback dial to its accepted Conn. */
const key = (a: Addr) => `${a.host} ${a.port}`;

/** The TLS Conns the internal listener accepts, matched to loopback dials by source. */
class Matcher {
  #waiting = new Map<string, (c: Conn) => void>();
  #early = new Map<string, Conn>();
  readonly inner: Listener;

  constructor(inner: Listener) {
    this.inner = inner;
    void this.#loop();
  }

  async #loop(): Promise<void> {
    for (;;) {
      let c: Conn | null;
      try {
        c = await this.inner.accept();
      } catch {
        continue; // the TLS listener pauses after an accept error itself
      }
      if (c === null) return;
      const conn = c, port = key(c.remote);
      const waiter = this.#waiting.get(port);
      this.#waiting.delete(port);
      if (waiter) waiter(conn);
      else {
        // accepted before its dial resolved, or a stray local connection
        this.#early.set(port, conn);
        setTimeout(() => {
          if (this.#early.get(port) !== conn) return;
          this.#early.delete(port);
          conn.close();
        }, MATCH_MS);
      }
    }
  }

  /** The TLS Conn accepted for the loopback dial from `from`. */
  take(from: Addr): Promise<Conn> {
    const port = key(from);
    const early = this.#early.get(port);
    this.#early.delete(port);
    if (early) return Promise.resolve(early);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(port);
        reject(new NetError("ETIMEDOUT", "loopback TLS listener did not accept"));
      }, MATCH_MS);
      this.#waiting.set(port, (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }
}

/** `outer`'s TLS, through the internal listener of `m`. */
async function splice(net: Net, m: Matcher, outer: Conn, head: Uint8Array): Promise<Conn> {
  let link: Conn | null = null;
  try {
    link = await net.dial({ ...m.inner.addr, timeoutMs: MATCH_MS });
    const tls = await m.take(link.local);
    if (head.byteLength > 0) await link.write(head);
    const l = link;
    const back = pump(l, outer);
    void pump(outer, l);
    // The TLS Conn closed: the last bytes it sent still go out (bounded), then all closes.
    void tls.closed.then(() => Promise.race([back, new Promise((r) => setTimeout(r, MATCH_MS))]))
      .then(() => {
        outer.close();
        l.close();
      });
    return withRemote(tls, outer.remote, undefined, outer.local);
  } catch (e) {
    link?.close();
    outer.close();
    throw e;
  }
}

/** `Net.listen` with `tls` and `deferTls` on `net`, whose TLS listener starts TLS at accept. */
export async function loopbackTls(
  net: Net,
  { host, port }: ListenOptions,
  tls: TlsServerOptions,
): Promise<Listener> {
  const outer = await net.listen({ host, port });
  let m: Matcher;
  try {
    m = new Matcher(await net.listen({ host: "127.0.0.1", port: 0, tls }));
  } catch (e) {
    outer.close();
    throw e;
  }
  const addr: Addr = outer.addr;
  const listener: Listener = {
    addr,
    accept: async () => {
      const c = await outer.accept();
      if (c === null) return null;
      let started = false;
      c.startTls = (head) => {
        if (started) return Promise.reject(new TypeError("startTls: called twice"));
        started = true;
        return splice(net, m, c, head);
      };
      return c;
    },
    close: () => {
      outer.close();
      m.inner.close();
    },
    [Symbol.asyncIterator]: () => acceptAll(listener),
  };
  return listener;
}
