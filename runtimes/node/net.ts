/**
 * {@link Net} for Node.js, on `node:net`.
 *
 * Reading: the socket flows into a small queue; when the queue holds
 * {@link READ_HWM} bytes nobody has read, the socket is paused (libuv stops
 * reading once Node's own readable buffer is full too) and resumed when the
 * queue is empty. Writing: `socket.write()` returns false above the writable
 * high-water mark, then `write()` waits for `drain`. Half-close:
 * `allowHalfOpen` on both sides, `end()` is `socket.end()`.
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
  NetError,
  type NetErrorCode,
  type TlsClientOptions,
  type TlsServerOptions,
} from "../../src/net.ts";
import {
  formatFingerprint,
  noPeerCertificate,
  normalizeFingerprint,
  pinMismatch,
} from "../../src/tls.ts";

/** Unread bytes queued per connection before the socket is paused. */
const READ_HWM = 256 * 1024;
/** Node's writable and readable buffer high-water mark per socket. */
const STREAM_HWM = 64 * 1024;

/** Runtime error codes kept as they are, and the ones mapped. */
const SAME =
  /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|ETIMEDOUT|ECONNRESET|EPIPE|EADDRINUSE)$/;
const ALIASES: Record<string, NetErrorCode> = {
  ECONNABORTED: "ECONNRESET",
  EAI_NONAME: "ENOTFOUND",
  EAI_AGAIN: "ENOTFOUND",
  EAI_NODATA: "ENOTFOUND",
  ERR_STREAM_DESTROYED: "ECLOSED",
  ERR_STREAM_WRITE_AFTER_END: "ECLOSED",
  ERR_SOCKET_CLOSED: "ECLOSED",
};

/** OpenSSL and node:tls error codes of handshake and verification failures. */
const TLS_CODES =
  /^(ERR_SSL_|ERR_TLS_|ERR_OSSL_|UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH_EXCEEDED)/;

function toNetError(e: unknown): NetError {
  if (e instanceof NetError) return e;
  const code = String((e as { code?: unknown } | null)?.code ?? "");
  const mapped = SAME.test(code)
    ? code as NetErrorCode
    : ALIASES[code] ?? (TLS_CODES.test(code) ? "ETLS" : "EOTHER");
  const message = e instanceof Error ? e.message : String(e);
  return new NetError(mapped, mapped === "ETLS" ? `TLS: ${message} (${code})` : message, {
    cause: e,
  });
}

const closedError = () => new NetError("ECLOSED", "connection closed");
const RESOLVED = Promise.resolve();

type Settle = [resolve: (v: void) => void, reject: (e: unknown) => void];

