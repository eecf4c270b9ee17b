/**
 * Opening a stream that the router decided (SPEC.md §7.2, §7.4): pick the
 * agent's announced replica with the fewest streams, take an entry of its
 * pool (waiting up to the pool wait), send OPEN and read OPEN_RESULT; on a
 * dead entry try another, up to three times. Whatever carries the entry
 * (carrier.ts), this file sees only a {@link PoolConn}.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { type Message, Reason, RuleProtocol, Status, type Target } from "../messages.ts";
import type { Conn } from "../net.ts";
import { opens, type Protocol } from "../policy.ts";
import { relay, type RelayCounter, type RelayResult } from "../relay.ts";
import type { Pace } from "./bandwidth.ts";
import { SETUP_BUCKETS } from "../metrics.ts";
import { type Err, err, ok, type Result } from "../result.ts";
import type { AgentPort } from "./agent_port.ts";
import type { PoolConn, PoolEntry, Session } from "./carrier.ts";
import type { ServerContext } from "./context.ts";

export interface OpenRequest {
  client: string;
  clientId: number;
  /** Agent named by the client, or "" for the client's only granted agent. */
  agent: string;
  /** As the client sent it; normalized here before any check. */
  target: Target;
  log: Logger;
  /** The server it was forwarded from (SPEC.md §2.6): it is never forwarded again. */
  forwarded?: string;
  /** "udp": a UDP association (SPEC.md §2.5); default "tcp". */
  protocol?: Protocol;
  /** How the opened stream is relayed, when not byte for byte (a UDP association's records). */
  relay?: RelayFn;
}

/**
 * Relays an opened stream `r` with its client's connection (and bytes read
 * from it past the request), counting into `live`, under the bandwidth
 * limits' `pace`, as relay.ts's `relay`.
 */
export type RelayFn = (
  client: Conn,
  clientRest: Uint8Array,
  r: Opened,
  live: RelayCounter,
  pace: Pace,
) => Promise<RelayResult>;

/** How a TCP stream is relayed: byte for byte (relay.ts). */
export const byteRelay: RelayFn = (client, clientRest, r, live, pace) =>
  relay(client, r.conn, clientRest, r.rest, live, pace);

/** An opened stream. */
export type Opened = {
  conn: Conn;
  rest: Uint8Array;
  bound: Target;
  streamId: number;
  agent: string;
  /** The target as matched and opened (normalized). */
  target: Target;
  /** The agent session (replica) that carries it; null: a peer's (SPEC.md §2.6). */
  session: Session | null;
  /** How to relay it: the request's, or byte for byte ({@link byteRelay}). */
  relay: RelayFn;
};

/**
 * Why a stream was not opened: `status` the SPEC.md §9.3 status, `code` the
 * SPEC.md §9.7 reason CONNECT_RESULT carries, `reason` the text for the log.
 */
export type Refused = { status: number; code: number; reason: string };

/** An opened stream, or why not. */
export type OpenResult = Result<Opened, Refused>;

/** A refusal, for any result whose failure is {@link Refused}. */
export const refuse = (status: number, code: number, reason: string): Err<Refused> =>
  err({ status, code, reason });

/** Attempts on other pool connections when the one taken turns out dead (SPEC.md §7.4). */
const ATTEMPTS = 3;
const OPEN_LATE = "agent did not answer OPEN in time";

export class ReplicaOpener {
  #nextStream = 1;
  /** Streams open or opening per agent session, for spreading them over replicas. */
  readonly #load = new Map<Session, number>();
  /** When each session was last picked (a tie goes to the one picked longest ago). */
  readonly #picked = new WeakMap<Session, number>();
  #picks = 0;

  constructor(readonly ctx: ServerContext, readonly agents: AgentPort) {}

