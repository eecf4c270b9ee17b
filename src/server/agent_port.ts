/**
 * The agent port (SPEC.md §2.1, §2.2): an agent's control connection (login,
 * WELCOME, ANNOUNCE, POOL_REQUEST/CONFIRM, heartbeats) and its pool
 * connections (POOL_HELLO, then idle until the router sends OPEN). The pool
 * policy itself is {@link AgentSession}'s.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { poolTranscript, randomBytes, toHex } from "../auth.ts";
import type { ServerConfig } from "../config/mod.ts";
import { ProtocolError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ErrorCode, type MessageOf } from "../messages.ts";
import type { Conn } from "../net.ts";
import { normalizeRule } from "../policy.ts";
import { answerControl, Wire } from "../wire.ts";
import { closeOnError, type ServerContext } from "./context.ts";
import { verifyLogin } from "./login.ts";
import { AgentSession } from "./session.ts";
import { Links, PooledConn, type Session } from "./carrier.ts";

/** A live session with its control connection. */
interface Control {
  session: Session;
  wire: Wire;
  log: Logger;
  timer: ReturnType<typeof setInterval>;
  /** Captured at login, for the admin API. */
  remote: string;
  software: string;
  since: number;
}

/** What the admin API shows of a session besides {@link AgentSession}'s own state. */
export interface SessionInfo {
  remote: string;
  software: string;
  /** Login time, ms since the epoch. */
  since: number;
}

export class AgentPort {
  /** Live sessions by agent name, oldest first: several are replicas (SPEC.md §2.1). */
  readonly #groups = new Map<string, Session[]>();
  /** CONNECTs waiting for an agent's first ANNOUNCE, by agent name. */
  readonly #announceWaiters = new Map<string, Set<() => void>>();
  readonly #controls = new Map<Session, Control>();
  readonly #byKey = new Map<string, Session>();
  readonly #agentIds = new Map<string, number>();
  /** Each session's links (SPEC.md §2.4). */
  readonly #links = new Links();

