/**
 * A {@link Conn} and a {@link Listener} on `node:net` sockets, typed
 * structurally so that this file stays runtime free: Node's adapter uses
 * them for everything, Deno's and Bun's (whose own sockets start server TLS
 * at accept) for a listener with `deferTls`, over their `node:net` and
 * `node:tls`, which can start server TLS on an accepted socket.
 *
 * Reading: the socket flows into a {@link ReadQueue}; when it holds
 * `READ_HWM` bytes nobody has read, the socket is paused (and its runtime
 * stops reading once the stream's own buffer is full too) and resumed when
 * the queue is empty. Writing: `socket.write()` returns false above the
 * writable high-water mark, then `write()` waits for `drain`. Half-close:
 * `allowHalfOpen` on both sides, `end()` is `socket.end()`.
 *
 * `deferTls`: the listener yields plain Conns; {@link SocketConn.startTls}
 * hands the socket over to a server TLS socket (`socket.unshift()`s the
 * bytes read past the prologue and those not yet read, which `node:tls`
 * takes as the start of the TLS stream) and returns the Conn on it.
 *
 * @module
 */
import type { Addr, Conn, Listener, ListenOptions, TlsServerOptions } from "../net.ts";
import type { NetError } from "../errors.ts";
import { AcceptQueue } from "./listener.ts";
import { ReadQueue, Waiters } from "./conn.ts";
import { closedError, toNetError, unusableCertificate } from "./errors.ts";

/** What {@link SocketConn} uses of a `net.Socket` or `tls.TLSSocket`. */
export interface StreamSocket {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeAllListeners(event: string): unknown;
  write(chunk: Uint8Array): boolean;
  end(callback?: (err?: unknown) => void): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  unshift(chunk: Uint8Array): void;
  setNoDelay(on?: boolean): unknown;
  cork(): void;
  uncork(): void;
}

/** What {@link socketListener} uses of a `net.Server`. */
export interface SocketServer {
  address(): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
  close(): unknown;
}

/** What {@link listenSockets} uses of `node:net`. */
export interface NetModule {
  createServer(options: never): SocketServer & {
    once(event: "error", listener: (e: unknown) => void): unknown;
    listen(options: { host: string; port: number }, callback: () => void): unknown;
    removeAllListeners(event: string): unknown;
  };
}

/** What {@link serverTls} uses of `node:tls`. */
export interface TlsModule {
  createSecureContext(options: { cert: string; key: string }): unknown;
  TLSSocket: new (socket: never, options: never) => StreamSocket;
}

/** The writable and readable buffer high-water mark per socket. */
export const STREAM_HWM = 64 * 1024;

/**
 * How a {@link SocketConn} writes. `coalesce`: the writes of one microtask
 * go to the socket as one (`cork()`, then `uncork()` after the microtask):
 * on a `node:tls` socket one TLS record sequence and one system call for a
 * link's batch of frames, where each write would be its records (the last
 * one often a few bytes: a 32 KiB frame is 16 + 16 KiB + 7 bytes) and its
 * system call.
 */
export interface SocketConnOptions {
  coalesce?: boolean;
}

/** Wraps an accepted socket in a server TLS socket (the listener's certificate). */
export type ServerTls = (raw: StreamSocket) => StreamSocket;

const RESOLVED = Promise.resolve();
const EVENTS = ["data", "end", "drain", "error", "close"];

/** A {@link Conn} on a `net.Socket` or `tls.TLSSocket`. */
export class SocketConn implements Conn {
  readonly local: Addr;
  readonly remote: Addr;
  readonly closed: Promise<void>;
  #sock: StreamSocket;
  #reads: ReadQueue;
  #drain = new Waiters();
  #done = false; // close() called, socket closed, or handed over
  #error: NetError | null = null;
  #ended: Promise<void> | null = null;
  #tls: ServerTls | null;
  #opts: SocketConnOptions;
  #corked = false;
  #onClose!: () => void;

