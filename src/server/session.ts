/**
 * One agent's session on the server and the policy of its pool (SPEC.md
 * §7.4): which idle pool connections it holds, how many it has asked for,
 * which CONNECTs wait, and when to ask for more or close some. It owns no
 * socket: pool connections are any {@link Pooled}, POOL_REQUEST is a callback,
 * and the clock is injectable, so the policy is unit-tested without a network
 * (test/session_test.ts). The control loop that drives it is in agent_port.ts.
 *
 * @module
 */
import { toHex } from "../auth.ts";
import type { Verifier } from "../auth.ts";
import type { Logger } from "../log.ts";
import type { Rule, Target } from "../messages.ts";
import { afterTurn } from "../time.ts";

/** The pool settings of the server config, read at every decision (they change on reload). */
export interface PoolParams {
  poolMin: number;
  poolMax: number;
  poolWaitMs: number;
  poolIdleMs: number;
  openTimeoutMs: number;
  heartbeatIntervalMs: number;
}

/** What the pool needs of a pool connection. */
export interface Pooled {
  close(): void;
  /** False once what carries it is gone (a granted id whose link ended); absent: true. */
  readonly usable?: boolean;
}

/** Who the session belongs to, fixed at login. */
export interface SessionIdentity {
  /** 16 random bytes (WELCOME, POOL_HELLO). */
  id: Uint8Array;
  name: string;
  agentId: number;
  /** The negotiated protocol version. */
  version: number;
  /** The login nonce; pool connections prove over it (SPEC.md §6.3). */
  nonce: Uint8Array;
  /** The verifier that accepted the login; it checks pool hellos too. */
  verifier: Verifier;
}

export interface SessionHooks {
  /** Send POOL_REQUEST for `count` more pool connections. */
  request(requestId: number, count: number): void;
  log: Logger;
  /** Milliseconds; default `Date.now`. */
  now?: () => number;
}

/**
 * The shortfall of idle granted ids a session with a link waits
 * for before it asks, while no CONNECT waits (SPEC.md §7.4): an eighth of
 * `pool_max`, rounded up.
 */
export function grantStep(poolMax: number): number {
  return Math.ceil(poolMax / 8);
}

/** How many pool sequence numbers back a POOL_HELLO may still come (SPEC.md §6.3). */
export const SEQ_WINDOW = 4096;

interface IdleConn<P> {
  conn: P;
  since: number;
}

/** A POOL_REQUEST whose connections have not all arrived. */
interface PoolAsk {
  id: number;
  asked: number;
  /** Connections still expected: asked, less arrivals, less the agent's stated shortfall. */
  remaining: number;
  at: number;
}

export class AgentSession<P extends Pooled> {
  readonly key: string;
  /** What the agent announced (ANNOUNCE), normalized. */
  rules: Rule[] = [];
  /** Whether the agent has announced its rules: only then is the session routable (SPEC.md §2.1). */
  announced = false;
  /** The agent process's instance id (INSTANCE); null until it comes. */
  instance: Uint8Array | null = null;
  /** The nameserver the agent reported (INSTANCE, SPEC.md §5.19); null: none. */
  nameserver: Target | null = null;
  closed = false;
  /** When a frame last arrived on the control connection. */
  lastRx: number;
  #idle: IdleConn<P>[] = [];
  #waiters: Array<(conn: P | null) => void> = [];
  #asks: PoolAsk[] = [];
  #nextAsk = 1;
  /** Peak CONNECTs opening at once per tick, newest last (SPEC.md §7.4 "target size"). */
  #demand: number[] = [0];
  #opening = 0;
  /** Clients expected to CONNECT soon (see {@link expect}). */
  #expected = 0;
  #refillSoon = false;
  #seqMax = 0;
  #seqUsed = new Set<number>();
  readonly #now: () => number;

  constructor(
    readonly who: SessionIdentity,
    readonly params: () => PoolParams,
    readonly hooks: SessionHooks,
  ) {
    this.key = toHex(who.id);
    this.#now = hooks.now ?? Date.now;
    this.lastRx = this.#now();
  }

  get name(): string {
    return this.who.name;
  }

  /** Idle pool connections. */
  get idle(): number {
    return this.#idle.length;
  }