  constructor(readonly ctx: ServerContext) {
    ctx.metrics.gauge(
      "burrow_link_queued_control_peak",
      "Most frames other than DATA a live link has had waiting for its agent to read",
      () => [[{}, this.#links.queuedControlPeak()]],
    );
  }

  /** The newest live session of each agent that has one. */
  get sessions(): ReadonlyMap<string, Session> {
    const m = new Map<string, Session>();
    for (const [name, g] of this.#groups) m.set(name, g[g.length - 1]!);
    return m;
  }

  /** The names of the agents that have a live session. */
  names(): IterableIterator<string> {
    return this.#groups.keys();
  }

  /** How many agents have a live session. */
  get connected(): number {
    return this.#groups.size;
  }

  /** The live sessions of agent `name` (its replicas), oldest first. */
  group(name: string): readonly Session[] {
    return this.#groups.get(name) ?? [];
  }

  /** Open links of agent `name`'s live sessions (SPEC.md §2.4). */
  links(name: string): number {
    return this.group(name).reduce((n, s) => n + this.#links.count(s), 0);
  }

  /** Every live session. */
  all(): Session[] {
    return [...this.#groups.values()].flat();
  }

  /**
   * The announced sessions of agent `name`; if none has announced yet but one
   * is live, waits for the first ANNOUNCE up to `ms` (SPEC.md §2.1). An
   * array, not a promise, when there is no need to wait.
   */
  announced(name: string, ms: number): Session[] | Promise<Session[]> {
    const now = this.group(name).filter((s) => s.announced && !s.closed);
    if (now.length > 0 || this.group(name).length === 0) return now;
    return this.#firstAnnounce(name, ms);
  }

  async #firstAnnounce(name: string, ms: number): Promise<Session[]> {
    let waiters = this.#announceWaiters.get(name);
    if (!waiters) this.#announceWaiters.set(name, waiters = new Set());
    const w = waiters;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        w.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      w.add(done);
    });
    if (w.size === 0) this.#announceWaiters.delete(name);
    return this.group(name).filter((s) => s.announced && !s.closed);
  }

  /** Serve one connection on the agent port: a control or a pool connection. */
  async handle(conn: Conn): Promise<void> {
    const wire = new Wire(conn);
    const admitted = this.ctx.admission.begin(conn, "agents");
    if (!admitted) return;
    const log = this.ctx.log.with({ remote: fmt(conn.remote) });
    try {
      const first = await wire.recv();
      if (first === null) return conn.close();
      if (first.type === "AGENT_HELLO") await this.#control(wire, first, log, admitted);
      else if (first.type === "POOL_HELLO") await this.#pool(wire, first, log, admitted);
      else if (first.type === "LINK_HELLO") await this.#link(wire, first, log, admitted);
      else {throw new ProtocolError(
          "unexpected_message",
          `Expected AGENT_HELLO, POOL_HELLO or LINK_HELLO, got ${first.type}`,
        );}
    } catch (e) {
      admitted();
      await closeOnError(this.ctx, wire, e, log, "agents");
    }
  }

  /** Sessions of agents removed or re-keyed by a reload end; the others go on. */
  reload(old: ServerConfig, now: ServerConfig): void {
    for (const s of this.all()) {
      const next = now.agents.get(s.name);
      if (!next || next.credential !== old.agents.get(s.name)?.credential) {
        this.end(s, "auth_failed", "agent removed or credential changed by config reload");
      }
    }
  }

  stop(): void {
    for (const s of this.all()) this.end(s, "shutdown", "server shutting down");
  }

  /** Remote address, software and login time of a live session (admin API). */
  info(s: Session): SessionInfo | undefined {
    const c = this.#controls.get(s);
    return c && { remote: c.remote, software: c.software, since: c.since };
  }

  /**
   * End agent `name`'s session on an operator's request (GOAWAY shutdown; its
   * open streams go on, and the agent reconnects after its backoff). False if
   * it has no session.
   */
  disconnect(name: string, reason = "disconnected by an operator"): boolean {
    const g = [...this.group(name)];
    for (const s of g) this.end(s, "shutdown", reason);
    return g.length > 0;
  }

  /** End a session: GOAWAY (if `code`), close control and idle pool. Open streams go on. */
  end(s: Session, code: keyof typeof ErrorCode | null, reason: string): void {
    if (s.closed) return;
    s.end();
    const c = this.#controls.get(s)!;
    this.#controls.delete(s);
    clearInterval(c.timer);
    const g = this.#groups.get(s.name)?.filter((x) => x !== s) ?? [];
    if (g.length > 0) this.#groups.set(s.name, g);
    else this.#groups.delete(s.name);
    this.#byKey.delete(s.key);
    this.ctx.store.presence.down(s.name, s.key);
    // Streams relaying on a link go on; the link closes when they are done.
    this.#links.drain(s);
    if (code) void c.wire.last({ type: "GOAWAY", code: ErrorCode[code], message: reason });
    else c.wire.conn.close();
    c.log.info("agent session ended", { reason: code ?? reason });
  }

  /** End the other sessions of `s`'s name that `which` selects: `s` replaces them. */
  #replace(s: Session, which: (old: Session) => boolean): void {
    for (const old of this.group(s.name)) {
      if (old !== s && which(old)) {
        this.end(old, "replaced", "a newer session for this agent took over");
      }
    }
  }

  /** The agent's id: the config's (the same on every server sharing it), kept across reloads. */
  #agentId(name: string): number {
    let id = this.#agentIds.get(name);
    if (id === undefined) {
      this.#agentIds.set(name, id = this.ctx.config().agents.get(name)?.id ?? 0);
    }
    return id;
  }

