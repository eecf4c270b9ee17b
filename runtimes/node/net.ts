/**
 * {@link Net} for Node.js, on `node:net`.
 *
 * Reading: the socket flows into a {@link ReadQueue} (src/adapter/); when
 * it holds `READ_HWM` bytes nobody has read, the socket is paused
 * (libuv stops reading once Node's own readable buffer is full too) and
 * resumed when the queue is empty. Writing: `socket.write()` returns false
 * above the writable high-water mark, then `write()` waits for `drain`.
 * Half-close: `allowHalfOpen` on both sides, `end()` is `socket.end()`.
 * Errors are mapped by src/adapter/'s `toNetError`.
 *
 * TLS (`node:tls`, OpenSSL): the same NodeConn wraps a `tls.TLSSocket`.
 * - Dial: `tls.connect()`; the Conn is handed out on `secureConnect`, after
 *   verification: normally `rejectUnauthorized` with `ca` (or Node's bundled
 *   roots) and `checkServerIdentity(serverName ?? host)`; with a pin,
 *   `rejectUnauthorized: false` and the SHA-256 of
 *   `getPeerCertificate(true).raw` must equal the pin, checked before the
 *   dial resolves, so no application byte reaches an unverified server.
 * - Listen: a plain `net.Server`; each accepted socket is wrapped at once in
 *   a server `TLSSocket` (what `tls.Server` does internally, minus its
 *   120 s handshake timeout), so `accept()` never waits for a handshake.
 * - Half-close: `end()` sends close_notify, then FIN; reading goes on.
 *   The peer's close_notify (or FIN) shows as EOF; writing goes on after it
 *   (OpenSSL allows it: TLS 1.3 half-close). A peer that closes without
 *   close_notify also shows as EOF (Node ignores the unexpected EOF).
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { createHash } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import {
  type Addr,
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
  checkPin,
  closedError,
  ReadQueue,
  timedOut,
  toNetError,
  unusableCertificate,
  Waiters,
} from "../../src/adapter/mod.ts";
import { type NetError } from "../../src/errors.ts";

/** Node's writable and readable buffer high-water mark per socket. */
const STREAM_HWM = 64 * 1024;

const RESOLVED = Promise.resolve();
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();

/** A {@link Conn} on a `net.Socket` or `tls.TLSSocket`. */
class NodeConn implements Conn {
  readonly local: Addr;
  readonly remote: Addr;
  readonly closed: Promise<void>;
  #sock: net.Socket;
  #reads: ReadQueue;
  #drain = new Waiters();
  #done = false; // close() called or socket closed
  #error: NetError | null = null;
  #ended: Promise<void> | null = null;

  constructor(sock: net.Socket) {
    this.#sock = sock;
    this.#reads = new ReadQueue({ pause: () => sock.pause(), resume: () => sock.resume() });
    sock.setNoDelay(true);
    this.local = { host: sock.localAddress ?? "", port: sock.localPort ?? 0 };
    this.remote = { host: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
    let onClose!: () => void;
    this.closed = new Promise((r) => (onClose = r));
    sock.on("data", (chunk: Buffer) => this.#reads.push(chunk));
    sock.on("end", () => this.#reads.end());
    sock.on("drain", () => this.#drain.resolve());
    sock.on("error", (e) => this.#fail(toNetError(e)));
    sock.on("close", () => {
      this.#done = true;
      this.#reads.close();
      if (this.#drain.size > 0) this.#drain.reject(this.#error ?? closedError());
      onClose();
    });
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
    return this.#sock.write(chunk) ? RESOLVED : this.#drain.wait();
  }

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
    this.#done = true;
    this.#reads.close(true);
    this.#sock.destroy();
    if (this.#drain.size > 0) this.#drain.reject(closedError());
  }

  setNoDelay(on: boolean): void {
    this.#sock.setNoDelay(on);
  }
}

/** Accepted sockets go into an {@link AcceptQueue}, TLS ones wrapped at once. */
function nodeListener(server: net.Server, secureContext: tls.SecureContext | null): Listener {
  const a = server.address() as net.AddressInfo;
  const listener = new AcceptQueue({ host: a.address, port: a.port }, () => server.close());
  server.on("connection", (raw: net.Socket) => {
    const sock = secureContext ? new tls.TLSSocket(raw, serverSocketOptions(secureContext)) : raw;
    listener.push(new NodeConn(sock));
  });
  server.on("error", () => {}); // after listen, errors surface per connection
  return listener;
}

function dial(opts: DialOptions): Promise<Conn> {
  return opts.tls ? dialTls(opts, opts.tls) : dialTcp(opts);
}

function dialTcp({ host, port, timeoutMs }: DialOptions): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const opts: net.NetConnectOpts & { highWaterMark: number } = {
      host,
      port,
      allowHalfOpen: true,
      highWaterMark: STREAM_HWM,
    };
    const sock = net.connect(opts);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onError = (e: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(toNetError(e));
    };
    sock.once("error", onError);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.off("error", onError);
      resolve(new NodeConn(sock));
    });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        sock.off("error", onError);
        sock.destroy();
        reject(timedOut(host, port, timeoutMs));
      }, timeoutMs);
    }
  });
}

