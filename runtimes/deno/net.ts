/**
 * {@link Net} for Deno, on `Deno.connect` / `Deno.listen`.
 *
 * Deno sockets are pull-based: `read()` is one `conn.read()` into a buffer
 * we own, so nothing is read that the consumer did not ask for (read
 * backpressure is free). `write()` resolves once the kernel took every byte
 * (Deno's writes may be partial, so it loops); concurrent writes are chained
 * to keep their order. `end()` is `closeWrite()` (shutdown(2)) after queued
 * writes. The resource is closed once both directions are done, on error, or
 * on `close()`.
 *
 * `lookup()` uses `node:dns` (getaddrinfo), because `Deno.resolveDns` ignores
 * /etc/hosts. Errors are mapped by src/adapter/'s `toNetError`: Deno's
 * carry an error class name and often no code, and a TLS connection's are
 * also read by their words (`{ tls: true }`).
 *
 * TLS (rustls), the same DenoConn on a `Deno.TlsConn`:
 * - Dial, verified: `Deno.connect`, `setNoDelay`, then `Deno.startTls` with
 *   `hostname: serverName ?? host` (the name verified, and the SNI) and
 *   `caCerts: ca`, and `handshake()`, all within the dial timeout. Careful:
 *   in Deno `caCerts` are trusted *in addition to* Deno's default roots
 *   (Mozilla's, or the system's with DENO_TLS_CA_STORE=system); Node and Bun
 *   trust only `ca` when it is given.
 * - Dial, pinned: see {@link dialPinned}. Deno's TLS client can neither skip
 *   chain verification nor show the peer certificate, and Deno's `node:tls`
 *   (which can) is no data path: it reads whatever the peer sends with no
 *   backpressure (a paused socket took 600 MiB in 2 s) and loses the EOF
 *   that comes while data is buffered. So `node:tls` only fetches the
 *   certificate once (handshake, check the pin, close), and the connection
 *   itself is rustls with that certificate as the trust anchor.
 * - Listen with `deferTls`: src/adapter/loopback_tls.ts (rustls starts TLS
 *   only at accept, Deno's node:tls server lacks backpressure and half-close).
 * - Listen: `Deno.listenTls`; a loop accepts eagerly (like Node and Bun do),
 *   since rustls only runs a handshake once it is accepted; the handshake
 *   runs in the background and the Conn is queued at once, so a silent
 *   client holds up nobody. `TlsConn` has no `setNoDelay`: accepted TLS
 *   connections keep Nagle's algorithm, `setNoDelay()` does nothing on them
 *   (dialled ones get it on the TCP socket before `startTls`).
 * - close() during the handshake: the Conn is done at once (`closed`
 *   resolves, a pending read gives `null`), but rustls-tokio-stream keeps
 *   the socket in its handshake task until the handshake ends: the peer
 *   completes it, sends garbage or goes away. Deno has no way to abort it,
 *   so a client that connects and stays silent keeps its fd on a Deno server.
 * - Half-close: `closeWrite()` sends close_notify and shuts down the write
 *   side; reading goes on. The peer's close_notify shows as EOF (`null`).
 *
 * @module
 */
import * as dgram from "node:dgram";
import { lookup as dnsLookup } from "node:dns/promises";
import {
  type Addr,
  type BindUdpOptions,
  type Conn,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Net,
} from "../../src/net.ts";
import { normalizePins } from "../../src/tls.ts";
import { fetchPinned, type Pinned } from "./pin.ts";
import { acceptAll, AcceptQueue, bindDatagram, closedError } from "../../src/adapter/mod.ts";
import { listenError, loopbackTls, timedOut, toNetError } from "../../src/adapter/mod.ts";
import { NetError } from "../../src/errors.ts";

/**
 * Bounds of the buffer each `conn.read()` fills. A pending read holds its
 * buffer, so idle connections keep a small one; the size doubles after a
 * read that filled it and halves after one that used under a quarter.
 */
