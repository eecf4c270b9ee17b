/**
 * Bandwidth limits per client and per agent (README "Bandwidth limits",
 * SPEC.md §10.1): a {@link Bucket} per client and per agent in each
 * direction (`up` toward the target, `down` toward the client), shared by
 * all of its streams; a stream obeys its client's and its agent's. The
 * relay takes from them after each chunk it reads (relay.ts, Throttle): a
 * limited stream is slowed, never cut, because its source is not read while
 * it waits (the client's socket for `up`; the agent's stream for `down`, so
 * the link holds back its flow-control credit and the agent slows down).
 *
 * Unlimited streams pass through the same buckets (rate 0: a counter add and
 * a return), so a reload can limit them, and so the meter sees every
 * client's bytes: once a second, while any bucket lives, it smooths each
 * client's and agent's rate (snapshot, admin API, dashboard). Buckets live
 * while their client or agent has streams, and until they are full again
 * (so closing and reopening streams does not buy a fresh burst).
 *
 * @module
 */
import type { ServerConfig } from "../config/mod.ts";
import type { BandwidthLimit } from "../config/bandwidth.ts";
import { rateText } from "../config/walker.ts";
import type { Conn } from "../net.ts";
import type { Throttle } from "../relay.ts";
import { Bucket, type Flow } from "./bucket.ts";
import type { ServerContext } from "./context.ts";

export type Direction = "up" | "down";
type Kind = "client" | "agent";

/** A client's or agent's pair of buckets, and its smoothed rates (bytes/s). */
interface Pair {
  readonly up: Bucket;
  readonly down: Bucket;
  /** Streams (and datagram associations) using it. */
  refs: number;
  /** Bytes each way at the meter's last tick, and the smoothed rates. */
  seen: [number, number];
  rate: [number, number];
}

/** A current rate each way, bytes per second (smoothed over a few seconds). */
export interface Rate {
  up: number;
  down: number;
}

/** The meter's tick. */
const METER_MS = 1000;
/** A bucket that holds bytes back logs it at most this often. */
const LOG_EVERY_MS = 60_000;
/** The smoothing's time constant: a step in the rate shows 63 % after this long. */
const SMOOTH_MS = 2000;

/**
 * What a stream (or a UDP association) holds: its throttle both ways, its
 * client's bucket then its agent's. One object per stream: it is made for
 * every stream, limited or not, and an idle stream keeps it as long as it
 * lasts, so its places in the buckets' fair queues (flows, bucket.ts) are
 * made only when a bucket it passes has a rate.
 */
export class Pace implements Throttle {
  /** Its flows: up in the client's and the agent's bucket, then down; null until a bucket limits it. */
  #flows: Flow[] | null = null;
  /** The stream is closing: nothing of it waits any more. */
  #closed = false;
  #watching = false;
  #released = false;

  /** `a`, `b`: the stream's two connections (their close ends a wait). */
  constructor(
    readonly client: Pair,
    readonly agent: Pair,
    readonly a?: Conn,
    readonly b?: Conn,
  ) {}

  take(dir: Direction, n: number): Promise<void> | undefined {
    if (this.#closed) return undefined;
    const w = this.#take(dir, 0, n);
    if (w === undefined) {
      const wa = this.#take(dir, 1, n);
      if (wa) this.#watch();
      return wa;
    }
    this.#watch();
    return w.then(() => this.#closed ? undefined : this.#take(dir, 1, n));
  }

  /** Take `n` bytes going `dir` from the client's (`k` 0) or the agent's (1) bucket. */
  #take(dir: Direction, k: 0 | 1, n: number): Promise<void> | undefined {
    const bucket = (k === 0 ? this.client : this.agent)[dir];
    if (bucket.free(n)) return undefined;
    this.#flows ??= [{ finish: 0 }, { finish: 0 }, { finish: 0 }, { finish: 0 }];
    return bucket.take(n, this.#flows[(dir === "up" ? 0 : 2) + k]!);
  }

  /**
   * The UDP hook (SPEC.md §10.1: datagrams count against the same limits):
   * a datagram of `n` bytes going `dir` may pass now (counted) or not (the
   * caller drops it: a datagram is not held back, there is no credit to
   * withhold). The client's bucket is asked first; one the agent's then
   * refuses stays counted in the client's.
   */
  datagram(dir: Direction, n: number): boolean {
    if (!this.client[dir].pass(n)) return false;
    return this.agent[dir].pass(n);
  }

  /** The stream ended: give back its hold on the buckets. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#close();
    this.client.refs--;
    this.agent.refs--;
  }

  /** Nothing of the stream waits any more, nor will. */
  #close(): void {
    this.#closed = true;
    const f = this.#flows;
    if (!f) return;
    for (const dir of ["up", "down"] as const) {
      const i = dir === "up" ? 0 : 2;
      this.client[dir].cancel(f[i]!);
      this.agent[dir].cancel(f[i + 1]!);
    }
  }

  /** Once the stream first waits: when either connection closes, stop waiting. */
  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    for (const c of [this.a, this.b]) c?.closed.then(() => this.#close());
  }
}

/** The limit of `name` of `kind` in `config`, each way (null: none). */
export function limitOf(config: ServerConfig, kind: Kind, name: string): BandwidthLimit {
  const entry = (kind === "client" ? config.clients : config.agents).get(name)?.bandwidth;
  const def = kind === "client" ? config.limits.clientBandwidth : config.limits.agentBandwidth;
  return {
    up: entry?.up !== undefined ? entry.up : def.up ?? null,
    down: entry?.down !== undefined ? entry.down : def.down ?? null,
  };
}

export class Bandwidth {
  readonly #pairs: Record<Kind, Map<string, Pair>> = { client: new Map(), agent: new Map() };
  /** Held-back byte counters by kind and direction. */
  readonly #held: Record<`${Kind} ${Direction}`, (n: number) => void>;
  #meter: ReturnType<typeof setInterval> | undefined;
  #lastTick = 0;
  /** The config whose limits the buckets have. */
  #applied: ServerConfig;

