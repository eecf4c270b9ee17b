/**
 * The router (SPEC.md §7.2): decides a CONNECT (target form, grant, limits,
 * the agent's announcement), has replica_open.ts open it on the agent (a
 * pool entry, OPEN, OPEN_RESULT); then, once the front replied
 * ({@link Router.replied}), relays and counts the stream. Nothing is
 * dialed unless every check passes. It keeps the live streams
 * ({@link Router.streams}), the byte totals per client and agent (admin
 * API, /metrics) and the audit log: `stream ended`, `connect refused`.
 *
 * @module
 */
import { targetText } from "../addr.ts";
import { normalizeTarget } from "../host.ts";
import { IdMap } from "../idmap.ts";
import type { Logger } from "../log.ts";
import { Reason, Status, type Target } from "../messages.ts";
import type { Conn } from "../net.ts";
import { opens } from "../policy.ts";
import { DURATION_BUCKETS, SETUP_BUCKETS } from "../metrics.ts";
import type { RelayCounter } from "../relay.ts";
import type { AgentPort } from "./agent_port.ts";
import type { Session } from "./carrier.ts";
import {
  type Opened,
  type OpenRequest,
  type OpenResult,
  refuse,
  type Refused,
  ReplicaOpener,
} from "./replica_open.ts";
import { ok, type Result } from "../result.ts";
import { AgentChoice } from "./agent_choice.ts";
import type { ServerContext } from "./context.ts";
import { RecentRefusals } from "./refusals.ts";
import { Bandwidth } from "./bandwidth.ts";
import { StreamLimits } from "./stream_limits.ts";
export type { Opened, OpenRequest, OpenResult, Refused };

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
  /** The agent session (replica) that carries it; null: a peer's (SPEC.md §2.6). */
  readonly session: Session | null;
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

const NOTHING = (): void => {};

export class Router {
  readonly #clientIds = new Map<string, number>();
  /** Which agent a client means (SPEC.md §7.1). */
  readonly #choice = new AgentChoice(() => this.ctx.config(), () => this.ctx.tokens);
  /** Which replica, which pool entry, OPEN and OPEN_RESULT. */
  readonly #opener: ReplicaOpener;
  readonly #clientStreams = new Map<string, number>();
  readonly #agentStreams = new Map<string, number>();
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
  /** Bandwidth limits per client and agent, and their current rates (bandwidth.ts). */
  readonly bandwidth: Bandwidth;
  /** streams_per_client, streams_per_agent, new_streams_per_client. */
  readonly #limits: StreamLimits;
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
    this.#opener = new ReplicaOpener(ctx, agents);
    [this.bandwidth, this.#limits] = [new Bandwidth(ctx), new StreamLimits(ctx)];
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
  finishedBytes(s: Session | null): RelayCounter {
    return (s && this.#sessionBytes.get(s)) ?? { up: 0, down: 0 };
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
      this.#clientIds.set(name, id = this.#choice.clientId(name));
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
    if (!a.ok) return NOTHING;
    const live = this.agents.group(a.value.agent).filter((s) => s.announced && !s.closed);
    return live.length === 1 ? live[0]!.expect() : NOTHING;
  }

  /**
   * A login check's grant (CHECK, SPEC.md §2.3; login_check.ts): the agent
   * `client` means by `agent`, or the refusal a CONNECT would get for it.
   */
  check(client: string, agent: string): Result<string, Refused> {
    const chosen = this.#choice.of(client, agent);
    if (!chosen.ok) return refuse(Status.not_allowed, chosen.error.code, chosen.error.reason);
    return ok(chosen.value.agent);
  }

  /** Decide and open a stream. */
  async open(req: OpenRequest): Promise<OpenResult> {
    const n = normalizeTarget(req.target);
    if (!n.ok) return refuse(Status.not_allowed, Reason.bad_target, n.error);
    const target = n.value;
    const c = this.ctx.config();
    const chosen = this.#choice.of(req.client, req.agent);
    if (!chosen.ok) return refuse(Status.not_allowed, chosen.error.code, chosen.error.reason);
    const { agent, rules } = chosen.value;
    if (!opens(rules, req.client, target, "never", req.protocol)) {
      return refuse(Status.not_allowed, Reason.outside_grant, "target outside the grant");
    }
    const over = this.#limits.check(
      req.client,
      agent,
      this.clientStreams(req.client),
      this.agentStreams(agent),
    );
    if (over) return over;
    // The places are taken now, not when OPEN_RESULT comes: CONNECTs that
    // wait for the agent count too. stream() or abandon() gives them back.
    bump(this.#clientStreams, req.client, 1);
    bump(this.#agentStreams, agent, 1);
    let r: OpenResult | null = null;
    try {
      return r = await this.#opener.route(req, target, agent, c.poolWaitMs);
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
  abandon(client: string, r: Opened): void {
    r.conn.close();
    bump(this.#clientStreams, client, -1);
    bump(this.#agentStreams, r.agent, -1);
    this.#opener.unload(r.session);
  }

  /**
   * An opened stream whose success reply to its client (`reply`, the
   * front's answer, already written) settles: count its setup time and relay
   * it ({@link stream}), ended with `tokenId` if that is revoked; if the
   * reply fails, abandon it and throw.
   */
  async replied(
    reply: Promise<void>,
    client: string,
    clientConn: Conn,
    clientRest: Uint8Array,
    r: Opened,
    log: Logger,
    port: string,
    startedAt: number,
    tokenId?: string,
  ): Promise<void> {
    if (log.enabled("debug")) { // the audit line at info is "stream ended" (stream())
      log.debug("stream open", {
        stream: r.streamId,
        agent: r.agent,
        target: targetText(r.target),
      });
    }
    try {
      await reply;
    } catch (e) {
      this.abandon(client, r);
      throw e;
    }
    this.setupDone(port, startedAt, true);
    const relay = this.stream(client, clientConn, clientRest, r, log, port); // never throws
    if (tokenId === undefined) return relay;
    const end = () => this.closeStream(r.streamId, "revocation"); // its token was revoked
    return relay.finally(this.ctx.tokens.attach(tokenId, r.streamId, end));
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
    r: Opened,
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
    let [up, down] = [0, 0];
    const pace = this.bandwidth.attach(client, r.agent, clientConn, r.conn);
    try {
      const res = await r.relay(clientConn, clientRest, r, live.bytes, pace);
      up = res.aToB;
      down = res.bToA;
    } catch {
      // relay() does not throw; the counts so far stand
      up = live.bytes.up;
      down = live.bytes.down;
    } finally {
      pace.release();
      // Totals and registry change in one turn, so the byte counters never go back.
      addTotals(this.#clientBytes, client, live.bytes.up, live.bytes.down);
      addTotals(this.#agentBytes, r.agent, live.bytes.up, live.bytes.down);
      const sb = this.finishedBytes(r.session);
      const done = { up: sb.up + live.bytes.up, down: sb.down + live.bytes.down };
      if (r.session) this.#sessionBytes.set(r.session, done);
      if (this.streams.get(r.streamId) === live) this.streams.delete(r.streamId);
      this.active--;
      bump(this.#clientStreams, client, -1);
      bump(this.#agentStreams, r.agent, -1);
      this.#opener.unload(r.session);
    }
    this.#ended(live, up, down, log);
  }

  /** Count a stream that ended, and write its audit line to `log`. */
  #ended(live: LiveStream, up: number, down: number, log: Logger): void {
    const ms = Date.now() - live.since;
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
      stream: live.id,
      port: live.port,
      agent: live.agent,
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
