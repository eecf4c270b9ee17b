/**
 * The dashboard's graphs: the server samples its own counters every
 * {@link SERIES_INTERVAL_MS} into fixed rings of {@link SERIES_POINTS}
 * points (15 minutes), per agent, per client and per refusal reason, and
 * the admin API serves them (`GET /api/v1/series`, README.md "Admin API").
 *
 * Memory is bounded: at most {@link MAX_SERIES} series, each a few
 * fixed-size arrays. A series starts when its agent, client or reason first
 * shows activity and is dropped once it has been idle for a whole window;
 * a new series beyond the cap is not kept (counted in `dropped`, and as
 * `limit=series`).
 *
 * @module
 */

/** What a sample reads of one agent or client: open streams and byte totals so far. */
export interface Reading {
  streams: number;
  /** Bytes client to target since the server started (never smaller than before). */
  up: number;
  /** Bytes target to client since the server started (never smaller than before). */
  down: number;
}

/** One sample's input: the server's counters as they are now. */
export interface Readings {
  agents: ReadonlyMap<string, Reading>;
  clients: ReadonlyMap<string, Reading>;
  /** Refusals so far per reason (`connect:not_allowed`, `auth:socks`, `limit:…`). */
  refusals: ReadonlyMap<string, number>;
}

/** A sample every 5 s … */
export const SERIES_INTERVAL_MS = 5000;
/** … kept for 15 minutes. */
export const SERIES_POINTS = 180;
/** At most this many series (agents, clients and reasons together). */
export const MAX_SERIES = 256;

type Kind = "agents" | "clients" | "refusals";

/** Per point: streams, bytes per second up and down (agents, clients); refusals per interval. */
interface Ring {
  readonly fields: Float64Array[];
  /** The sample count when it last had activity. */
  active: number;
}

/** An agent's or client's series as served: oldest point first, as many points as `t`. */
export interface FlowSeries {
  /** Open streams. */
  streams: number[];
  /** Bytes per second, client to target. */
  up: number[];
  /** Bytes per second, target to client. */
  down: number[];
}

/** A refusal reason's series: refusals in each interval. */
export interface CountSeries {
  count: number[];
}

/** `GET /api/v1/series`. */
export interface SeriesView {
  interval_ms: number;
  points: number;
  /** Sample times (ms since the epoch), oldest first. */
  t: number[];
  /** Per agent and per client: `streams` (open), `up` and `down` (bytes per second). */
  agents: Record<string, FlowSeries>;
  clients: Record<string, FlowSeries>;
  /** Per reason (`connect:<status>`, `auth:<role>`, `limit:<name>`). */
  refusals: Record<string, CountSeries>;
  /** Series not kept because of the cap ({@link MAX_SERIES}). */
  dropped: number;
}

const FIELDS: Record<Kind, readonly string[]> = {
  agents: ["streams", "up", "down"],
  clients: ["streams", "up", "down"],
  refusals: ["count"],
};

export class Series {
  readonly #t = new Float64Array(SERIES_POINTS);
  /** Next index to write; {@link #n} points are kept. */
  #head = 0;
  #n = 0;
  #samples = 0;
  readonly #rings: Record<Kind, Map<string, Ring>> = {
    agents: new Map(),
    clients: new Map(),
    refusals: new Map(),
  };
  /** The totals of the previous sample, per kind and name (as many as the server's own totals). */
  readonly #prev: Record<Kind, Map<string, number[]>> = {
    agents: new Map(),
    clients: new Map(),
    refusals: new Map(),
  };
  #dropped = 0;

  /** `onCap` is told once per sample that met the cap, with how many series it left out. */
  constructor(readonly onCap: (left: number) => void = () => {}) {}

  get size(): number {
    return this.#rings.agents.size + this.#rings.clients.size + this.#rings.refusals.size;
  }

  /** Take one sample of `r` at `now` (ms). */
  sample(r: Readings, now: number): void {
    // The first sample has no interval: its rates are 0 (it only sets the baseline).
    const last = this.#n > 0 ? this.#t[(this.#head + SERIES_POINTS - 1) % SERIES_POINTS]! : null;
    const seconds = last === null ? Infinity : Math.max((now - last) / 1000, 0.001);
    const at = this.#head;
    this.#t[at] = now;
    this.#samples++;
    let left = 0;
    const agents = new Map([...r.agents].map(([k, v]) => [k, [v.streams, v.up, v.down]]));
    const clients = new Map([...r.clients].map(([k, v]) => [k, [v.streams, v.up, v.down]]));
    const refusals = new Map([...r.refusals].map(([k, v]) => [k, [v]]));
    left += this.#put("agents", agents, at, seconds, [false, true, true]);
    left += this.#put("clients", clients, at, seconds, [false, true, true]);
    left += this.#put("refusals", refusals, at, last === null ? Infinity : 1, [true]);
    this.#head = (at + 1) % SERIES_POINTS;
    this.#n = Math.min(this.#n + 1, SERIES_POINTS);
    if (left > 0) {
      this.#dropped += left;
      this.onCap(left);
    }
  }

  /**
   * Write point `at` of every series of `kind`: a gauge as read, a counter
   * (`rate[i]`) as its growth since the previous sample divided by `per`.
   * Returns how many new series the cap left out.
   */
  #put(
    kind: Kind,
    now: Map<string, number[]>,
    at: number,
    per: number,
    rate: readonly boolean[],
  ): number {
    const rings = this.#rings[kind];
    const prev = this.#prev[kind];
    let left = 0;
    for (const [name, values] of now) {
      const before = prev.get(name);
      prev.set(name, values);
      const point = values.map((v, i) => rate[i] ? Math.max(0, v - (before?.[i] ?? 0)) / per : v);
      const busy = point.some((v) => v > 0);
      let ring = rings.get(name);
      if (!ring && busy) {
        if (this.size >= MAX_SERIES) {
          left++;
          continue;
        }
        ring = { fields: FIELDS[kind].map(() => new Float64Array(SERIES_POINTS)), active: 0 };
        rings.set(name, ring);
      }
      if (!ring) continue;
      point.forEach((v, i) => ring.fields[i]![at] = Math.round(v));
      if (busy) ring.active = this.#samples;
    }
    for (const [name, ring] of rings) {
      if (now.has(name)) continue;
      for (const f of ring.fields) f[at] = 0;
    }
    for (const [name, ring] of rings) {
      if (this.#samples - ring.active >= SERIES_POINTS) rings.delete(name);
    }
    return left;
  }

  /** The rings as JSON, oldest point first. */
  view(): SeriesView {
    const idx = Array.from(
      { length: this.#n },
      (_, i) => (this.#head - this.#n + i + SERIES_POINTS) % SERIES_POINTS,
    );
    const kind = <T>(k: Kind) => {
      const out: Record<string, T> = {};
      for (const [name, ring] of [...this.#rings[k]].sort((a, b) => a[0].localeCompare(b[0]))) {
        const s: Record<string, number[]> = {};
        FIELDS[k].forEach((f, i) => s[f] = idx.map((j) => ring.fields[i]![j]!));
        out[name] = s as T;
      }
      return out;
    };
    return {
      interval_ms: SERIES_INTERVAL_MS,
      points: SERIES_POINTS,
      t: idx.map((j) => this.#t[j]!),
      agents: kind<FlowSeries>("agents"),
      clients: kind<FlowSeries>("clients"),
      refusals: kind<CountSeries>("refusals"),
      dropped: this.#dropped,
    };
  }
}
