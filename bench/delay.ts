/**
 * A delay relay for the WAN scenario: a loopback TCP proxy that makes one
 * link look like a long-distance one. Every chunk is forwarded a fixed
 * one-way delay after it arrived, in each direction, in order; the end of
 * each direction (FIN) is delayed the same way.
 *
 * A new connection also pays the TCP handshake's round trip as a real link
 * would: the upstream connection is made one one-way delay after the accept
 * (the SYN's trip), and the client's first bytes cannot arrive upstream
 * before three one-way delays after the accept (SYN, SYN-ACK, then the data),
 * so a connection's first request costs 1.5 RTT as over a real link, not 0.5.
 *
 * Backpressure: a direction holding more than `highWater` bytes in its queue
 * (or whose receiver's socket buffer is full) pauses its sender until it drains.
 *
 * Everything binds and connects to 127.0.0.1 only (bench/fair.ts: it listens
 * on its own veth's address); `close()` destroys every socket it opened. Usable in-process (`startDelayRelay`) or as a command:
 *
 *   tsx bench/delay.ts --to 127.0.0.1:PORT [--listen PORT] [--delay-ms 20]
 */
import net from "node:net";

export interface DelayRelay {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Stop listening and destroy every connection. */
  close(): Promise<void>;
}

export interface DelayOptions {
  /** Upstream port on 127.0.0.1. */
  toPort: number;
  /** One-way delay, ms (RTT = 2×). */
  delayMs: number;
  /** Listen port on 127.0.0.1; 0 = any free port. */
  listenPort?: number;
  /**
   * Listen address (default 127.0.0.1). The bottleneck scenario (bench/fair.ts)
   * listens on the address of its own veth interface, so that the agent side
   * in its network namespace reaches it through the shaped link.
   */
  listenHost?: string;
  /** Model the TCP handshake's round trip for new connections (default true). */
  connectRtt?: boolean;
  /** Bytes a direction may hold before its sender is paused. Default 4 MiB. */
  highWater?: number;
}

interface Item {
  due: number;
  /** null = end of this direction (FIN). */
  data: Buffer | null;
}

/** One direction of one connection: chunks from `src` reach `dst` `delayMs` later. */
class Pipe {
  readonly #q: Item[] = [];
  #head = 0;
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #blocked = false;
  #paused = false;
  #ready = false;
  #notBefore = 0;

  constructor(
    readonly src: net.Socket,
    readonly dst: net.Socket,
    readonly delayMs: number,
    readonly highWater: number,
  ) {
    src.on("data", (d: Buffer) => this.#push(d));
    src.on("end", () => this.#push(null));
    dst.on("drain", () => {
      this.#blocked = false;
      this.#flush();
    });
  }

  /** Nothing leaves before `t` (ms, performance.now()) nor before {@link ready}. */
  holdUntil(t: number): void {
    this.#notBefore = t;
  }

  ready(): void {
    this.#ready = true;
    this.#flush();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #push(data: Buffer | null): void {
    const due = Math.max(performance.now(), this.#notBefore) + this.delayMs;
    this.#q.push({ due, data });
    if (data) {
      this.#bytes += data.length;
      if (this.#bytes > this.highWater && !this.#paused) {
        this.#paused = true;
        this.src.pause();
      }
    }
    if (this.#q.length - this.#head === 1) this.#flush();
  }

  #flush(): void {
    if (!this.#ready || this.#blocked || this.dst.destroyed) return;
    const now = performance.now();
    while (this.#head < this.#q.length) {
      const it = this.#q[this.#head]!;
      if (it.due > now) break;
      this.#head++;
      if (it.data === null) {
        this.dst.end();
        continue;
      }
      this.#bytes -= it.data.length;
      if (!this.dst.write(it.data)) {
        this.#blocked = true;
        break;
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#q.length) {
      this.#q.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.#paused && this.#bytes <= this.highWater / 2) {
      this.#paused = false;
      this.src.resume();
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#blocked && this.#head < this.#q.length) {
      const wait = Math.max(0, this.#q[this.#head]!.due - now);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#flush();
      }, wait);
    }
  }
}

export function startDelayRelay(o: DelayOptions): Promise<DelayRelay> {
  const socks = new Set<net.Socket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const highWater = o.highWater ?? 4 * 1024 * 1024;
  const modelConnect = o.connectRtt ?? true;
  let accepted = 0;
  const server = net.createServer({ noDelay: true }, (client) => {
    accepted++;
    const t0 = performance.now();
    client.setNoDelay(true);
    const up = new net.Socket();
    up.setNoDelay(true);
    socks.add(client);
    socks.add(up);
    const c2s = new Pipe(client, up, o.delayMs, highWater);
    const s2c = new Pipe(up, client, o.delayMs, highWater);
    // The client's data can leave only once its SYN-ACK is back (t0 + 2 × delay).
    if (modelConnect) c2s.holdUntil(t0 + 2 * o.delayMs);
    s2c.ready();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      c2s.stop();
      s2c.stop();
      // A reset or a close travels the link too.
      const t = setTimeout(() => {
        timers.delete(t);
        client.destroy();
        up.destroy();
      }, o.delayMs);
      timers.add(t);
    };
    const closed = (s: net.Socket) => () => {
      socks.delete(s);
      // Both directions ended cleanly: the other side closes by itself.
      if (!client.readableEnded || !up.readableEnded) finish();
    };
    client.on("error", () => {});
    up.on("error", () => {});
    client.on("close", closed(client));
    up.on("close", closed(up));
    const dial = () => {
      if (client.destroyed) return up.destroy();
      up.connect(o.toPort, "127.0.0.1", () => c2s.ready());
    };
    if (modelConnect) {
      const t = setTimeout(() => {
        timers.delete(t);
        dial();
      }, o.delayMs);
      timers.add(t);
    } else dial();
  });
  server.maxConnections = 100_000;
  const at = { host: o.listenHost ?? "127.0.0.1", port: o.listenPort ?? 0, backlog: 4096 };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(at, () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        get accepted() {
          return accepted;
        },
        close: () =>
          new Promise<void>((r) => {
            for (const t of timers) clearTimeout(t);
            timers.clear();
            for (const s of socks) s.destroy();
            socks.clear();
            server.close(() => r());
          }),
      });
    });
  });
}

// As a command: tsx bench/delay.ts --to 127.0.0.1:PORT [--listen PORT] [--delay-ms 20]
if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const args = process.argv.slice(2);
  const get = (k: string) => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const to = get("--to");
  if (!to || !/^127\.0\.0\.1:\d+$/.test(to)) {
    console.error("usage: tsx bench/delay.ts --to 127.0.0.1:PORT [--listen PORT] [--delay-ms 20]");
    process.exit(2);
  }
  const r = await startDelayRelay({
    toPort: Number(to.split(":")[1]),
    listenPort: Number(get("--listen") ?? 0),
    delayMs: Number(get("--delay-ms") ?? 20),
  });
  console.log(JSON.stringify({ port: r.port }));
  const bye = () => void r.close().then(() => process.exit(0));
  process.on("SIGINT", bye);
  process.on("SIGTERM", bye);
}
