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

/** One direction of one stream: its client's bucket, then its agent's. */
class DirGate implements Throttle {
  readonly #fc: Flow = { finish: 0 };
  readonly #fa: Flow = { finish: 0 };
  #closed = false;

  constructor(readonly c: Bucket, readonly a: Bucket, readonly waited: () => void) {}

  take(n: number): Promise<void> | undefined {
    if (this.#closed) return undefined;
    const w = this.c.take(n, this.#fc);
    if (w === undefined) {
      const wa = this.a.take(n, this.#fa);
      if (wa) this.waited();
      return wa;
    }
    this.waited();
    return w.then(() => this.#closed ? undefined : this.a.take(n, this.#fa));
  }

  /** The stream is closing: nothing of it waits any more. */
  close(): void {
    this.#closed = true;
    this.c.cancel(this.#fc);
    this.a.cancel(this.#fa);
  }
}

/** What a stream (or, later, a UDP association) holds: its throttles each way. */
export class Pace {
  readonly up: DirGate;
  readonly down: DirGate;
  #watching = false;
  #released = false;

  constructor(
    readonly client: Pair,
    readonly agent: Pair,
    readonly conns: readonly Conn[],
    readonly onRelease: () => void,
  ) {
    const waited = () => this.#watch();
    this.up = new DirGate(client.up, agent.up, waited);
    this.down = new DirGate(client.down, agent.down, waited);
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
    this.up.close();
    this.down.close();
    this.onRelease();
  }

  /** Once the stream first waits: when either connection closes, stop waiting. */
  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    for (const c of this.conns) {
      c.closed.then(() => {
        this.up.close();
        this.down.close();
      });
    }
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

  /** Pace a stream of `client` through `agent`; `conns`: its two connections. */
  attach(client: string, agent: string, conns: readonly Conn[]): Pace {
    if (this.ctx.config() !== this.#applied) this.reload();
    const c = this.#pair("client", client);
    const a = this.#pair("agent", agent);
    c.refs++;
    a.refs++;
    this.#meter ??= setInterval(() => this.#tick(), METER_MS);
    return new Pace(c, a, conns, () => {
      c.refs--;
      a.refs--;
    });
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