  /** `tls`: a plain Conn of a `deferTls` listener, TLS started by {@link startTls}. */
  constructor(
    sock: StreamSocket,
    tls: ServerTls | null = null,
    addrs?: [Addr, Addr],
    opts: SocketConnOptions = {},
  ) {
    this.#sock = sock;
    this.#tls = tls;
    this.#opts = opts;
    this.#reads = new ReadQueue({ pause: () => sock.pause(), resume: () => sock.resume() });
    sock.setNoDelay(true);
    this.local = addrs?.[0] ?? { host: sock.localAddress ?? "", port: sock.localPort ?? 0 };
    this.remote = addrs?.[1] ?? { host: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
    this.closed = new Promise((r) => (this.#onClose = r));
    sock.on("data", (chunk: Uint8Array) => this.#reads.push(chunk));
    sock.on("end", () => this.#reads.end());
    sock.on("drain", () => this.#drain.resolve());
    sock.on("error", (e: unknown) => this.#fail(toNetError(e)));
    sock.on("close", () => this.#gone());
  }

  #gone(): void {
    this.#done = true;
    this.#reads.close();
    if (this.#drain.size > 0) this.#drain.reject(this.#error ?? closedError());
    this.#onClose();
  }

  #fail(e: NetError): void {
    this.#error ??= e;
    this.#reads.fail(this.#error);
    this.#drain.reject(this.#error);
  }

  read(): Promise<Uint8Array | null> {
    return this.#reads.read();
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done || this.#ended) return Promise.reject(closedError());
    if (this.#opts.coalesce) this.#corkMicrotask();
    return this.#sock.write(chunk) ? RESOLVED : this.#drain.wait();
  }

  /** `coalesce`: the socket is corked until the current microtask ends. */
  #corkMicrotask(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#sock.cork();
    queueMicrotask(this.#uncork);
  }

  /**
   * `Conn.writev`: the chunks are corked and go to the socket's `_writev`
   * as one (with `coalesce`, with the rest of the microtask's writes).
   */
  writev(chunks: Uint8Array[]): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done || this.#ended) return Promise.reject(closedError());
    const sock = this.#sock;
    const own = !this.#opts.coalesce;
    if (own) sock.cork();
    else this.#corkMicrotask();
    let ok = true;
    for (const c of chunks) ok = sock.write(c);
    if (own) sock.uncork();
    return ok ? RESOLVED : this.#drain.wait();
  }

  #uncork = () => {
    this.#corked = false;
    this.#sock.uncork();
  };

  end(): Promise<void> {
    if (this.#ended) return this.#ended;
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done) return Promise.reject(closedError());
    return (this.#ended = new Promise((res, rej) => {
      this.#sock.end((err?: unknown) => {
        if (err || this.#error) rej(this.#error ?? toNetError(err));
        else res();
      });
    }));
  }

  close(): void {
    if (this.#done) return;
    if (this.#corked) this.#uncork(); // what was written goes out first, as without coalescing
    this.#done = true;
    this.#reads.close(true);
    this.#sock.destroy();
    if (this.#drain.size > 0) this.#drain.reject(closedError());
  }

  setNoDelay(on: boolean): void {
    this.#sock.setNoDelay(on);
  }

  /**
   * `Conn.startTls`: this Conn is done (`closed` resolves, nothing more is
   * read or written on it) and the returned one owns the socket.
   */
  // deno-lint-ignore require-await
  async startTls(head: Uint8Array): Promise<Conn> {
    const tls = this.#tls;
    if (tls === null) throw new TypeError("startTls: not a connection of a deferTls listener");
    if (this.#done || this.#ended) throw this.#error ?? closedError();
    const sock = this.#sock;
    if (this.#corked) this.#uncork(); // the plain bytes written so far go out before TLS
    const unread = [head, ...this.#reads.take()];
    for (const event of EVENTS) sock.removeAllListeners(event);
    sock.pause();
    const total = unread.reduce((n, c) => n + c.byteLength, 0);
    if (total > 0) {
      const bytes = new Uint8Array(total);
      unread.reduce((at, c) => (bytes.set(c, at), at + c.byteLength), 0);
      sock.unshift(bytes);
    }
    this.#reads.close(true);
    this.#gone();
    return new SocketConn(tls(sock), null, [this.local, this.remote], this.#opts);
  }
}

/**
 * Accepted sockets go into an {@link AcceptQueue}: as they are, wrapped at
 * once in server TLS (`tls`), or plain with TLS to start later
 * (`tls` and `deferTls`).
 */
export function socketListener(
  server: SocketServer,
  tls: ServerTls | null,
  deferTls = false,
  opts: SocketConnOptions = {},
): Listener {
  const a = server.address() as { address: string; port: number };
  const listener = new AcceptQueue({ host: a.address, port: a.port }, () => server.close());
  server.on("connection", (raw: StreamSocket) => {
    if (tls === null) listener.push(new SocketConn(raw, null, undefined, opts));
    else if (deferTls) listener.push(new SocketConn(raw, tls, undefined, opts));
    else listener.push(new SocketConn(tls(raw), null, undefined, opts));
  });
  server.on("error", () => {}); // after listen, errors surface per connection
  return listener;
}

/**
 * The {@link ServerTls} of `tls` (`node:tls`) with the certificate `t`: a
 * server `TLSSocket` on the socket, with no handshake timeout of its own
 * (what `tls.Server` does, minus its 120 s timeout). A bad certificate or
 * key is ETLS, at once.
 */
export function serverTls(tls: TlsModule, t: TlsServerOptions): ServerTls {
  let secureContext: unknown;
  try {
    secureContext = tls.createSecureContext({ cert: t.cert, key: t.key });
  } catch (e) {
    throw unusableCertificate(e);
  }
  const options = { isServer: true, secureContext, highWaterMark: STREAM_HWM };
  return (raw) => new tls.TLSSocket(raw as never, options as never);
}

/** `Net.listen` on `net` (`node:net`), TLS by `tls` (see {@link socketListener}). */
export function listenSockets(
  net: NetModule,
  { host, port, deferTls }: ListenOptions,
  tls: ServerTls | null,
  opts: SocketConnOptions = {},
): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, highWaterMark: STREAM_HWM } as never);
    server.once("error", (e) => reject(toNetError(e)));
    server.listen({ host, port }, () => {
      server.removeAllListeners("error");
      resolve(socketListener(server, tls, deferTls, opts));
    });
  });
}
