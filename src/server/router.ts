/**
 * The router (SPEC.md §7.2): decides a CONNECT (target form, grant, limits,
 * the agent's announcement), takes a pool connection of the agent, sends OPEN
 * and reads OPEN_RESULT; then relays and counts the stream. Nothing is
 * dialed unless every check passes. It keeps the registry of live streams
 * ({@link Router.streams}, with byte counters the relay updates) and the
 * byte totals per client and agent that the admin API and /metrics read, and
 * writes the audit log: one line per stream when it ends (`stream ended`)
 * and one per refused CONNECT (`connect refused`).
 *
 * @module
 */
import { targetText } from "../addr.ts";
import { normalizeTarget } from "../host.ts";
import { IdMap } from "../idmap.ts";
import type { Logger } from "../log.ts";
import { type Message, Reason, Status, type Target } from "../messages.ts";
import type { Conn } from "../net.ts";
import { allowed, rulesFor } from "../policy.ts";
import { DURATION_BUCKETS, SETUP_BUCKETS } from "../metrics.ts";
import { relay, type RelayCounter } from "../relay.ts";
import type { AgentPort } from "./agent_port.ts";
import type { PoolConn, PoolEntry, Session } from "./carrier.ts";
import { AgentChoice } from "./agent_choice.ts";
import type { ServerContext } from "./context.ts";
import { RecentRefusals } from "./refusals.ts";

/** The agent a client means, its grants for that agent, and their rules. */

export interface OpenRequest {
  client: string;
  clientId: number;
  /** Agent named by the client, or "" for the client's only granted agent. */
  agent: string;
  /** As the client sent it; normalized here before any check. */
  target: Target;
  log: Logger;
}

/** An opened stream, or why not (a SPEC.md §9.3 status and a reason for the log). */
export type OpenResult =
  | {
    ok: true;
    conn: Conn;
    rest: Uint8Array;
    bound: Target;
    streamId: number;
    agent: string;
    /** The target as matched and opened (normalized). */
    target: Target;
    /** The agent session (replica) that carries it. */
    session: Session;
  }
  /** `code`: the SPEC.md §9.7 reason CONNECT_RESULT carries; `reason`: the text for the log. */
  | { ok: false; status: number; code: number; reason: string };

type Refused = Extract<OpenResult, { ok: false }>;
const refuse = (status: number, code: number, reason: string): OpenResult => ({
  ok: false,
  status,
  code,
  reason,
});

/** A stream being relayed: what the admin API shows, and how to end it. */
export interface LiveStream {
  readonly id: number;
  readonly client: string;
  readonly clientId: number;
  readonly agent: string;
  /** The target as opened, `host:port`. */
  readonly target: string;
  /** The port the client came in on: `socks` or `clients`. */
  readonly port: string;
  /** The agent session (replica) that carries it. */
  readonly session: Session;
  /** When the relay started (ms since the epoch). */
  readonly since: number;
  /** Bytes so far: `up` client to target, `down` target to client. */
  readonly bytes: RelayCounter;
  /** Why an operator ended it, or null. */
  closedBy: string | null;
  close(): void;
}

/** Byte totals of finished streams, per client or agent. */
type Totals = Map<string, RelayCounter>;

function addTotals(m: Totals, k: string, up: number, down: number): void {
  const t = m.get(k);
  if (t) {
    t.up += up;
    t.down += down;
  } else m.set(k, { up, down });
}

/** Attempts on other pool connections when the one taken turns out dead (SPEC.md §7.4). */
const ATTEMPTS = 3;
const OPEN_LATE = "agent did not answer OPEN in time";

const NOTHING = (): void => {};

export class Router {
  #nextStream = 1;
  readonly #clientIds = new Map<string, number>();
  /** Which agent a client means (SPEC.md §7.1). */
  readonly #choice = new AgentChoice(() => this.ctx.config());
  readonly #clientStreams = new Map<string, number>();
  readonly #agentStreams = new Map<string, number>();
  /** Streams open or opening per agent session, for spreading them over replicas. */
  readonly #load = new Map<Session, number>();
  /** When each session was last picked (a tie goes to the one picked longest ago). */
  readonly #picked = new WeakMap<Session, number>();
  #picks = 0;
  /** Streams being relayed. */
  active = 0;
  /** Live streams by stream id. */
  readonly streams: IdMap<LiveStream> = new IdMap();
  readonly #clientBytes: Totals = new Map();
  readonly #agentBytes: Totals = new Map();
  /** Byte totals of each session's (replica's) finished streams: {@link finishedBytes}. */
  readonly #sessionBytes = new WeakMap<Session, RelayCounter>();
  /** The latest refused CONNECTs (dashboard). */
  readonly refusals: RecentRefusals = new RecentRefusals();
  /**
   * Per-stream metrics, each label set resolved at its first use
   * (Metrics.counterOf, histogramOf): setup time by port and result,
   * streams by agent, bytes by direction, duration.
   */
  readonly #setup = new Map<string, (seconds: number) => void>();
  readonly #streamsOf = new Map<string, (n?: number) => void>();
  #bytesUp: ((n: number) => void) | null = null;
  #bytesDown: ((n: number) => void) | null = null;
  #duration: ((seconds: number) => void) | null = null;