/** A {@link Conn} on a `net.Socket` or `tls.TLSSocket`. */
class NodeConn implements Conn {
  readonly local: Addr;
  readonly remote: Addr;
  readonly closed: Promise<void>;
  #sock: net.Socket;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #paused = false;
  #eof = false;
  #done = false; // close() called or socket closed
  #error: NetError | null = null;
  #readResolve: ((c: Uint8Array | null) => void) | null = null;
  #readReject: ((e: unknown) => void) | null = null;
  #drainWaiters: Settle[] = [];
  #ended: Promise<void> | null = null;
  #readExec = (res: (c: Uint8Array | null) => void, rej: (e: unknown) => void) => {
    this.#readResolve = res;
    this.#readReject = rej;
  };
  #drainExec = (res: (v: void) => void, rej: (e: unknown) => void) => {
    this.#drainWaiters.push([res, rej]);
  };

  constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.setNoDelay(true);
    this.local = { host: sock.localAddress ?? "", port: sock.localPort ?? 0 };
    this.remote = { host: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
    let onClose!: () => void;
    this.closed = new Promise((r) => (onClose = r));
    sock.on("data", (chunk: Buffer) => this.#onData(chunk));
    sock.on("end", () => {
      this.#eof = true;
      this.#settleRead(null);
    });
    sock.on("drain", () => this.#settleDrain(null));
    sock.on("error", (e) => this.#fail(toNetError(e)));
    sock.on("close", () => {
      this.#done = true;
      this.#settleRead(null);
      if (this.#drainWaiters.length > 0) this.#settleDrain(this.#error ?? closedError());
      onClose();
    });
  }

  #onData(chunk: Uint8Array): void {
    if (this.#readResolve !== null) return this.#settleRead(chunk);
    this.#queue.push(chunk);
    this.#queued += chunk.byteLength;
    if (this.#queued >= READ_HWM && !this.#paused) {
      this.#paused = true;
      this.#sock.pause();
    }
  }

  #settleRead(v: Uint8Array | null, e?: NetError): void {
    const res = this.#readResolve, rej = this.#readReject;
    if (res === null || rej === null) return;
    this.#readResolve = this.#readReject = null;
    if (e) rej(e);
    else res(v);
  }

  #settleDrain(e: NetError | null): void {
    const ws = this.#drainWaiters;
    if (ws.length === 0) return;
    this.#drainWaiters = [];
    for (const [res, rej] of ws) e ? rej(e) : res();
  }

  #fail(e: NetError): void {
    this.#error ??= e;
    this.#settleRead(null, this.#error);
    this.#settleDrain(this.#error);
  }

  read(): Promise<Uint8Array | null> {
    if (this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      this.#queued -= chunk.byteLength;
      if (this.#queued === 0) this.#resume();
      return Promise.resolve(chunk);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#eof || this.#done) return Promise.resolve(null);
    this.#resume();
    return new Promise(this.#readExec);
  }

  #resume(): void {
    if (!this.#paused || this.#done) return;
    this.#paused = false;
    this.#sock.resume();
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done || this.#ended) return Promise.reject(closedError());
    return this.#sock.write(chunk) ? RESOLVED : new Promise(this.#drainExec);
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
    this.#queue = [];
    this.#queued = 0;
    this.#sock.destroy();
    this.#settleRead(null);
    if (this.#drainWaiters.length > 0) this.#settleDrain(closedError());
  }

  setNoDelay(on: boolean): void {
    this.#sock.setNoDelay(on);
  }
}

class NodeListener implements Listener {
  readonly addr: Addr;
  #server: net.Server;
  #queue: Conn[] = [];
  #waiters: ((c: Conn | null) => void)[] = [];
  #closed = false;

  constructor(server: net.Server, secureContext: tls.SecureContext | null) {
    this.#server = server;
    const a = server.address() as net.AddressInfo;
    this.addr = { host: a.address, port: a.port };
    server.on("connection", (raw: net.Socket) => {
      const sock = secureContext ? new tls.TLSSocket(raw, serverSocketOptions(secureContext)) : raw;
      const conn = new NodeConn(sock);
      if (this.#closed) conn.close();
      else if (this.#waiters.length > 0) this.#waiters.shift()!(conn);
      else this.#queue.push(conn);
    });
    server.on("error", () => {}); // after listen, errors surface per connection
  }

  accept(): Promise<Conn | null> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((r) => this.#waiters.push(r));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const w of this.#waiters.splice(0)) w(null);
    for (const c of this.#queue.splice(0)) c.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    for (let c = await this.accept(); c !== null; c = await this.accept()) yield c;
  }
}

function dial(opts: DialOptions): Promise<Conn> {
  return opts.tls ? dialTls(opts, opts.tls) : dialTcp(opts);
}

const timedOut = (host: string, port: number, ms: number, what = "connect") =>
  new NetError("ETIMEDOUT", `${what} to ${host}:${port} timed out after ${ms} ms`);

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
    if (pin !== undefined) normalizeFingerprint(pin); // throws on a malformed pin
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
        const raw = sock.getPeerCertificate(true)?.raw;
        if (!raw || raw.byteLength === 0) return fail(noPeerCertificate());
        const mismatch = pinMismatch(
          pin,
          formatFingerprint(createHash("sha256").update(raw).digest()),
        );
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
    throw new NetError("ETLS", `TLS certificate or key not usable: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function listen({ host, port, tls: tlsOpts }: ListenOptions): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const secureContext = tlsOpts ? serverContext(tlsOpts) : null;
    const server = net.createServer({ allowHalfOpen: true, highWaterMark: STREAM_HWM });
    server.once("error", (e) => reject(toNetError(e)));
    server.listen({ host, port }, () => {
      server.removeAllListeners("error");
      resolve(new NodeListener(server, secureContext));
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
