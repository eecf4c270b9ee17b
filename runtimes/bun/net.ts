/**
 * {@link Net} for Bun, on `Bun.connect` / `Bun.listen`.
 *
 * Bun sockets are callback-based and unbuffered:
 * - `socket.write()` returns how many bytes the kernel took, possibly fewer
 *   than given; the rest is queued here (as a view, no copy) and written on
 *   `drain`. `write()` resolves once the queue is empty again.
 * - Reading: `data` chunks go to a {@link ReadQueue} (src/adapter/); when
 *   `READ_HWM` unread bytes are queued the socket is `pause()`d, and
 *   `resume()`d once the queue is empty.
 * - Half-close: `allowHalfOpen: true`; `end()` is `socket.shutdown()`
 *   (shutdown(2), SHUT_WR). Careful: in Bun 1.4 `socket.end()` closes the
 *   whole socket at once (the `close` handler runs inside the call), so it
 *   is what `close()` uses. A peer FIN shows as the `end` handler, or as
 *   `close` without an error when our side was already shut down.
 *
 * TLS (BoringSSL), the same BunConn on a TLS socket, with a `handshake`
 * handler (so `open` runs at the TCP connect or accept, and the handshake
 * result comes to `handshake`):
 * - Dial: `Bun.connect({ tls })` resolves at the TCP connect already; the
 *   dial waits for `handshake` too, within the timeout. Verified: Bun checks
 *   the chain (`ca`, else its bundled Mozilla roots) and the name
 *   (`serverName ?? host`) and reports the result there. Pinned:
 *   `rejectUnauthorized: false` and the SHA-256 of
 *   `getPeerCertificate().raw` must equal the pin, checked in `handshake`
 *   before the dial resolves and anything is written.
 * - Listen: `Bun.listen({ tls: { cert, key } })`; the Conn goes into the
 *   {@link AcceptQueue} at `open` (TCP accept), writes wait until its
 *   handshake is done; a failed handshake fails the Conn with ETLS.
 * - Listen with `deferTls`: `node:net` and `node:tls` (src/adapter/socket.ts),
 *   whose server TLSSocket starts TLS on an accepted socket after the
 *   prologue (`Bun.listen` starts it at accept).
 * - Half-close: `shutdown()` on a TLS socket sends close_notify and FIN;
 *   the peer sees `end`; reading and (the peer's) writing go on.
 *
 * @module
 */
import * as dgram from "node:dgram";
import {
  type Addr,
  type BindUdpOptions,
  type Conn,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Net,
  type TlsClientOptions,
  type TlsServerOptions,
} from "../../src/net.ts";
import { normalizePins } from "../../src/tls.ts";
import {
  AcceptQueue,
  bindDatagram,
  checkPin,
  closedError,
  listenError,
  listenSockets,
  ReadQueue,
  serverTls,
  timedOut,
  toNetError,
  Waiters,
} from "../../src/adapter/mod.ts";
import type { Socket, SocketHandler } from "bun";
import * as nodeNet from "node:net";
import * as nodeTls from "node:tls";
import { NetError } from "../../src/errors.ts";

/** The error for a failed TLS handshake, `err` being what Bun reported. */
function handshakeError(err: Error | null): NetError {
  const e = err ? toNetError(err) : null;
  if (e && e.code !== "EOTHER") return e;
  return new NetError("ETLS", `TLS handshake failed: ${err?.message ?? "connection closed"}`, {
    cause: err,
  });
}

const RESOLVED = Promise.resolve();
const sha256 = (data: Uint8Array) => new Bun.CryptoHasher("sha256").update(data).digest();
const NO_ADDR: Addr = { host: "", port: 0 };

type Sock = Socket<BunConn>;

/** An address of `s`, or null while there is none (not open yet, or closed). */
function address(s: Sock | undefined, read: (s: Sock) => Addr): Addr | null {
  if (!s) return null;
  try {
    const a = read(s);
    return typeof a.host === "string" && a.host !== "" && typeof a.port === "number" ? a : null;
  } catch {
    return null;
  }
}

class BunConn implements Conn {
  /** Handlers shared by every socket; `socket.data` is the BunConn. */
  static readonly handlers: SocketHandler<BunConn> = {
    binaryType: "uint8array",
    open: (s) => s.data.#attach(s),
    data: (s, chunk: Uint8Array) => s.data.#reads.push(chunk),
    drain: (s) => s.data.#onDrain(),
    end: (s) => s.data.#onEnd(),
    close: (s, e) => s.data.#onClose(e),
    error: (s, e) => s.data.#fail(toNetError(e)),
    connectError: () => {}, // Bun.connect() rejects too, with the same error
    handshake: (s, ok, err) => s.data.#onHandshake(ok, err),
  };