  constructor(readonly ctx: ServerContext, readonly agents: AgentPort) {
    const m = ctx.metrics;
    m.counter(
      "burrow_client_bytes_total",
      "Bytes relayed per client (live streams included)",
      () => this.#bytesSeries("client"),
    );
    m.counter(
      "burrow_agent_bytes_total",
      "Bytes relayed per agent (live streams included)",
      () => this.#bytesSeries("agent"),
    );
  }

  /** The id of client `name` if it was ever assigned, without assigning one. */
  knownClientId(name: string): number | undefined {
    return this.#clientIds.get(name);
  }

  /** Open streams of a client. */
  clientStreams(name: string): number {
    return this.#clientStreams.get(name) ?? 0;
  }

  /** Open streams through an agent. */
  agentStreams(name: string): number {
    return this.#agentStreams.get(name) ?? 0;
  }

  /** Bytes of every client's (or agent's) finished and live streams, in one pass. */
  bytesBy(kind: "client" | "agent"): ReadonlyMap<string, RelayCounter> {
    const sum: Totals = new Map();
    for (const [k, t] of kind === "client" ? this.#clientBytes : this.#agentBytes) {
      addTotals(sum, k, t.up, t.down);
    }
    for (const s of this.streams.values()) {
      addTotals(sum, kind === "client" ? s.client : s.agent, s.bytes.up, s.bytes.down);
    }
    return sum;
  }

  /** Bytes of session `s`'s finished streams (its live ones are in {@link streams}). */
  finishedBytes(s: Session): RelayCounter {
    return this.#sessionBytes.get(s) ?? { up: 0, down: 0 };
  }

  /** End a live stream (both connections close; the audit line says `by`). False if unknown. */
  closeStream(id: number, by = "admin"): boolean {
    const s = this.streams.get(id);
    if (!s) return false;
    s.closedBy ??= by;
    s.close();
    return true;
  }

