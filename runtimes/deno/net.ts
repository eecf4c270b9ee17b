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
 * /etc/hosts.
 *
 * @module
 */
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
} from "../../src/net.ts";

/**
 * Bounds of the buffer each `conn.read()` fills. A pending read holds its
 * buffer, so idle connections keep a small one; the size doubles after a
 * read that filled it and halves after one that used under a quarter.
 */
const READ_MIN = 8 * 1024;
const READ_MAX = 256 * 1024;

/** Error codes kept as they are, and the codes or error class names mapped. */
const SAME =
  /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|ETIMEDOUT|ECONNRESET|EPIPE|EADDRINUSE)$/;
const ALIASES: Record<string, NetErrorCode> = {
  ECONNABORTED: "ECONNRESET",
  EAI_NONAME: "ENOTFOUND",
  EAI_AGAIN: "ENOTFOUND",
  BadResource: "ECLOSED",
  Interrupted: "ECLOSED",
  NotConnected: "ECLOSED",
};

function toNetError(e: unknown): NetError {
  if (e instanceof NetError) return e;
  const { name = "", code = "", message = String(e) } = (e ?? {}) as Partial<
    Error & { code: string }
  >;
  const mapped = SAME.test(code) ? code as NetErrorCode : ALIASES[code] ?? ALIASES[name] ??
    (/failed to lookup address|Name or service not known/i.test(message) ? "ENOTFOUND" : "EOTHER");
  return new NetError(mapped, message, { cause: e });
}

const closedError = () => new NetError("ECLOSED", "connection closed");
const addr = (a: Deno.Addr): Addr =>
  a.transport === "tcp" ? { host: a.hostname, port: a.port } : { host: "", port: 0 };

class DenoConn implements Conn {
  readonly local: Addr;
  readonly remote: Addr;
  readonly closed: Promise<void>;
  #conn: Deno.TcpConn;
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

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    conn.setNoDelay(true);
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
    this.#error ??= toNetError(e);
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
    this.#conn.setNoDelay(on);
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

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    for (let c = await this.accept(); c !== null; c = await this.accept()) yield c;
  }
}

async function dial({ host, port, timeoutMs }: DialOptions): Promise<Conn> {
  if (timeoutMs === undefined) {
    try {
      return new DenoConn(await Deno.connect({ hostname: host, port, transport: "tcp" }));
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
      reject(
        new NetError("ETIMEDOUT", `connect to ${host}:${port} timed out after ${timeoutMs} ms`),
      );
    }, timeoutMs);
  });
  try {
    return new DenoConn(await Promise.race([connecting, timeout]));
  } catch (e) {
    connecting.then((c) => c.close(), () => {});
    throw toNetError(e);
  } finally {
    clearTimeout(timer);
  }
}

function listen({ host, port }: ListenOptions): Promise<Listener> {
  try {
    return Promise.resolve(
      new DenoListener(Deno.listen({ hostname: host, port, transport: "tcp" })),
    );
  } catch (e) {
    return Promise.reject(toNetError(e));
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
export const denoNet: Net = { runtime: "deno", dial, listen, lookup };
