/**
 * {@link Net} for Bun, on `Bun.connect` / `Bun.listen`.
 *
 * Bun sockets are callback-based and unbuffered:
 * - `socket.write()` returns how many bytes the kernel took, possibly fewer
 *   than given; the rest is queued here (as a view, no copy) and written on
 *   `drain`. `write()` resolves once the queue is empty again.
 * - Reading: `data` chunks go to a small queue; when {@link READ_HWM} unread
 *   bytes are queued the socket is `pause()`d, and `resume()`d once the queue
 *   is empty.
 * - Half-close: `allowHalfOpen: true`; `end()` is `socket.shutdown()`
 *   (shutdown(2), SHUT_WR). Careful: in Bun 1.4 `socket.end()` closes the
 *   whole socket at once (the `close` handler runs inside the call), so it
 *   is what `close()` uses. A peer FIN shows as the `end` handler, or as
 *   `close` without an error when our side was already shut down.
 *
 * @module
 */
import {
  type Addr,
  type Conn,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Net,
  NetError,
  type NetErrorCode,
} from "../../src/net.ts";
import type { Socket, SocketHandler } from "bun";

/** Unread bytes queued per connection before the socket is paused. */
const READ_HWM = 256 * 1024;

/** Runtime error codes kept as they are, and the ones mapped. */
const SAME =
  /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|ETIMEDOUT|ECONNRESET|EPIPE|EADDRINUSE)$/;
const ALIASES: Record<string, NetErrorCode> = {
  ECONNABORTED: "ECONNRESET",
  EAI_NONAME: "ENOTFOUND",
  EAI_AGAIN: "ENOTFOUND",
  ENODATA: "ENOTFOUND",
};

function toNetError(e: unknown): NetError {
  if (e instanceof NetError) return e;
  const code = String((e as { code?: unknown } | null)?.code ?? "").replace(/^DNS_/, "");
  const mapped = SAME.test(code) ? code as NetErrorCode : ALIASES[code] ?? "EOTHER";
  return new NetError(mapped, e instanceof Error ? e.message : String(e), { cause: e });
}

const closedError = () => new NetError("ECLOSED", "connection closed");
const RESOLVED = Promise.resolve();
const NO_ADDR: Addr = { host: "", port: 0 };

type Sock = Socket<BunConn>;
type Settle = [resolve: (v: void) => void, reject: (e: unknown) => void];

class BunConn implements Conn {
  /** Handlers shared by every socket; `socket.data` is the BunConn. */
  static readonly handlers: SocketHandler<BunConn> = {
    binaryType: "uint8array",
    open: (s) => s.data.#attach(s),
    data: (s, chunk: Uint8Array) => s.data.#onData(chunk),
    drain: (s) => s.data.#onDrain(),
    end: (s) => s.data.#onEnd(),
    close: (s, e) => s.data.#onClose(e),
    error: (s, e) => s.data.#fail(toNetError(e)),
    connectError: () => {}, // Bun.connect() rejects too, with the same error
  };

