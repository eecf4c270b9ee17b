/**
 * A {@link DatagramSocket} on a `node:dgram` socket, typed structurally so
 * that this file stays runtime free: all three adapters use it, over their
 * own `node:dgram` (Deno's needs no `--unstable-net`, which
 * `Deno.listenDatagram` would; Bun's is its native UDP socket).
 *
 * Receiving: the runtime reads the kernel's buffer as datagrams come and
 * emits each one; they go straight to a pending `receive()`, else into a
 * queue bounded by count and bytes. When it is full the datagram is dropped
 * and counted (`dropped`): UDP's own answer to a slow reader, never memory
 * without bound. Sending: the address and the size are checked first
 * (EINVAL), no name is resolved, and `send()` resolves on the runtime's
 * callback.
 *
 * @module
 */
import {
  type Addr,
  type BindUdpOptions,
  type Datagram,
  type DatagramSocket,
  UDP_MAX_PAYLOAD,
  UDP_QUEUE,
  UDP_QUEUE_BYTES,
} from "../net.ts";
import { NetError } from "../errors.ts";
import { ipKind } from "../ip.ts";
import { closedError, toNetError } from "./errors.ts";

/** What {@link bindDatagram} uses of a `dgram.Socket`. */
export interface DgramSocket {
  bind(options: { address: string; port: number }): unknown;
  address(): { address: string; port: number };
  send(
    msg: Uint8Array,
    port: number,
    address: string,
    callback: (error: Error | null) => void,
  ): unknown;
  close(callback?: () => void): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

/** What {@link bindDatagram} uses of `node:dgram`. */
export interface DgramModule {
  createSocket(options: { type: "udp4" | "udp6"; ipv6Only?: boolean }): DgramSocket;
}

const invalid = (what: string) => new NetError("EINVAL", `Cannot ${what}`);

/** EINVAL if `addr` is no IP literal of `kind` with a port in 1-65535 (0 too for a bind). */
function checkAddr(addr: Addr, kind: "ipv4" | "ipv6" | null, what: string, bind = false) {
  const k = ipKind(addr.host);
  if (k === null) return invalid(`${what}: "${addr.host}" is not an IP address`);
  if (kind !== null && k !== kind) {
    return invalid(`${what}: ${addr.host} is not an ${kind === "ipv4" ? "IPv4" : "IPv6"} address`);
  }
  const p = addr.port;
  if (!Number.isInteger(p) || p < (bind ? 0 : 1) || p > 65535) {
    return invalid(`${what}: port ${p} is out of range`);
  }
  return null;
}

/** Binds a UDP socket of `dgram` as `opts` say; rejects with NetError. */
export function bindDatagram(dgram: DgramModule, opts: BindUdpOptions): Promise<DatagramSocket> {
  const local = { host: opts.host, port: opts.port ?? 0 };
  const bad = checkAddr(local, null, "bind UDP socket", true);
  if (bad) return Promise.reject(bad);
  const kind = ipKind(local.host) === "ipv6" ? "ipv6" : "ipv4";
  return new Promise((resolve, reject) => {
    let sock: DgramSocket;
    try {
      sock = dgram.createSocket(
        kind === "ipv6" ? { type: "udp6", ipv6Only: true } : { type: "udp4" },
      );
    } catch (e) {
      return reject(toNetError(e));
    }
    const onError = (e: Error) => {
      sock.removeAllListeners();
      sock.on("error", () => {});
      try {
        sock.close();
      } catch {
        // never bound: nothing to release
      }
      reject(toNetError(e));
    };
    sock.on("error", onError);
    sock.on("listening", () => {
      sock.removeAllListeners("error");
      sock.removeAllListeners("listening");
      resolve(new UdpSocket(sock, kind, opts));
    });
    try {
      sock.bind({ address: local.host, port: local.port });
    } catch (e) {
      onError(e as Error);
    }
  });
}

/** A {@link DatagramSocket} on a bound `dgram.Socket`. */
class UdpSocket implements DatagramSocket {
  readonly addr: Addr;
  readonly closed: Promise<void>;
  #sock: DgramSocket;
  #kind: "ipv4" | "ipv6";
  #max: number;
  #maxBytes: number;
  #queue: Datagram[] = [];
  #queuedBytes = 0;
  #dropped = 0;
  #isClosed = false;
  #error: NetError | null = null;
  #waiter: { resolve: (d: Datagram | null) => void; reject: (e: NetError) => void } | null = null;
  #onClosed!: () => void;

  constructor(sock: DgramSocket, kind: "ipv4" | "ipv6", opts: BindUdpOptions) {
    this.#sock = sock;
    this.#kind = kind;
    this.#max = opts.queue ?? UDP_QUEUE;
    this.#maxBytes = opts.queueBytes ?? UDP_QUEUE_BYTES;
    const a = sock.address();
    this.addr = { host: a.address, port: a.port };
    this.closed = new Promise((resolve) => (this.#onClosed = resolve));
    sock.on("message", (msg: Uint8Array, from: { address: string; port: number }) =>
      this.#push({
        data: new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), // a view, not a Buffer
        from: { host: from.address, port: from.port },
      }));
    sock.on("error", (e: Error) => this.#fail(toNetError(e)));
    sock.on("close", () => this.#closeDone());
  }

  get dropped(): number {
    return this.#dropped;
  }

  #push(d: Datagram): void {
    if (this.#isClosed) return;
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      return w.resolve(d);
    }
    const size = d.data.byteLength;
    if (this.#queue.length >= this.#max || this.#queuedBytes + size > this.#maxBytes) {
      this.#dropped++;
      return;
    }
    this.#queue.push(d);
    this.#queuedBytes += size;
  }

  receive(): Promise<Datagram | null> {
    if (this.#waiter) return Promise.reject(new TypeError("Cannot receive: a receive is pending"));
    const d = this.#queue.shift();
    if (d) {
      this.#queuedBytes -= d.data.byteLength;
      return Promise.resolve(d);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#isClosed) return Promise.resolve(null);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  send(data: Uint8Array, to: Addr): Promise<void> {
    if (this.#isClosed) return Promise.reject(closedError());
    const bad = checkAddr(to, this.#kind, `send datagram to ${to.host}:${to.port}`);
    if (bad) return Promise.reject(bad);
    if (data.byteLength > UDP_MAX_PAYLOAD) {
      return Promise.reject(
        invalid(`send datagram: ${data.byteLength} bytes exceed the limit of ${UDP_MAX_PAYLOAD}`),
      );
    }
    return new Promise((resolve, reject) => {
      try {
        this.#sock.send(data, to.port, to.host, (e) => (e ? reject(toNetError(e)) : resolve()));
      } catch (e) {
        reject(toNetError(e));
      }
    });
  }

  /** A socket error: a pending receive rejects with it, later ones too once the queue is read. */
  #fail(e: NetError): void {
    this.#error ??= e;
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(e);
    this.#shutdown();
  }

  close(): void {
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#error = null;
    this.#shutdown();
  }

  #shutdown(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.resolve(null);
    try {
      this.#sock.close();
    } catch {
      this.#closeDone(); // already closed by the runtime
    }
  }

  #closeDone(): void {
    this.#isClosed = true;
    this.#sock.removeAllListeners("message");
    this.#onClosed();
  }
}