  /** Find an announced replica for a CONNECT that passed the limits, and open it there. */
  async route(
    req: OpenRequest,
    target: Target,
    agent: string,
    poolWaitMs: number,
  ): Promise<OpenResult> {
    if (this.agents.group(agent).length === 0) {
      // No session here: a server of the fleet that holds one opens it (SPEC.md §2.6).
      const peers = req.forwarded === undefined ? this.ctx.forwarder : null;
      const fwd = await peers?.forward(req, target, agent, this.nextStreamId());
      return fwd ??
        refuse(Status.host_unreachable, Reason.agent_offline, `agent ${agent} is offline`);
    }
    // Only announced sessions are routable; a CONNECT right after a (re)connect waits.
    const found = this.agents.announced(agent, poolWaitMs);
    const announced = Array.isArray(found) ? found : await found;
    if (announced.length === 0) {
      return refuse(
        Status.host_unreachable,
        Reason.agent_not_ready,
        `agent ${agent} has not announced its targets in time`,
      );
    }
    // `opens` keeps to the rules for req.client itself: no filtered copy of each rule list.
    const replicas = announced.filter((s) =>
      opens(s.rules, req.client, target, "defer", req.protocol)
    );
    if (replicas.length === 0) {
      return refuse(
        Status.not_allowed,
        Reason.outside_announce,
        "target outside what the agent announced",
      );
    }
    let failed: Set<Session> | null = null; // made on the first failure only
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const s = this.#pick(replicas, failed);
      if (!s) break;
      this.#load.set(s, (this.#load.get(s) ?? 0) + 1);
      const waits = s.idle === 0 && !s.closed;
      const tw = waits ? Date.now() : 0;
      const entry = s.takeNow() ?? await s.take();
      if (waits) this.#poolWaited(s, agent, tw, entry !== null);
      let r: OpenResult | null = null;
      try {
        r = await this.#openOn(s, entry, req, target, agent);
      } finally {
        s.release();
        if (!r?.ok) this.unload(s);
      }
      if (r) return r;
      (failed ??= new Set()).add(s); // its pool connection was dead: the next attempt goes to another replica
    }
    return refuse(Status.general_failure, Reason.agent_failed, "pool connections kept failing");
  }

  /**
   * The replica for a new stream (SPEC.md §7.2): live, not failed in this
   * CONNECT if another is left, with the fewest streams open or opening, then
   * the most idle pool connections, then the one picked longest ago.
   */
  #pick(replicas: Session[], failed: Set<Session> | null): Session | undefined {
    let fresh = false; // is a replica left that did not fail in this CONNECT?
    for (const s of replicas) fresh ||= !s.closed && !failed?.has(s);
    let best: Session | undefined;
    for (const s of replicas) {
      if (s.closed || (fresh && failed?.has(s))) continue;
      if (!best || this.#before(s, best)) best = s;
    }
    if (best) this.#picked.set(best, ++this.#picks);
    return best;
  }

  /** Does `a` rank before `b`: fewer streams, then more idle pool connections, then picked longer ago? */
  #before(a: Session, b: Session): boolean {
    const la = this.#load.get(a) ?? 0;
    const lb = this.#load.get(b) ?? 0;
    if (la !== lb) return la < lb;
    if (a.idle !== b.idle) return a.idle > b.idle;
    return (this.#picked.get(a) ?? 0) < (this.#picked.get(b) ?? 0);
  }

  unload(s: Session | null): void {
    if (!s) return;
    const n = (this.#load.get(s) ?? 1) - 1;
    if (n <= 0) this.#load.delete(s);
    else this.#load.set(s, n);
  }

  /** Count a CONNECT that found no idle pool connection and had to wait. */
  #poolWaited(s: Session, agent: string, since: number, got: boolean): void {
    const m = this.ctx.metrics;
    m.inc("burrow_pool_waits_total", "CONNECTs that waited for a pool connection", { agent });
    m.observe(
      "burrow_pool_wait_seconds",
      "How long CONNECTs waited for a pool connection",
      (Date.now() - since) / 1000,
      {},
      SETUP_BUCKETS,
    );
    if (!got && !s.closed) {
      m.inc("burrow_pool_timeouts_total", "CONNECTs that got no pool connection within pool.wait", {
        agent,
      });
    }
  }

  /** The id of a new stream (OPEN's, and the admin API's). */
  nextStreamId(): number {
    const id = this.#nextStream;
    this.#nextStream = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  /** Send OPEN on `entry` and read its result; null means "that pool connection was dead, try another". */
  async #openOn(
    s: Session,
    entry: PoolEntry | null,
    req: OpenRequest,
    target: Target,
    agent: string,
  ): Promise<OpenResult | null> {
    const c = this.ctx.config();
    if (!entry) {
      return s.closed
        ? refuse(Status.host_unreachable, Reason.agent_offline, `agent ${agent} went offline`)
        : refuse(
          Status.host_unreachable,
          Reason.pool_timeout,
          `no pool connection within ${c.poolWaitMs} ms`,
        );
    }
    let pc: PoolConn;
    try {
      pc = entry.open();
    } catch {
      return null; // a granted stream id on a link that is gone
    }
    const streamId = this.nextStreamId();
    let res: Message | null;
    // The open timeout closes the pool connection, which ends its pending
    // read: one timer, no race of promises on every stream's way.
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      pc.close();
    }, c.openTimeoutMs);
    try {
      await pc.wire.send({
        type: "OPEN",
        streamId,
        clientId: req.clientId,
        client: req.client,
        protocol: RuleProtocol[req.protocol ?? "tcp"],
        target,
      });
      res = await pc.first;
    } catch {
      pc.close();
      return late ? refuse(Status.ttl_expired, Reason.agent_timeout, OPEN_LATE) : null;
    } finally {
      clearTimeout(timer);
    }
    if (late) return refuse(Status.ttl_expired, Reason.agent_timeout, OPEN_LATE);
    if (res === null) {
      pc.close(); // closed under us: try another pool connection
      return null;
    }
    if (res.type !== "OPEN_RESULT" || res.streamId !== streamId) {
      s.hooks.log.warn("bad answer to OPEN", { got: res.type });
      void pc.wire.fail("unexpected_message", `expected OPEN_RESULT for stream ${streamId}`);
      return refuse(Status.general_failure, Reason.agent_failed, "agent answered OPEN wrongly");
    }
    if (res.status !== Status.succeeded) {
      pc.close();
      return refuse(res.status, Reason.target_failed, "agent could not open the target");
    }
    const rest = pc.wire.rest();
    const relay = req.relay ?? byteRelay;
    return ok({
      conn: pc.wire.conn,
      rest,
      bound: res.bound,
      streamId,
      agent,
      target,
      session: s,
      relay,
    });
  }
}