  local = NO_ADDR;
  remote = NO_ADDR;
  readonly closed: Promise<void>;
  #sock!: Sock;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #paused = false;
  #eof = false;
  #done = false; // close() called or socket closed
  #error: NetError | null = null;
  #readResolve: ((c: Uint8Array | null) => void) | null = null;
  #readReject: ((e: unknown) => void) | null = null;
  #pending: Uint8Array[] = []; // bytes the kernel did not take yet
  #drainWaiters: Settle[] = [];
  #ended: Promise<void> | null = null;
  #shutdownWhenDrained = false;
  #onClosed!: () => void;
  #readExec = (res: (c: Uint8Array | null) => void, rej: (e: unknown) => void) => {
    this.#readResolve = res;
    this.#readReject = rej;
  };
  #drainExec = (res: (v: void) => void, rej: (e: unknown) => void) => {
    this.#drainWaiters.push([res, rej]);
  };

  constructor() {
    this.closed = new Promise((r) => (this.#onClosed = r));
  }

  /** Wraps a socket accepted by a listener. */
  static accepted(s: Sock): BunConn {
    const conn = new BunConn();
    conn.#attach(s);
    return conn;
  }

  #attach(s: Sock): void {
    this.#sock = s;
    s.data = this;
    s.setNoDelay(true);
    this.local = { host: s.localAddress, port: s.localPort };
    this.remote = { host: s.remoteAddress, port: s.remotePort };
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

  #onEnd(): void {
    this.#eof = true;
    this.#settleRead(null);
    if (this.#ended && !this.#shutdownWhenDrained) this.#sock.end(); // both directions done
  }

  #onClose(e?: Error): void {
    if (e && !this.#done) this.#error ??= toNetError(e);
    this.#done = true;
    if (this.#error) this.#settleRead(null, this.#error);
    else this.#settleRead(null);
    this.#settleDrain(this.#error ?? closedError());
    this.#onClosed();
  }

  #onDrain(): void {
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
    this.#settleDrain(null);
    if (this.#shutdownWhenDrained) this.#shutdown();
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
    if (!this.#done) this.close();
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
    if (this.#pending.length === 0) {
      const n = this.#sock.write(chunk);
      if (n === chunk.byteLength) return RESOLVED;
      if (n < 0) return Promise.reject(closedError());
      if (n > 0) chunk = chunk.subarray(n);
    }
    this.#pending.push(chunk);
    return new Promise(this.#drainExec);
  }

  end(): Promise<void> {
    if (this.#ended) return this.#ended;
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done) return Promise.reject(closedError());
    if (this.#pending.length === 0) {
      this.#ended = RESOLVED;
      this.#shutdown();
    } else {
      this.#shutdownWhenDrained = true;
      this.#ended = new Promise(this.#drainExec);
    }
    return this.#ended;
  }

  #shutdown(): void {
    this.#shutdownWhenDrained = false;
    if (this.#eof) this.#sock.end(); // both directions done: close
    else this.#sock.shutdown();
  }

  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#queue = [];
    this.#queued = 0;
    this.#pending = [];
    this.#settleRead(null);
    this.#settleDrain(closedError());
    this.#sock?.end(); // closes at once; the close handler resolves `closed`
  }

  setNoDelay(on: boolean): void {
    this.#sock.setNoDelay(on);
  }
}

class BunListener implements Listener {
  readonly addr: Addr;
  #server: { stop(closeActive?: boolean): void };
  #queue: Conn[] = [];
  #waiters: ((c: Conn | null) => void)[] = [];
  #closed = false;

  constructor(host: string, port: number) {
    const server = Bun.listen<BunConn>({
      hostname: host,
      port,
      allowHalfOpen: true,
      socket: { ...BunConn.handlers, open: (s) => this.#onOpen(s) },
    });
    this.#server = server;
    this.addr = { host, port: server.port };
  }

  #onOpen(s: Sock): void {
    const conn = BunConn.accepted(s);
    if (this.#closed) conn.close();
    else if (this.#waiters.length > 0) this.#waiters.shift()!(conn);
    else this.#queue.push(conn);
  }

  accept(): Promise<Conn | null> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((r) => this.#waiters.push(r));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.stop(false);
    for (const w of this.#waiters.splice(0)) w(null);
    for (const c of this.#queue.splice(0)) c.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    for (let c = await this.accept(); c !== null; c = await this.accept()) yield c;
  }
}

async function dial({ host, port, timeoutMs }: DialOptions): Promise<Conn> {
  const conn = new BunConn();
  const connecting = Bun.connect<BunConn>({
    hostname: host,
    port,
    allowHalfOpen: true,
    data: conn,
    socket: BunConn.handlers,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = timeoutMs === undefined ? null : new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new NetError("ETIMEDOUT", `connect to ${host}:${port} timed out after ${timeoutMs} ms`),
      );
    }, timeoutMs);
  });
  try {
    await (timeout ? Promise.race([connecting, timeout]) : connecting);
    return conn;
  } catch (e) {
    connecting.then(() => conn.close(), () => {});
    throw toNetError(e);
  } finally {
    clearTimeout(timer);
  }
}

async function listen({ host, port }: ListenOptions): Promise<Listener> {
  // Bun reports the hostname it was given; resolve it so `addr` is an IP.
  const ip = /^[\d.]+$|:/.test(host) ? host : (await lookup(host))[0] ?? host;
  try {
    return new BunListener(ip, port);
  } catch (e) {
    throw toNetError(e);
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
export const bunNet: Net = { runtime: "bun", dial, listen, lookup };