  constructor(readonly ctx: ServerContext) {
    this.#applied = ctx.config();
    const held = (limit: Kind, direction: Direction) =>
      ctx.metrics.counterOf(
        "burrow_bandwidth_held_bytes_total",
        "Bytes that waited for a bandwidth limit (datagrams: were dropped)",
        { limit, direction },
      );
    this.#held = {
      "client up": held("client", "up"),
      "client down": held("client", "down"),
      "agent up": held("agent", "up"),
      "agent down": held("agent", "down"),
    };
  }

  /** Pace a stream of `client` through `agent`; `a`, `b`: its two connections. */
  attach(client: string, agent: string, a?: Conn, b?: Conn): Pace {
    if (this.ctx.config() !== this.#applied) this.reload();
    const pc = this.#pair("client", client);
    const pa = this.#pair("agent", agent);
    pc.refs++;
    pa.refs++;
    this.#meter ??= setInterval(() => this.#tick(), METER_MS);
    return new Pace(pc, pa, a, b);
  }

  /** Apply the limits of the config in force to every bucket (on reload). */
  reload(): void {
    const config = this.ctx.config();
    this.#applied = config;
    const now = Date.now();
    for (const kind of ["client", "agent"] as const) {
      for (const [name, p] of this.#pairs[kind]) {
        const l = limitOf(config, kind, name);
        p.up.setRate(l.up ?? null, now);
        p.down.setRate(l.down ?? null, now);
      }
    }
  }

  /** Current rates by client (or agent) name; absent: nothing flowed lately. */
  rates(kind: Kind): Map<string, Rate> {
    const out = new Map<string, Rate>();
    for (const [name, p] of this.#pairs[kind]) {
      out.set(name, { up: Math.round(p.rate[0]), down: Math.round(p.rate[1]) });
    }
    return out;
  }

  /** Stop the meter and every bucket's timer (the server stops). */
  stop(): void {
    clearInterval(this.#meter);
    this.#meter = undefined;
    for (const m of Object.values(this.#pairs)) {
      for (const p of m.values()) {
        p.up.stop();
        p.down.stop();
      }
      m.clear();
    }
  }

  #pair(kind: Kind, name: string): Pair {
    let p = this.#pairs[kind].get(name);
    if (!p) {
      const l = limitOf(this.#applied, kind, name);
      const up = new Bucket(this.#onHeld(kind, name, "up"));
      const down = new Bucket(this.#onHeld(kind, name, "down"));
      up.setRate(l.up ?? null);
      down.setRate(l.down ?? null);
      p = { up, down, refs: 0, seen: [0, 0], rate: [0, 0] };
      this.#pairs[kind].set(name, p);
    }
    return p;
  }

  /**
   * What a bucket does when bytes wait: count them; log the limit (and count
   * a hit) at most once a minute per bucket.
   */
  #onHeld(kind: Kind, name: string, direction: Direction): (n: number, rate: number) => void {
    const count = this.#held[`${kind} ${direction}`];
    let logged = -Infinity;
    return (n, rate) => {
      count(n);
      const now = Date.now();
      if (now - logged < LOG_EVERY_MS) return;
      logged = now;
      this.ctx.admission.limitHit(`${kind}_bandwidth`, {
        [kind]: name,
        direction,
        rate: rateText(rate),
      });
    };
  }

  /** Smooth every rate; forget pairs nobody holds that are full again; stop when none is left. */
  #tick(now = Date.now()): void {
    if (this.ctx.config() !== this.#applied) this.reload();
    const dt = this.#lastTick ? Math.max(now - this.#lastTick, 1) : METER_MS;
    this.#lastTick = now;
    const alpha = 1 - Math.exp(-dt / SMOOTH_MS);
    for (const m of Object.values(this.#pairs)) {
      for (const [name, p] of m) {
        const bytes = [p.up.bytes, p.down.bytes] as const;
        for (const i of [0, 1] as const) {
          const inst = ((bytes[i] - p.seen[i]) * 1000) / dt;
          p.rate[i] += alpha * (inst - p.rate[i]);
          p.seen[i] = bytes[i];
        }
        if (p.refs === 0 && p.up.idle(now) && p.down.idle(now)) m.delete(name);
      }
    }
    if (this.#pairs.client.size + this.#pairs.agent.size === 0) {
      clearInterval(this.#meter);
      this.#meter = undefined;
      this.#lastTick = 0;
    }
  }
}