/**
 * Dials TLS with `node:tls`; resolves once the handshake is done and the
 * server verified (chain and name, or the pin), within `timeoutMs`.
 */
function dialTls(
  { host, port, timeoutMs }: DialOptions,
  t: TlsClientOptions,
): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const pin = t.fingerprint;
    if (pin !== undefined) normalizePins(pin); // throws on a malformed pin
    const name = t.serverName ?? host;
    // allowHalfOpen and highWaterMark are passed on to the TLSSocket (not in @types/node)
    const opts: tls.ConnectionOptions & { allowHalfOpen: boolean; highWaterMark: number } = {
      host,
      port,
      allowHalfOpen: true,
      highWaterMark: STREAM_HWM,
      rejectUnauthorized: pin === undefined,
      // The name to verify is `name`, whatever `host` is (Node would take the
      // servername, or else the host); with a pin nothing but the pin counts.
      checkServerIdentity: (_host, cert) =>
        pin === undefined ? tls.checkServerIdentity(name, cert) : undefined,
    };
    if (net.isIP(name) === 0) opts.servername = name; // SNI takes no IP literal (RFC 6066)
    if (t.ca) opts.ca = t.ca;
    const sock = tls.connect(opts);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fail = (e: NetError) => {
      clearTimeout(timer);
      sock.off("error", onError);
      sock.on("error", () => {}); // errors after destroy() are of no interest
      sock.destroy();
      reject(e);
    };
    const onError = (e: Error) => fail(toNetError(e));
    sock.once("error", onError);
    sock.once("secureConnect", () => {
      if (pin !== undefined) {
        const mismatch = checkPin(pin, sock.getPeerCertificate(true)?.raw, sha256);
        if (mismatch) return fail(mismatch);
      }
      clearTimeout(timer);
      sock.off("error", onError);
      resolve(new NodeConn(sock));
    });
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => fail(timedOut(host, port, timeoutMs, "TLS connect")),
        timeoutMs,
      );
    }
  });
}

/** Options of a server TLSSocket (highWaterMark is honoured, not in @types/node). */
const serverSocketOptions = (secureContext: tls.SecureContext) =>
  ({ isServer: true, secureContext, highWaterMark: STREAM_HWM }) as tls.TLSSocketOptions;

/** The context of a TLS listener; a bad certificate or key is ETLS. */
function serverContext(t: TlsServerOptions): tls.SecureContext {
  try {
    return tls.createSecureContext({ cert: t.cert, key: t.key });
  } catch (e) {
    throw unusableCertificate(e);
  }
}

function listen({ host, port, tls: tlsOpts }: ListenOptions): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const secureContext = tlsOpts ? serverContext(tlsOpts) : null;
    const server = net.createServer({ allowHalfOpen: true, highWaterMark: STREAM_HWM });
    server.once("error", (e) => reject(toNetError(e)));
    server.listen({ host, port }, () => {
      server.removeAllListeners("error");
      resolve(nodeListener(server, secureContext));
    });
  });
}

async function lookup(host: string): Promise<string[]> {
  try {
    const all = await dnsLookup(host, { all: true, verbatim: true });
    return all.map((a) => a.address);
  } catch (e) {
    throw toNetError(e);
  }
}

/** The Node.js adapter. */
export const nodeNet: Net = { runtime: "node", dial, listen, lookup };