  async #control(
    wire: Wire,
    hello: MessageOf<"AGENT_HELLO">,
    log0: Logger,
    admitted: () => void,
  ): Promise<void> {
    const { version, nonce, verifier } = await verifyLogin(
      wire,
      hello,
      "agent",
      this.ctx.config().agents,
      (why) => {
        this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
          role: "agent",
        });
        this.ctx.admission.authFailed("agents", wire.conn.remote.host);
        log0.warn("authentication failed", {
          role: "agent",
          ...(why === "unknown name" ? { name_bytes: hello.name.length } : { name: hello.name }),
          reason: why,
        });
      },
    );
    admitted();
    const agentId = this.#agentId(hello.name);
    const log = log0.with({ agent: hello.name, agent_id: agentId });
    const s: Session = new AgentSession(
      { id: randomBytes(16), name: hello.name, agentId, version, nonce, verifier },
      () => this.ctx.config(),
      {
        log,
        request: (requestId, count) => {
          wire.send({ type: "POOL_REQUEST", requestId, count }).catch(() => wire.conn.close());
        },
      },
    );
    // Which sessions this one replaces waits for its INSTANCE (SPEC.md §2.1).
    const c = this.ctx.config();
    const timer = setInterval(() => this.#tick(s), c.heartbeatIntervalMs);
    this.#groups.set(s.name, [...this.group(s.name), s]);
    this.#byKey.set(s.key, s);
    this.ctx.store.presence.up(s.name, s.key);
    this.#controls.set(s, {
      session: s,
      wire,
      log,
      timer,
      remote: fmt(wire.conn.remote),
      software: hello.software,
      since: Date.now(),
    });
    await wire.send({
      type: "WELCOME",
      agentId,
      sessionId: s.who.id,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      heartbeatTimeoutMs: c.heartbeatTimeoutMs,
      poolMin: c.poolMin,
      poolMax: c.poolMax,
    });
    log.info("agent connected", { session: s.key.slice(0, 8), software: hello.software, version });
    this.ctx.metrics.inc("burrow_agent_sessions_total", "Agent sessions established");
    s.replenish();
    try {
      await this.#serve(s, wire, log);
    } catch (e) {
      if (!s.closed) await closeOnError(this.ctx, wire, e, log, "agents");
    } finally {
      this.end(s, null, "control connection closed");
    }
  }

  /** The control loop: every message the agent may send on its control connection. */
  async #serve(s: Session, wire: Wire, log: Logger): Promise<void> {
    for (;;) {
      const msg = await wire.recv();
      if (msg === null) return;
      s.lastRx = Date.now();
      if (s.closed) continue;
      switch (msg.type) {
        case "ANNOUNCE": {
          const rules = msg.rules.map(normalizeRule);
          s.rules = rules.filter((r) => r !== null);
          const dropped = rules.length - s.rules.length;
          log.info("agent announced targets", {
            rules: s.rules.length,
            ...(dropped ? { invalid: dropped } : {}),
          });
          if (!s.announced) {
            s.announced = true;
            for (const wake of [...(this.#announceWaiters.get(s.name) ?? [])]) wake();
          }
          break;
        }
        case "INSTANCE": {
          if (s.instance || s.announced) {
            throw new ProtocolError("unexpected_message", "INSTANCE comes once, before ANNOUNCE");
          }
          s.instance = msg.instance;
          s.nameserver = msg.nameserver.port === 0 ? null : msg.nameserver;
          const same = toHex(msg.instance);
          // The same process reconnecting (one whose INSTANCE is not in yet is someone else).
          this.#replace(s, (old) => old.instance !== null && toHex(old.instance) === same);
          log.info("agent instance", {
            instance: same.slice(0, 8),
            replicas: this.group(s.name).length,
          });
          break;
        }
        case "POOL_CONFIRM": {
          const asked = s.confirm(msg.requestId, msg.count);
          if (asked !== null && msg.count < asked) {
            log.warn("agent opened fewer pool connections than asked", {
              asked,
              opened: msg.count,
            });
          }
          break;
        }
        case "GOAWAY":
          log.info("agent going away", { code: msg.code, reason: msg.message });
          return this.end(s, null, "");
        default:
          await answerControl(wire, msg);
      }
    }
  }

  #tick(s: Session): void {
    const now = Date.now();
    const c = this.ctx.config();
    const ctl = this.#controls.get(s);
    if (!ctl) return;
    if (now - s.lastRx > c.heartbeatTimeoutMs) {
      this.ctx.metrics.inc("burrow_heartbeat_timeouts_total", "Agent sessions dropped for silence");
      ctl.log.warn("agent heartbeat timeout", { silent_ms: now - s.lastRx });
      void ctl.wire.fail("heartbeat_timeout", `no frame for ${now - s.lastRx} ms`);
      return this.end(s, null, "heartbeat timeout");
    }
    ctl.wire.send({ type: "PING", data: randomBytes(8) }).catch(() => ctl.wire.conn.close());
    // An idle pool connection gets nothing before OPEN: a partial frame may wait as long.
    const held = s.sweep((e) => e.heldFor(now) > c.heartbeatTimeoutMs);
    if (held > 0) {
      this.ctx.admission.limitHit("frame_timeout", {
        agent: s.name,
        max: c.heartbeatTimeoutMs,
        connections: held,
      });
    }
    s.tick();
  }

  /**
   * The session a POOL_HELLO or LINK_HELLO proves itself for (SPEC.md §6.3):
   * live, same version, a valid proof over an unused sequence number.
   */
  async #prove(
    wire: Wire,
    hello: MessageOf<"POOL_HELLO"> | MessageOf<"LINK_HELLO">,
  ): Promise<Session> {
    const s = this.#byKey.get(toHex(hello.sessionId));
    if (!s || s.who.agentId !== hello.agentId) {
      throw new ProtocolError("session_unknown", "no live session with this id");
    }
    if (hello.version !== s.who.version) {
      throw new ProtocolError(
        "unsupported_version",
        `${hello.type === "POOL_HELLO" ? "pool" : "link"} version ${hello.version} ` +
          `is not the session's ${s.who.version}`,
      );
    }
    const proven = poolTranscript(s.who.agentId, s.who.id, hello.seq, s.who.nonce);
    if (!await s.who.verifier.verify(proven, hello.proof)) {
      this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
        role: "pool",
      });
      this.ctx.admission.authFailed("agents", wire.conn.remote.host);
      throw new ProtocolError("auth_failed", "authentication failed");
    }
    if (!s.acceptSeq(hello.seq)) {
      this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
        role: "pool_replay",
      });
      throw new ProtocolError("replayed", `pool sequence number ${hello.seq} was already used`);
    }
    return s;
  }

  async #pool(
    wire: Wire,
    hello: MessageOf<"POOL_HELLO">,
    log: Logger,
    admitted: () => void,
  ): Promise<void> {
    const s = await this.#prove(wire, hello);
    admitted();
    this.#join(s, wire, log);
  }

  /**
   * A link (SPEC.md §2.4): after its LINK_HELLO, every stream id the agent
   * grants on it is a pool entry of the session, proven by the link's hello.
   */
  async #link(
    wire: Wire,
    hello: MessageOf<"LINK_HELLO">,
    log: Logger,
    admitted: () => void,
  ): Promise<void> {
    const s = await this.#prove(wire, hello);
    this.#links.check(s);
    admitted();
    // A partial frame may be held as long as a control connection may be silent.
    this.#links.add(
      s,
      wire.conn,
      wire.rest(),
      this.ctx.config().heartbeatTimeoutMs,
      log,
      (limit, max) => this.ctx.admission.limitHit(limit, { agent: s.name, max }),
    );
  }

  /** A proven pool connection joins the session's pool. */
  #join(s: Session, wire: Wire, log: Logger): void {
    const pc = new PooledConn(wire);
    const placed = s.add(pc);
    if (placed === "full") {
      this.ctx.metrics.inc("burrow_limit_hits_total", "Limits that triggered", {
        limit: "pool_max",
      });
      log.debug("pool full, closing extra connection", { agent: s.name });
    }
    if (placed === "full" || placed === "closed") return pc.close();
    // An idle connection the agent closes (or breaks) leaves the pool.
    if (placed === "idle") void pc.first.then(() => s.remove(pc) && pc.close());
  }
}