  readonly closed: Promise<void>;
  #sock!: Sock;
  #reads = new ReadQueue({ pause: () => this.#sock.pause(), resume: () => this.#sock.resume() });
  #done = false; // close() called or socket closed
  #error: NetError | null = null;
  #pending: Uint8Array[] = []; // bytes the kernel did not take yet
  #drain = new Waiters(); // writes (and a deferred end()) waiting for #pending to empty
  #ended: Promise<void> | null = null;
  #shutdownWhenDrained = false;
  /** A TLS socket. */
  #tls = false;
  /** TLS handshake not done yet: writes wait in #pending. */
  #handshaking = false;
  /** A TLS dial waiting for the handshake, and the pin to check. */
  #dialing: {
    pin: string | readonly string[] | undefined;
    resolve: () => void;
    reject: (e: NetError) => void;
  } | null = null;
  #onClosed!: () => void;
  /** Addresses, read at first use: each of Bun's getters is a system call. */
  #local: Addr | null = null;
  #remote: Addr | null = null;

  constructor() {
    this.closed = new Promise((r) => (this.#onClosed = r));
  }

  /** Wraps a socket accepted by a listener (`tls`: still in its handshake). */
  static accepted(s: Sock, tls: boolean): BunConn {
    const conn = new BunConn();
    conn.#tls = conn.#handshaking = tls;
    conn.#attach(s);
    return conn;
  }

  /** For a TLS dial: resolves once the handshake is done and the server verified. */
  static dialing(
    pin: string | readonly string[] | undefined,
  ): { conn: BunConn; ready: Promise<void> } {
    const conn = new BunConn();
    conn.#tls = conn.#handshaking = true;
    const ready = new Promise<void>((resolve, reject) => {
      conn.#dialing = { pin, resolve, reject };
    });
    ready.catch(() => {}); // the dial may have given up on it already (timeout)
    return { conn, ready };
  }

  #onHandshake(ok: boolean, err: Error | null): void {
    const dialing = this.#dialing;
    this.#dialing = null;
    // `ok` is false for a failed handshake, and (rejectUnauthorized) for a
    // server that failed verification; with a pin only the pin counts.
    let error: NetError | null = null;
    if (!ok) error = handshakeError(err);
    else if (dialing?.pin !== undefined) {
      error = checkPin(dialing.pin, this.#sock.getPeerCertificate()?.raw, sha256);
    }
    if (error) {
      dialing?.reject(error);
      return this.#fail(error);
    }
    this.#handshaking = false;
    dialing?.resolve();
    this.#onDrain(); // writes queued during the handshake
  }

  /**
   * Bun sets TCP_NODELAY itself on every socket it accepts or connects
   * (strace, Bun 1.4: once at accept, twice at connect); setting it again
   * here was one more system call per connection.
   */
  #attach(s: Sock): void {
    this.#sock = s;
    s.data = this;
  }

  get local(): Addr {
    this.#local ??= address(this.#sock, (s) => ({ host: s.localAddress, port: s.localPort }));
    return this.#local ?? NO_ADDR;
  }

  get remote(): Addr {
    this.#remote ??= address(this.#sock, (s) => ({ host: s.remoteAddress, port: s.remotePort }));
    return this.#remote ?? NO_ADDR;
  }

  #onEnd(): void {
    this.#reads.end();
    if (this.#ended && !this.#shutdownWhenDrained) this.#sock.end(); // both directions done
  }

  #onClose(e?: Error): void {
    if (e && !this.#done) this.#error ??= toNetError(e);
    if (this.#dialing) {
      this.#dialing.reject(handshakeError(e ?? null));
      this.#dialing = null;
    }
    this.#done = true;
    if (this.#error) this.#reads.fail(this.#error);
    this.#reads.close();
    if (this.#drain.size > 0) this.#drain.reject(this.#error ?? closedError());
    this.#onClosed();
  }

  #onDrain(): void {
    if (this.#handshaking) return; // #onHandshake flushes
    const q = this.#pending;
    while (q.length > 0) {
      const c = q[0]!;
      const n = this.#sock.write(c);
      if (n < 0) return this.#fail(new NetError("EPIPE", "socket closed while writing"));
      if (n < c.byteLength) {
        q[0] = c.subarray(n);
        return;
      }
      q.shift();
    }
    this.#drain.resolve();
    if (this.#shutdownWhenDrained) this.#shutdown();
  }

  #fail(e: NetError): void {
    this.#error ??= e;
    this.#reads.fail(this.#error);
    this.#drain.reject(this.#error);
    if (!this.#done) this.close();
  }

  read(): Promise<Uint8Array | null> {
    return this.#reads.read();
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done || this.#ended) return Promise.reject(closedError());
    if (this.#pending.length === 0 && !this.#handshaking) {
      const n = this.#sock.write(chunk);
      if (n === chunk.byteLength) return RESOLVED;
      if (n < 0) return Promise.reject(closedError());
      if (n > 0) chunk = chunk.subarray(n);
    }
    this.#pending.push(chunk);
    return this.#drain.wait();
  }

  end(): Promise<void> {
    if (this.#ended) return this.#ended;
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done) return Promise.reject(closedError());
    if (this.#pending.length === 0 && !this.#handshaking) {
      this.#ended = RESOLVED;
      this.#shutdown();
    } else {
      this.#shutdownWhenDrained = true;
      this.#ended = this.#drain.wait();
    }
    return this.#ended;
  }

  #shutdown(): void {
    this.#shutdownWhenDrained = false;
    if (this.#reads.eof) this.#sock.end(); // both directions done: close
    else this.#sock.shutdown();
  }

  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#reads.close(true);
    this.#pending = [];
    this.#drain.reject(closedError());
    // TCP: end() closes at once; the close handler resolves `closed`. TLS:
    // end() sends close_notify and keeps the socket until the peer answers
    // (forever if it does not read, or if we are paused), so terminate().
    if (this.#tls) this.#sock?.terminate();
    else this.#sock?.end();
  }

  setNoDelay(on: boolean): void {
    this.#sock.setNoDelay(on);
  }
}

/** Sockets accepted go into an {@link AcceptQueue} at `open` (TCP accept). */
function bunListener(host: string, port: number, tls: TlsServerOptions | undefined): Listener {
  const server = Bun.listen<BunConn>({
    hostname: host,
    port,
    allowHalfOpen: true,
    exclusive: true, // else a second listener on a port in use succeeds (and shares it)
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    socket: {
      ...BunConn.handlers,
      // sockets open from the event loop, after `listener` below exists
      open: (s): void => listener.push(BunConn.accepted(s, tls !== undefined)),
    },
  });
  const listener = new AcceptQueue({ host, port: server.port }, () => server.stop(false));
  return listener;
}

/** Bun's client TLS options for `t`: verify as usual, or nothing (pin). */
function clientTls(t: TlsClientOptions) {
  return {
    rejectUnauthorized: t.fingerprint === undefined,
    ...(t.serverName !== undefined ? { serverName: t.serverName } : {}),
    ...(t.ca ? { ca: t.ca } : {}),
  };
}

async function dial({ host, port, timeoutMs, tls }: DialOptions): Promise<Conn> {
  if (tls?.fingerprint !== undefined) normalizePins(tls.fingerprint);
  const { conn, ready } = tls ? BunConn.dialing(tls.fingerprint) : { conn: new BunConn() };
  const connecting = Bun.connect<BunConn>({
    hostname: host,
    port,
    allowHalfOpen: true,
    data: conn,
    socket: BunConn.handlers,
    ...(tls ? { tls: clientTls(tls) } : {}),
  });
  const connected = ready ? connecting.then(() => ready) : connecting;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = timeoutMs === undefined ? null : new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(timedOut(host, port, timeoutMs, tls ? "TLS connect" : "connect")),
      timeoutMs,
    );
  });
  try {
    await (timeout ? Promise.race([connected, timeout]) : connected);
    return conn;
  } catch (e) {
    connecting.then(() => conn.close(), () => {});
    throw toNetError(e);
  } finally {
    clearTimeout(timer);
  }
}

async function listen(opts: ListenOptions): Promise<Listener> {
  const { host, port, tls } = opts;
  if (tls && opts.deferTls) return listenSockets(nodeNet, opts, serverTls(nodeTls, tls));
  // Bun reports the hostname it was given; resolve it so `addr` is an IP.
  const ip = /^[\d.]+$|:/.test(host) ? host : (await lookup(host))[0] ?? host;
  try {
    return bunListener(ip, port, tls);
  } catch (e) {
    throw listenError(e, tls !== undefined);
  }
}

async function lookup(host: string): Promise<string[]> {
  try {
    return (await Bun.dns.lookup(host)).map((a) => a.address);
  } catch (e) {
    throw toNetError(e);
  }
}

/** The Bun adapter. */
/** UDP on `node:dgram` (src/adapter/udp.ts). */
const bindUdp = (opts: BindUdpOptions) => bindDatagram(dgram, opts);

export const bunNet: Net = { runtime: "bun", dial, listen, bindUdp, lookup };