const READ_MIN = 2 * 1024;
const READ_MAX = 256 * 1024;

// (the addresses of a TlsConn from startTls have no `transport`)
const addr = (a: Deno.Addr): Addr =>
  "hostname" in a ? { host: a.hostname, port: a.port } : { host: "", port: 0 };

class DenoConn implements Conn {
  readonly local: Addr;
  readonly remote: Addr;
  readonly closed: Promise<void>;
  #conn: Deno.TcpConn | Deno.TlsConn;
  #tls: boolean;
  #buf: Uint8Array | null = null;
  #readSize = READ_MIN;
  #eof = false;
  #ended: Promise<void> | null = null;
  #writeEnded = false;
  #done = false;
  #error: NetError | null = null;
  #writeTail: Promise<void> | null = null;
  #writes = 0;
  #onClosed!: () => void;
  readonly nagle: boolean;

  /** `nagle`: an accepted TLS connection (see the module notes). */
  constructor(conn: Deno.TcpConn | Deno.TlsConn, nagle = false) {
    this.#conn = conn;
    this.nagle = nagle;
    this.#tls = !("setNoDelay" in conn);
    this.setNoDelay(true);
    this.local = addr(conn.localAddr);
    this.remote = addr(conn.remoteAddr);
    this.closed = new Promise((r) => (this.#onClosed = r));
  }

  async read(): Promise<Uint8Array | null> {
    if (this.#eof) return null;
    if (this.#done) {
      if (this.#error) throw this.#error;
      return null;
    }
    const buf = this.#buf ?? new Uint8Array(this.#readSize);
    let n: number | null;
    try {
      n = await this.#conn.read(buf);
    } catch (e) {
      if (this.#done && !this.#error) return null;
      throw this.#fail(e);
    }
    if (n === null) {
      this.#eof = true;
      if (this.#writeEnded) this.#finish();
      return null;
    }
    const size = this.#readSize;
    if (n === buf.byteLength) this.#readSize = Math.min(size * 2, READ_MAX);
    else if (n < size / 4) this.#readSize = Math.max(size / 2, READ_MIN);
    // Hand over a mostly full buffer; copy out a small read and keep the buffer.
    if (n >= buf.byteLength / 2) {
      this.#buf = null;
      return buf.subarray(0, n);
    }
    this.#buf = buf.byteLength === this.#readSize ? buf : null;
    return buf.slice(0, n);
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done || this.#ended) return Promise.reject(closedError());
    this.#writes++;
    if (this.#writeTail === null) return (this.#writeTail = this.#writeAll(chunk));
    const run = () => this.#writeAll(chunk); // after the writes before it
    return (this.#writeTail = this.#writeTail.then(run, run));
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    try {
      if (this.#error) throw this.#error;
      if (this.#done) throw closedError();
      for (let off = 0; off < chunk.byteLength;) {
        off += await this.#conn.write(off === 0 ? chunk : chunk.subarray(off));
      }
    } catch (e) {
      throw this.#done && !this.#error ? closedError() : this.#fail(e);
    } finally {
      if (--this.#writes === 0) this.#writeTail = null;
    }
  }

  end(): Promise<void> {
    if (this.#ended) return this.#ended;
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done) return Promise.reject(closedError());
    const tail = this.#writeTail;
    return (this.#ended = (async () => {
      if (tail) await tail;
      try {
        await this.#conn.closeWrite();
      } catch (e) {
        throw this.#done && !this.#error ? closedError() : this.#fail(e);
      }
      this.#writeEnded = true;
      if (this.#eof) this.#finish();
    })());
  }

  #fail(e: unknown): NetError {
    this.#error ??= toNetError(e, { tls: this.#tls });
    this.#finish();
    return this.#error;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#onClosed();
  }

  close(): void {
    this.#finish();
  }

  setNoDelay(on: boolean): void {
    // A Deno.TlsConn has none; dialled ones got it before startTls.
    if ("setNoDelay" in this.#conn) this.#conn.setNoDelay(on);
  }
}

class DenoListener implements Listener {
  readonly addr: Addr;
  #listener: Deno.TcpListener;
  #closed = false;

  constructor(listener: Deno.TcpListener) {
    this.#listener = listener;
    this.addr = addr(listener.addr);
  }

  async accept(): Promise<Conn | null> {
    if (this.#closed) return null;
    try {
      return new DenoConn(await this.#listener.accept());
    } catch (e) {
      if (this.#closed || (e as Error)?.name === "BadResource") return null;
      throw toNetError(e);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Conn> {
    return acceptAll(this);
  }
}

/** Connections a TLS listener accepts ahead of `accept()` calls, at most. */
const TLS_BACKLOG = 128;

/**
 * A TLS listener accepts in a loop of its own (rustls handshakes only once
 * a connection is accepted) into an {@link AcceptQueue} of at most
 * {@link TLS_BACKLOG}. An accept error (EMFILE, say) goes to the next
 * `accept()`, and the loop goes on after a pause.
 */
function tlsListener(listener: Deno.TlsListener): Listener {
  const queue = new AcceptQueue(addr(listener.addr), () => {
    try {
      listener.close();
    } catch {
      // already closed
    }
  });
  void (async () => {
    while (!queue.closed) {
      if (queue.size >= TLS_BACKLOG) {
        await queue.room(TLS_BACKLOG); // until an accept() takes one, or close()
        continue;
      }
      let item: Conn | NetError;
      try {
        item = new DenoConn(await listener.accept(), true);
      } catch (e) {
        if (queue.closed || (e as Error)?.name === "BadResource") break;
        item = toNetError(e);
        await new Promise((r) => setTimeout(r, 100));
      }
      queue.push(item);
    }
    queue.close();
  })();
  return queue;
}

function dial(opts: DialOptions): Promise<Conn> {
  if (opts.tls?.fingerprint !== undefined) return dialPinned(opts, opts.tls.fingerprint);
  if (opts.tls) {
    const { serverName, ca } = opts.tls;
    return dialTls(opts, serverName ?? opts.host, ca ?? null, Date.now());
  }
  return dialTcp(opts).then((c) => new DenoConn(c));
}

/** Milliseconds left of the dial timeout started at `start`, or undefined. */
const left = (opts: DialOptions, start: number) =>
  opts.timeoutMs === undefined ? undefined : Math.max(0, opts.timeoutMs - (Date.now() - start));

/**
 * A verified TLS dial: TCP, then `startTls` (verifying `name` against the
 * default roots and `ca`) and its handshake, all within `timeoutMs`.
 */
async function dialTls(
  opts: DialOptions,
  name: string,
  ca: string[] | null,
  start: number,
): Promise<DenoConn> {
  const tcp = await dialTcp({ ...opts, ...withTimeout(left(opts, start)) });
  let conn: Deno.TlsConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    tcp.setNoDelay(true); // the TlsConn on top has no setNoDelay
    conn = await Deno.startTls(tcp, { hostname: name, ...(ca ? { caCerts: ca } : {}) });
    const handshake = conn.handshake();
    const ms = left(opts, start);
    if (ms === undefined) await handshake;
    else {
      handshake.catch(() => {}); // settles once the connection is closed below
      await Promise.race([
        handshake,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(timedOut(opts.host, opts.port, opts.timeoutMs!, "TLS connect")),
            ms,
          );
        }),
      ]);
    }
    return new DenoConn(conn);
  } catch (e) {
    try {
      (conn ?? tcp).close();
    } catch {
      // already closed
    }
    throw toNetError(e, { tls: true });
  } finally {
    clearTimeout(timer);
  }
}

const withTimeout = (ms: number | undefined) => ms === undefined ? {} : { timeoutMs: ms };

/** Pinned certificates fetched (or being fetched), by pin; for a list, by pins and server. */
const pinned = new Map<string, Promise<Pinned>>();

/**
 * A pinned dial, in two steps:
 *
 * 1. Once per pin (a list: per server) and process: fetch the server's certificate with Deno's
 *    `node:tls` (handshake without verification, then close; no application
 *    byte is sent) and check the pin: a mismatch is ETLS with both
 *    fingerprints. The certificate must be self-signed (the pin of a CA
 *    issued certificate is refused on Deno: rustls cannot trust such a
 *    leaf by itself; use `ca` for those).
 * 2. Dial with rustls, trusting that certificate, and verifying one of its
 *    own names ({@link pinName}). rustls trusts `caCerts` on top of the
 *    default roots, so the name check stays on: it is what keeps a
 *    certificate from a public CA out, and `pinName` prefers names no
 *    public CA may certify (localhost, private and loopback IPs, .invalid,
 *    .test, .localhost, .internal).
 *
 * If the rustls handshake fails with a cached certificate, it is fetched
 * again (the server may have a new one: then the mismatch is reported).
 */
async function dialPinned(opts: DialOptions, pin: string | readonly string[]): Promise<Conn> {
  const pins = normalizePins(pin);
  const key = pins.length === 1 ? pins[0]! : `${pins.join(",")} ${opts.host} ${opts.port}`;
  const start = Date.now();
  for (let attempt = 0;; attempt++) {
    let fetching = pinned.get(key);
    const cached = fetching !== undefined;
    if (!fetching) {
      // concurrent first dials share one fetch
      pinned.set(key, fetching = fetchPinned(opts, pins, left(opts, start)));
      fetching.catch(() => pinned.get(key) === fetching && pinned.delete(key));
    }
    const cert = await fetching;
    try {
      return await dialTls(opts, cert.name, [cert.pem], start);
    } catch (e) {
      // rustls refused the cached certificate: the server may have a new one
      const refused = e instanceof NetError && e.code === "ETLS" && /certificate/i.test(e.message);
      if (!refused || !cached || attempt > 0) throw e;
      if (pinned.get(key) === fetching) pinned.delete(key);
    }
  }
}

async function dialTcp({ host, port, timeoutMs }: DialOptions): Promise<Deno.TcpConn> {
  if (timeoutMs === undefined) {
    try {
      return await Deno.connect({ hostname: host, port, transport: "tcp" });
    } catch (e) {
      throw toNetError(e);
    }
  }
  const abort = new AbortController();
  const connecting = Deno.connect({ hostname: host, port, transport: "tcp", signal: abort.signal });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(timedOut(host, port, timeoutMs));
    }, timeoutMs);
  });
  try {
    return await Promise.race([connecting, timeout]);
  } catch (e) {
    connecting.then((c) => c.close(), () => {});
    throw toNetError(e);
  } finally {
    clearTimeout(timer);
  }
}

function listen(opts: ListenOptions): Promise<Listener> {
  const { host: hostname, port, tls } = opts;
  try {
    if (tls && opts.deferTls) return loopbackTls(denoNet, opts, tls);
    return Promise.resolve(
      tls
        ? tlsListener(Deno.listenTls({ hostname, port, transport: "tcp", ...tls }))
        : new DenoListener(Deno.listen({ hostname, port, transport: "tcp" })),
    );
  } catch (e) {
    return Promise.reject(listenError(e, tls !== undefined));
  }
}

async function lookup(host: string): Promise<string[]> {
  try {
    const all = await dnsLookup(host, { all: true, verbatim: true });
    return all.map((a) => a.address);
  } catch (e) {
    throw toNetError(e);
  }
}

/** The Deno adapter. */
/** UDP on `node:dgram` (src/adapter/udp.ts). */
const bindUdp = (opts: BindUdpOptions) => bindDatagram(dgram, opts);

export const denoNet: Net = { runtime: "deno", dial, listen, bindUdp, lookup };