  /** CONNECTs waiting for a pool connection. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Pool connections asked for that have neither arrived nor expired. */
  get outstanding(): number {
    let n = 0;
    for (const a of this.#asks) n += a.remaining;
    return n;
  }

  /**
   * Rest at `pool_max` idle entries: while the session has a link, whose
   * idle entries are granted stream ids, not connections.
   */
  get restAtMax(): boolean {
    return this.#links > 0;
  }

  /** Links open (see {@link linkOpened}). */
  #links = 0;
  /** A link failed and none came back: requests expire sooner (see {@link linkClosed}). */
  #linkLost = false;

  /** Idle connections this session should have: recent peak demand within [min, max]. */
  get target(): number {
    const { poolMin, poolMax } = this.params();
    if (this.restAtMax) return poolMax;
    return Math.min(poolMax, Math.max(poolMin, ...this.#demand));
  }

  /**
   * The fewest idle connections the pool rests at without asking for more
   * (SPEC.md §7.4): the target; with a link, the target less the
   * grant step, plus one.
   */
  get floor(): number {
    const target = this.target;
    return this.restAtMax ? target - grantStep(this.params().poolMax) + 1 : target;
  }

  /**
   * Accept pool sequence number `seq` once (SPEC.md §6.3): false if it was
   * used already or lies more than {@link SEQ_WINDOW} behind the highest.
   */
  acceptSeq(seq: number): boolean {
    if (this.#seqUsed.has(seq) || seq <= this.#seqMax - SEQ_WINDOW) return false;
    this.#seqUsed.add(seq);
    if (seq > this.#seqMax) {
      this.#seqMax = seq;
      if (this.#seqUsed.size > SEQ_WINDOW) {
        for (const q of this.#seqUsed) if (q <= this.#seqMax - SEQ_WINDOW) this.#seqUsed.delete(q);
      }
    }
    return true;
  }

  /**
   * An idle pool connection, waiting up to the pool wait; `null` if none came
   * or the session ended. Every call must be paired with {@link release} once
   * the stream's OPEN_RESULT is in (the pool target follows opening streams).
   */
  take(): Promise<P | null> {
    const now = this.takeNow();
    if (now !== undefined) return Promise.resolve(now);
    this.#opened();
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter = (conn: P | null) => {
        clearTimeout(timer);
        resolve(conn);
      };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(null);
      }, this.params().poolWaitMs);
      this.#waiters.push(waiter);
      // Once per turn: the CONNECTs of a burst that wait share one POOL_REQUEST.
      this.#replenishSoon();
    });
  }

  /**
   * {@link take} when an idle pool connection is there: it, at once (to be
   * paired with {@link release} as a take is); otherwise undefined, and
   * nothing was taken or counted.
   */
  takeNow(): P | undefined {
    if (this.closed || this.#idle.length === 0) return undefined;
    this.#opened();
    const idle = this.#idle.shift()!;
    if (this.#shortfall() > 0) this.#replenishSoon();
    return idle.conn;
  }

  /** One more CONNECT opening: it counts towards the demand of this tick. */
  #opened(): void {
    this.#opening++;
    const last = this.#demand.length - 1;
    if (this.#opening > this.#demand[last]!) this.#demand[last] = this.#opening;
  }

  /**
   * A client that will most likely CONNECT through this session soon (its
   * SOCKS5 authentication succeeded) counts as demand now: under a burst the
   * pool request leaves while the handshakes are still going on (SPEC.md
   * §7.4). Returns the function that stops counting it, called when its
   * CONNECT arrives or its connection ends; calling it again does nothing.
   */
  expect(): () => void {
    if (this.closed) return () => {};
    this.#expected++;
    if (this.#shortfall() > 0) this.#replenishSoon();
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.#expected--;
    };
  }

  /** The stream that called {@link take} has its OPEN_RESULT (or gave up). */
  release(): void {
    this.#opening = Math.max(0, this.#opening - 1);
  }

  /**
   * {@link add} would count or place a connection now, not only answer
   * "full" or "closed": a GRANT beyond it makes nothing (a flood of them
   * costs no allocation per id).
   */
  get wants(): boolean {
    if (this.closed) return false;
    if (this.#waiters.length > 0 || this.#idle.length < this.params().poolMax) return true;
    for (const a of this.#asks) if (a.remaining > 0) return true;
    return false;
  }

  /**
   * A pool connection whose POOL_HELLO was verified. It counts against the
   * oldest open request, then goes to the oldest waiting CONNECT, else idles.
   * `"full"` and `"closed"`: the caller closes it.
   */
  add(conn: P): "taken" | "idle" | "full" | "closed" {
    const ask = this.#asks.find((a) => a.remaining > 0);
    if (ask && --ask.remaining === 0) this.#asks.splice(this.#asks.indexOf(ask), 1);
    if (this.closed) return "closed";
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter(conn);
      // The last waiting CONNECT is served: now refill to the target (see replenish).
      if (this.#waiters.length === 0) this.#replenishSoon();
      return "taken";
    }
    if (this.#idle.length >= this.params().poolMax) return "full";
    this.#idle.push({ conn, since: this.#now() });
    return "idle";
  }

  /** Close and drop the idle connections `stale` is true of, then refill; how many. */
  sweep(stale: (conn: P) => boolean): number {
    const before = this.#idle.length;
    this.#idle = this.#idle.filter((c) => !stale(c.conn) || (c.conn.close(), false));
    const n = before - this.#idle.length;
    if (n > 0) this.replenish();
    return n;
  }

  /** An idle connection the agent closed: drop it and refill. False if it was not idle. */
  remove(conn: P): boolean {
    const i = this.#idle.findIndex((c) => c.conn === conn);
    if (i < 0) return false;
    this.#idle.splice(i, 1);
    this.replenish();
    return true;
  }

  /** A link of this session is open: from now on the pool rests at `pool_max` (granted ids). */
  linkOpened(): void {
    this.#links++;
    this.#linkLost = false;
  }

  /**
   * A link of this session ended. When it failed (`failed`), its idle
   * entries (those no longer {@link Pooled.usable}) leave the pool, and no
   * outstanding request waits for arrivals any more (those due on the link
   * never come; a request's dialed connections that still arrive count as
   * idle). Then refill.
   */
  linkClosed(failed: boolean): void {
    this.#links = Math.max(0, this.#links - 1);
    if (!failed || this.closed) return;
    this.#idle = this.#idle.filter((c) => c.conn.usable !== false);
    this.#asks = [];
    // Until the next tick the agent may still grant on the link it has not
    // yet seen fail: requests answered so never bring their connections,
    // so from now on they expire after a heartbeat interval, not the open timeout.
    this.#linkLost = true;
    this.replenish();
  }

  /**
   * POOL_CONFIRM: the agent opened `opened` of the request's connections. The
   * shortfall stops counting now; the rest counts until it arrives or the
   * request expires. Returns what was asked, or null for an unknown request.
   */
  confirm(requestId: number, opened: number): number | null {
    const i = this.#asks.findIndex((a) => a.id === requestId);
    if (i < 0) {
      this.replenish();
      return null;
    }
    const ask = this.#asks[i]!;
    const arrived = ask.asked - ask.remaining;
    ask.remaining = Math.max(0, Math.min(ask.remaining, opened - arrived));
    if (ask.remaining === 0) this.#asks.splice(i, 1);
    this.replenish();
    return ask.asked;
  }

  /**
   * A heartbeat tick: requests older than the open timeout stop counting
   * (their connections were lost before their hello was verified), the demand
   * history moves on, idle connections beyond the target that idled for the
   * pool idle time are closed (oldest first), and the pool is refilled.
   */
  tick(): void {
    if (this.closed) return;
    const now = this.#now();
    const p = this.params();
    const expiry = this.#linkLost ? p.heartbeatIntervalMs : p.openTimeoutMs;
    this.#asks = this.#asks.filter((a) => now - a.at <= expiry);
    this.#demand.push(this.#opening);
    const keep = Math.max(1, Math.ceil(p.poolIdleMs / p.heartbeatIntervalMs));
    while (this.#demand.length > keep) this.#demand.shift();
    const target = this.target;
    while (this.#idle.length > target) {
      const oldest = this.#idle[0]!;
      if (now - oldest.since < p.poolIdleMs) break;
      this.#idle.shift();
      oldest.conn.close();
    }
    this.replenish();
  }

  /**
   * Ask for `max(target, expected) − (idle + outstanding)` more connections
   * when positive (expected at most `pool_max`); with a link, only
   * once that is at least {@link grantStep}. While CONNECTs wait, only
   * for `waiting + expected − (idle + outstanding)`: a burst's own
   * connections are dialled first, without the refill to the (grown) target
   * competing with them for the link and the CPU; the refill follows when the
   * last waiting CONNECT is served.
   */
  replenish(): void {
    const count = this.#shortfall();
    if (count === 0) return;
    const id = this.#nextAsk++;
    this.#asks.push({ id, asked: count, remaining: count, at: this.#now() });
    this.hooks.request(id, count);
  }

  /** How many connections {@link replenish} would ask for now (0: none). */
  #shortfall(): number {
    if (this.closed) return 0;
    const { poolMax } = this.params();
    const expected = Math.min(this.#expected, poolMax);
    const waiting = this.#waiters.length;
    const want = waiting > 0 ? waiting + expected : Math.max(this.target, expected);
    const have = this.#idle.length + this.outstanding;
    if (want <= have) return 0;
    // Granted ids cost nothing idle: top them up a step at a time, so one
    // POOL_REQUEST, GRANT and POOL_CONFIRM serve many streams, not each one.
    if (waiting === 0 && this.restAtMax && want - have < grantStep(poolMax)) return 0;
    return Math.min(65535, want - have);
  }

  /** End: close idle connections, fail waiting CONNECTs. Idempotent. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.#idle) c.conn.close();
    this.#idle = [];
    for (const w of this.#waiters.splice(0)) w(null);
    this.#asks = [];
  }

  /**
   * Ask once this turn's callbacks are done (time.ts `afterTurn`): one
   * POOL_REQUEST for all the takes of a turn, whether they wait or took an
   * idle connection (then after this turn's OPENs, so the agent dials its
   * target before it opens new pool connections).
   */
  #replenishSoon(): void {
    if (this.#refillSoon) return;
    this.#refillSoon = true;
    afterTurn(() => {
      this.#refillSoon = false;
      this.replenish();
    });
  }
}