  #bytesSeries(label: "client" | "agent"): Array<[Record<string, string>, number]> {
    const out: Array<[Record<string, string>, number]> = [];
    for (const [k, t] of this.bytesBy(label)) {
      out.push([{ [label]: k, direction: "up" }, t.up], [
        { [label]: k, direction: "down" },
        t.down,
      ]);
    }
    return out;
  }

  /** Count a CONNECT's setup time: from its request read to its reply sent (ok or refused). */
  setupDone(port: string, startedAt: number, ok: boolean): void {
    const result = ok ? "ok" : "refused";
    const key = ok ? port : `${port} refused`;
    let observe = this.#setup.get(key);
    if (!observe) {
      observe = this.ctx.metrics.histogramOf(
        "burrow_stream_setup_seconds",
        "Time from a CONNECT request to its reply",
        { port, result },
        SETUP_BUCKETS,
      );
      this.#setup.set(key, observe);
    }
    observe((Date.now() - startedAt) / 1000);
  }

  /** The stable id of client `name` (SPEC.md §5.13). */
  clientId(name: string): number {
    let id = this.#clientIds.get(name);
    if (id === undefined) {
      this.#clientIds.set(name, id = this.ctx.config().clients.get(name)?.id ?? 0);
    }
    return id;
  }

  /**
   * A SOCKS5 client authenticated as `client`, naming `agent` ("": its only
   * granted agent): when that agent is one announced session, the client
   * counts there as demand until its CONNECT (AgentSession.expect). Returns
   * the function that stops counting it.
   */
  expect(client: string, agent: string): () => void {
    const a = this.#choice.of(client, agent);
    if (!("granted" in a)) return NOTHING;
    const live = this.agents.group(a.agent).filter((s) => s.announced && !s.closed);
    return live.length === 1 ? live[0]!.expect() : NOTHING;
  }

  /**
   * A login check (CHECK, SPEC.md §2.3): could `client` use `agent` now?
   * The refusal a CONNECT would get before any target check, or ok.
   */
  check(client: string, agent: string): { ok: true; agent: string } | Refused {
    const chosen = this.#choice.of(client, agent);
    if (!("granted" in chosen)) {
      return { ok: false, status: Status.not_allowed, code: chosen.code, reason: chosen.reason };
    }
    if (this.agents.group(chosen.agent).length === 0) {
      const reason = `agent ${chosen.agent} is offline`;
      return { ok: false, status: Status.host_unreachable, code: Reason.agent_offline, reason };
    }
    return { ok: true, agent: chosen.agent };
  }

  /** Decide and open a stream. */
  async open(req: OpenRequest): Promise<OpenResult> {
    const n = normalizeTarget(req.target);
    if (!n.ok) return refuse(Status.not_allowed, Reason.bad_target, n.reason);
    const target = n.target;
    const c = this.ctx.config();
    const chosen = this.#choice.of(req.client, req.agent);
    if (!("granted" in chosen)) return refuse(Status.not_allowed, chosen.code, chosen.reason);
    const { agent, rules } = chosen;
    if (!allowed(rules, req.client, target, "never")) {
      return refuse(Status.not_allowed, Reason.outside_grant, "target outside the grant");
    }
    const lim = c.limits;
    if ((this.#clientStreams.get(req.client) ?? 0) >= lim.streamsPerClient) {
      this.ctx.admission.limitHit("streams_per_client", {
        client: req.client,
        max: lim.streamsPerClient,
      });
      return refuse(
        Status.general_failure,
        Reason.client_streams,
        `client has ${lim.streamsPerClient} streams open (limits.streams_per_client)`,
      );
    }
    if ((this.#agentStreams.get(agent) ?? 0) >= lim.streamsPerAgent) {
      this.ctx.admission.limitHit("streams_per_agent", { agent, max: lim.streamsPerAgent });
      return refuse(
        Status.general_failure,
        Reason.agent_streams,
        `agent has ${lim.streamsPerAgent} streams open (limits.streams_per_agent)`,
      );
    }
    // The places are taken now, not when OPEN_RESULT comes: CONNECTs that
    // wait for the agent count too. stream() or abandon() gives them back.
    bump(this.#clientStreams, req.client, 1);
    bump(this.#agentStreams, agent, 1);
    let r: OpenResult | null = null;
    try {
      return r = await this.#route(req, target, agent, c.poolWaitMs);
    } finally {
      if (!r?.ok) {
        bump(this.#clientStreams, req.client, -1);
        bump(this.#agentStreams, agent, -1);
      }
    }
  }

  /**
   * An opened stream that will not be relayed (its reply could not be
   * written): close it and give back its places.
   */
  abandon(client: string, r: Extract<OpenResult, { ok: true }>): void {
    r.conn.close();
    bump(this.#clientStreams, client, -1);
    bump(this.#agentStreams, r.agent, -1);
    this.#unload(r.session);
  }

  /** Find an announced replica for a CONNECT that passed the limits, and open it there. */
  async #route(
    req: OpenRequest,
    target: Target,
    agent: string,
    poolWaitMs: number,
  ): Promise<OpenResult> {
    if (this.agents.group(agent).length === 0) {
      return refuse(Status.host_unreachable, Reason.agent_offline, `agent ${agent} is offline`);
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
    const replicas = announced.filter((s) =>
      allowed(rulesFor(s.rules, req.client), req.client, target, "defer")
    );
    if (replicas.length === 0) {
      return refuse(
        Status.not_allowed,
        Reason.outside_announce,
        "target outside what the agent announced",
      );
    }
    const failed = new Set<Session>();
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
        if (!r?.ok) this.#unload(s);
      }
      if (r) return r;
      failed.add(s); // its pool connection was dead: the next attempt goes to another replica
    }
    return refuse(Status.general_failure, Reason.agent_failed, "pool connections kept failing");
  }

  /**
   * The replica for a new stream (SPEC.md §7.2): live, not failed in this
   * CONNECT if another is left, with the fewest streams open or opening, then
   * the most idle pool connections, then the one picked longest ago.
   */
  #pick(replicas: Session[], failed: Set<Session>): Session | undefined {
    const live = replicas.filter((s) => !s.closed);
    const fresh = live.filter((s) => !failed.has(s));
    const from = fresh.length > 0 ? fresh : live;
    const rank = (s: Session) => [this.#load.get(s) ?? 0, -s.idle, this.#picked.get(s) ?? 0];
    let best: Session | undefined;
    let bestRank: number[] = [];
    for (const s of from) {
      const r = rank(s);
      const better = !best || r[0]! < bestRank[0]! ||
        (r[0] === bestRank[0] &&
          (r[1]! < bestRank[1]! || (r[1] === bestRank[1] && r[2]! < bestRank[2]!)));
      if (better) [best, bestRank] = [s, r];
    }
    if (best) this.#picked.set(best, ++this.#picks);
    return best;
  }

  #unload(s: Session): void {
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
    const streamId = this.#nextStream;
    this.#nextStream = this.#nextStream >= 0xffffffff ? 1 : this.#nextStream + 1;
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
    return {
      ok: true,
      conn: pc.wire.conn,
      rest: pc.wire.rest(),
      bound: res.bound,
      streamId,
      agent,
      target,
      session: s,
    };
  }

  /**
   * Relay an opened stream to its end; count it, and write its audit line
   * (`stream ended`: client, agent, target, up, down, ms, result) to `log`,
   * the client's logger (its fields name the client). Never throws.
   */
  async stream(
    client: string,
    clientConn: Conn,
    clientRest: Uint8Array,
    r: Extract<OpenResult, { ok: true }>,
    log: Logger,
    port = "socks",
  ): Promise<void> {
    this.active++; // its places were taken by open()
    let opened = this.#streamsOf.get(r.agent);
    if (!opened) {
      opened = this.ctx.metrics.counterOf("burrow_streams_total", "Streams opened", {
        agent: r.agent,
      });
      this.#streamsOf.set(r.agent, opened);
    }
    opened();
    const t0 = Date.now();
    const live: LiveStream = {
      id: r.streamId,
      client,
      clientId: this.clientId(client),
      agent: r.agent,
      target: targetText(r.target),
      port,
      session: r.session,
      since: t0,
      bytes: { up: 0, down: 0 },
      closedBy: null,
      close: () => {
        clientConn.close();
        r.conn.close();
      },
    };
    this.streams.set(r.streamId, live);
    let up = 0;
    let down = 0;
    try {
      const res = await relay(clientConn, r.conn, clientRest, r.rest, live.bytes);
      up = res.aToB;
      down = res.bToA;
    } catch {
      // relay() does not throw; the counts so far stand
      up = live.bytes.up;
      down = live.bytes.down;
    } finally {
      // Totals and registry change in one turn, so the byte counters never go back.
      addTotals(this.#clientBytes, client, live.bytes.up, live.bytes.down);
      addTotals(this.#agentBytes, r.agent, live.bytes.up, live.bytes.down);
      const sb = this.finishedBytes(r.session);
      this.#sessionBytes.set(r.session, {
        up: sb.up + live.bytes.up,
        down: sb.down + live.bytes.down,
      });
      if (this.streams.get(r.streamId) === live) this.streams.delete(r.streamId);
      this.active--;
      bump(this.#clientStreams, client, -1);
      bump(this.#agentStreams, r.agent, -1);
      this.#unload(r.session);
    }
    const ms = Date.now() - t0;
    const m = this.ctx.metrics;
    (this.#bytesUp ??= m.counterOf("burrow_bytes_total", "Bytes relayed", { direction: "up" }))(up);
    (this.#bytesDown ??= m.counterOf("burrow_bytes_total", "Bytes relayed", {
      direction: "down",
    }))(down);
    (this.#duration ??= m.histogramOf(
      "burrow_stream_duration_seconds",
      "How long streams lasted, from reply to close",
      {},
      DURATION_BUCKETS,
    ))(ms / 1000);
    // `log` names the client already (client, client_id).
    log.info("stream ended", {
      stream: r.streamId,
      port,
      agent: r.agent,
      target: live.target,
      up,
      down,
      ms,
      result: live.closedBy ? `closed by ${live.closedBy}` : "ok",
    });
  }

  /**
   * Log and count a refused CONNECT: its audit line (`connect refused`:
   * client, agent, target, up, down, ms, result = the reason; plus the
   * SOCKS5 status).
   */
  refused(
    log: Logger,
    port: string,
    client: string,
    target: Target | null,
    status: number,
    reason: string,
    at: { agent?: string; startedAt?: number } = {},
  ): void {
    this.ctx.metrics.inc("burrow_connects_refused_total", "CONNECTs refused", {
      port,
      status: String(status),
    });
    const tt = target ? targetText(target) : "";
    const [agent, now] = [at.agent ?? "", Date.now()];
    this.refusals.add({ at: now, port, client, agent, target: tt, status, reason });
    log.warn("connect refused", {
      port,
      client,
      agent: at.agent || undefined,
      target: target ? targetText(target) : undefined,
      up: 0,
      down: 0,
      ms: at.startedAt === undefined ? undefined : Date.now() - at.startedAt,
      status,
      reason,
      result: reason,
    });
  }
}

function bump(m: Map<string, number>, k: string, d: number): void {
  const n = (m.get(k) ?? 0) + d;
  if (n === 0) m.delete(k);
  else m.set(k, n);
}
