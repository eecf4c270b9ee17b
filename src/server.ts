/**
 * The routing server (SPEC.md §2, §7): accepts agents' control and pool
 * connections, SOCKS5 clients and client proxies, and routes each CONNECT to
 * an idle pool connection of an agent the client may use. It never dials a
 * target itself.
 *
 * @module
 */
import { fmt, targetText } from "./addr.ts";
import { poolTranscript, randomBytes, transcript, type Verifier } from "./auth.ts";
import type { Identity, ServerConfig } from "./config.ts";
import { ProtocolError, SocksError } from "./errors.ts";
import type { HealthSource } from "./http.ts";
import type { Logger } from "./log.ts";
import {
  ErrorCode,
  type Message,
  type MessageOf,
  type Rule,
  Status,
  type Target,
  VERSION_MAX,
  VERSION_MIN,
} from "./messages.ts";
import { Metrics } from "./metrics.ts";
import { type Addr, type Conn, type Listener, type Net, NetError, type TlsServerOptions } from "./net.ts";
import { allowed, rulesFor } from "./policy.ts";
import { EofError, Reader } from "./reader.ts";
import { relay } from "./relay.ts";
import { parseGreeting, parseRequest, parseUserpassRequest } from "./socks5_decode.ts";
import { methodSelection, reply, userpassReply } from "./socks5_encode.ts";
import { deadline, TimeoutError } from "./time.ts";
import { PeerError, Wire } from "./wire.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const NO_ADDR: Target = { type: "ipv4", host: "0.0.0.0", port: 0 };
const SEQ_WINDOW = 4096;

/** A verified pool connection waiting for its one stream. */
interface PoolConn {
  wire: Wire;
  /** The pending read: OPEN_RESULT once OPEN is sent, EOF/error while idle. */
  first: Promise<Message | null>;
  since: number;
}

interface Waiter {
  resolve(pc: PoolConn | null): void;
}

/** One authenticated agent control connection and its pool. */
class Session {
  readonly id = randomBytes(16);
  readonly key = hex(this.id);
  rules: Rule[] = [];
  announced = false;
  closed = false;
  idle: PoolConn[] = [];
  waiters: Waiter[] = [];
  /** Pool connections requested and not yet arrived. */
  outstanding = 0;
  requests = new Map<number, { count: number; at: number }>();
  nextRequest = 1;
  seqMax = 0;
  seqUsed = new Set<number>();
  lastRx = Date.now();
  /**
   * Peak number of CONNECTs opening at once (taking a pool connection until
   * OPEN_RESULT) per heartbeat tick, newest last: the demand the idle pool
   * must absorb without waiting. Open streams do not count.
   */
  demand: number[] = [0];
  opening = 0;
  replenishPending = false;
  streams = 0;
  timer: ReturnType<typeof setInterval> | undefined;
  constructor(
    readonly name: string,
    readonly agentId: number,
    readonly version: number,
    readonly nonce: Uint8Array,
    readonly verifier: Verifier,
    readonly wire: Wire,
    readonly log: Logger,
  ) {}
}

export interface OpenRequest {
  client: string;
  clientId: number;
  /** Agent named by the client, or "" for the client's only granted agent. */
  agent: string;
  target: Target;
  log: Logger;
}

export type OpenResult =
  | { status: 0; conn: Conn; rest: Uint8Array; bound: Target; streamId: number; agent: string }
  | { status: number; reason: string };

export class Server implements HealthSource {
  readonly metrics = new Metrics();
  #config: ServerConfig;
  readonly #listeners: Listener[] = [];
  readonly #conns = new Set<Conn>();
  readonly #sessions = new Map<string, Session>(); // by agent name
  readonly #sessionsById = new Map<string, Session>();
  readonly #agentIds = new Map<string, number>();
  readonly #clientIds = new Map<string, number>();
  #nextStream = 1;
  #stopping = false;
  #activeStreams = 0;
  #pendingHandshakes = 0;
  readonly #clientStreams = new Map<string, number>();
  readonly #agentStreams = new Map<string, number>();
  /** Failed authentications per source address: count in the current minute, blocked until. */
  readonly #authFailures = new Map<string, { count: number; since: number; blockedUntil: number }>();
  /** The bound addresses, once started (ports chosen when configured as 0). */
  addrs: { agents?: Addr; socks?: Addr; clients?: Addr } = {};

  /**
   * `tls` is the certificate for the agent and client ports (the SOCKS5 port
   * stays plain SOCKS5); without it those ports are plain TCP.
   */
  constructor(readonly net: Net, config: ServerConfig, readonly log: Logger, readonly tls?: TlsServerOptions) {
    this.#config = config;
    this.metrics.gauge("burrow_agents_connected", "Agents with a live session", () => [[{}, this.#sessions.size]]);
    this.metrics.gauge("burrow_streams_active", "Streams being relayed", () => [[{}, this.#activeStreams]]);
    this.metrics.gauge("burrow_pool_idle", "Idle pool connections per agent", () =>
      [...this.#sessions.values()].map((s) => [{ agent: s.name }, s.idle.length]));
  }

  get config(): ServerConfig {
    return this.#config;
  }

  health() {
    return {
      status: this.#stopping ? "stopping" as const : "ok" as const,
      agents: this.#sessions.size,
      streams: this.#activeStreams,
    };
  }

  /** Listen on the configured ports. */
  async start(): Promise<void> {
    const { agents, socks, clients } = this.#config.listen;
    const tls = this.tls ? { tls: this.tls } : {};
    for (const [port, addr] of [["agents", agents], ["clients", clients]] as const) {
      if (!this.tls && addr && !isLoopback(addr.host)) {
        this.log.warn("plain TCP on a non-loopback address: credentials are safe, but traffic is not", { port, listen: fmt(addr) });
      }
    }
    const a = await this.net.listen({ ...agents, ...tls });
    this.#listeners.push(a);
    this.addrs.agents = a.addr;
    this.#acceptLoop(a, (c) => this.#agentConn(c));
    if (socks) {
      const s = await this.net.listen(socks);
      this.#listeners.push(s);
      this.addrs.socks = s.addr;
      this.#acceptLoop(s, (c) => this.#socksConn(c));
    }
    if (clients) {
      const l = await this.net.listen({ ...clients, ...tls });
      this.#listeners.push(l);
      this.addrs.clients = l.addr;
      this.#acceptLoop(l, (c) => this.#clientConn(c));
    }
    this.log.info("server listening", {
      agents: fmt(this.addrs.agents),
      socks: this.addrs.socks ? fmt(this.addrs.socks) : "off",
      clients: this.addrs.clients ? fmt(this.addrs.clients) : "off",
      runtime: this.net.runtime,
      tls: this.tls ? "on" : "off",
    });
  }

  /** Apply a new config. Live streams continue; sessions of removed or re-keyed agents end. */
  reload(config: ServerConfig): void {
    const old = this.#config;
    this.#config = config;
    for (const s of [...this.#sessions.values()]) {
      const was = old.agents.get(s.name);
      const now = config.agents.get(s.name);
      if (!now || now.credential !== was?.credential) {
        this.#endSession(s, "auth_failed", "agent removed or credential changed by config reload");
      }
    }
    this.log.info("config reloaded", { agents: config.agents.size, clients: config.clients.size, grants: config.grants.length });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const l of this.#listeners) l.close();
    for (const s of [...this.#sessions.values()]) this.#endSession(s, "shutdown", "server shutting down");
    for (const c of this.#conns) c.close();
    await Promise.all([...this.#conns].map((c) => c.closed));
  }

  #acceptLoop(l: Listener, handle: (c: Conn) => Promise<void>): void {
    (async () => {
      for (;;) {
        let c: Conn | null;
        try {
          c = await l.accept();
        } catch (e) {
          this.log.error("accept failed", { error: String(e) });
          continue;
        }
        if (!c) return;
        const conn = c;
        this.#conns.add(conn);
        conn.closed.then(() => this.#conns.delete(conn));
        handle(conn).catch((e) => {
          this.log.error("connection handler failed", { error: String(e), remote: fmt(conn.remote) });
          conn.close();
        });
      }
    })();
  }

  #limitHit(limit: string, fields: Record<string, string | number | undefined>): void {
    this.metrics.inc("burrow_limit_hits_total", "Limits that triggered", { limit });
    this.log.warn("limit hit", { limit, ...fields });
  }

  /**
   * Start a handshake: counts it against the pending-handshakes limit and
   * closes `conn` if it has not finished within the handshake timeout.
   * Returns the function that ends the handshake phase (idempotent), or null
   * when the connection was refused.
   */
  #handshake(conn: Conn, port: string): (() => void) | null {
    const remote = conn.remote.host;
    const f = this.#authFailures.get(remote);
    if (f && f.blockedUntil > Date.now()) {
      this.#limitHit("auth_failures", { port, remote: fmt(conn.remote) });
      conn.close();
      return null;
    }
    if (this.#pendingHandshakes >= this.#config.limits.pendingHandshakes) {
      this.#limitHit("pending_handshakes", { port, remote: fmt(conn.remote), max: this.#config.limits.pendingHandshakes });
      conn.close();
      return null;
    }
    this.#pendingHandshakes++;
    let done = false;
    const t = setTimeout(() => {
      this.#limitHit("handshake_timeout", { port, remote: fmt(conn.remote), timeout_ms: this.#config.handshakeTimeoutMs });
      conn.close();
    }, this.#config.handshakeTimeoutMs);
    const end = () => {
      if (done) return;
      done = true;
      this.#pendingHandshakes--;
      clearTimeout(t);
    };
    conn.closed.then(end);
    return end;
  }

  /** Count a failed authentication from `host`; block it past the limit. */
  #authFailed(host: string): void {
    const now = Date.now();
    let f = this.#authFailures.get(host);
    if (!f || now - f.since > 60_000) {
      f = { count: 0, since: now, blockedUntil: 0 };
      this.#authFailures.set(host, f);
    }
    f.count++;
    if (f.count >= this.#config.limits.authFailuresPerMinute && f.blockedUntil < now) {
      f.blockedUntil = now + this.#config.limits.authBlockMs;
      this.#limitHit("auth_failures", { remote: host, failures: f.count, blocked_ms: this.#config.limits.authBlockMs });
    }
    if (this.#authFailures.size > 10_000) {
      for (const [h, x] of this.#authFailures) if (now - x.since > 60_000 && x.blockedUntil < now) this.#authFailures.delete(h);
    }
  }

  // ---------------------------------------------------------------- agents

  async #agentConn(conn: Conn): Promise<void> {
    const wire = new Wire(conn);
    const cancel = this.#handshake(conn, "agents");
    if (!cancel) return;
    const log = this.log.with({ remote: fmt(conn.remote) });
    try {
      const first = await wire.recv();
      if (first === null) return conn.close();
      if (first.type === "AGENT_HELLO") await this.#control(wire, first, log, cancel);
      else if (first.type === "POOL_HELLO") await this.#pool(wire, first, log, cancel);
      else throw new ProtocolError("unexpected_message", `Expected AGENT_HELLO or POOL_HELLO, got ${first.type}`);
    } catch (e) {
      cancel();
      await this.#connError(wire, e, log, "agents");
    }
  }

  async #connError(wire: Wire, e: unknown, log: Logger, port: string): Promise<void> {
    if (e instanceof ProtocolError) {
      this.metrics.inc("burrow_protocol_errors_total", "Connections closed for a protocol error", { port, code: e.code });
      log.warn("protocol error, closing", { port, code: e.code, error: e.message });
      await wire.fail(e.code, e.message);
    } else if (e instanceof PeerError) {
      log.warn("peer sent error", { port, code: e.code, error: e.peerMessage });
      wire.conn.close();
    } else if (e instanceof NetError || e instanceof TimeoutError) {
      log.debug("connection ended", { port, error: e.message });
      wire.conn.close();
    } else {
      throw e;
    }
  }

  #negotiate(hello: MessageOf<"AGENT_HELLO" | "CLIENT_HELLO">, who: string): number {
    const v = Math.min(VERSION_MAX, hello.maxVersion);
    if (hello.minVersion > hello.maxVersion || v < Math.max(VERSION_MIN, hello.minVersion)) {
      throw new ProtocolError(
        "unsupported_version",
        `Cannot negotiate version: server speaks ${VERSION_MIN}..${VERSION_MAX}, ${who} offered ${hello.minVersion}..${hello.maxVersion}`,
      );
    }
    return v;
  }

  /** CHALLENGE + AUTH; returns the verifier that accepted, or throws auth_failed. */
  async #authenticate(
    wire: Wire,
    hello: MessageOf<"AGENT_HELLO" | "CLIENT_HELLO">,
    role: "agent" | "client",
    ids: Map<string, Identity>,
    log: Logger,
  ): Promise<{ version: number; nonce: Uint8Array; verifier: Verifier }> {
    const version = this.#negotiate(hello, role);
    const nonce = randomBytes(32);
    await wire.send({ type: "CHALLENGE", version, nonce });
    const auth = await wire.expect("AUTH");
    const identity = ids.get(hello.name);
    const verifier = identity?.verifiers.get(hello.authMethod);
    const ok = verifier !== undefined &&
      await verifier.verify(transcript(role, version, nonce, hello.name), auth.proof);
    if (!ok || !verifier) {
      this.metrics.inc("burrow_auth_failures_total", "Failed authentications", { role });
      this.#authFailed(wire.conn.remote.host);
      log.warn("authentication failed", {
        role,
        name: hello.name,
        reason: !identity ? "unknown name" : !verifier ? "auth method not configured" : "bad proof",
      });
      throw new ProtocolError("auth_failed", "authentication failed");
    }
    return { version, nonce, verifier };
  }

  async #control(wire: Wire, hello: MessageOf<"AGENT_HELLO">, log0: Logger, cancel: () => void): Promise<void> {
    const { version, nonce, verifier } = await this.#authenticate(wire, hello, "agent", this.#config.agents, log0);
    cancel();
    const name = hello.name;
    let agentId = this.#agentIds.get(name);
    if (agentId === undefined) {
      agentId = this.#agentIds.size + 1;
      this.#agentIds.set(name, agentId);
    }
    const log = log0.with({ agent: name, agent_id: agentId });
    const s = new Session(name, agentId, version, nonce, verifier, wire, log);
    const old = this.#sessions.get(name);
    if (old) this.#endSession(old, "replaced", "a newer session for this agent took over");
    this.#sessions.set(name, s);
    this.#sessionsById.set(s.key, s);
    const c = this.#config;
    await wire.send({
      type: "WELCOME",
      agentId,
      sessionId: s.id,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      heartbeatTimeoutMs: c.heartbeatTimeoutMs,
      poolMin: c.poolMin,
      poolMax: c.poolMax,
    });
    log.info("agent connected", { session: s.key.slice(0, 8), software: hello.software, version });
    this.metrics.inc("burrow_agent_sessions_total", "Agent sessions established");
    s.timer = setInterval(() => this.#tick(s), c.heartbeatIntervalMs);
    this.#replenish(s);
    try {
      for (;;) {
        const msg = await wire.recv();
        if (msg === null) break;
        s.lastRx = Date.now();
        if (s.closed) continue;
        switch (msg.type) {
          case "ANNOUNCE":
            s.rules = msg.rules;
            s.announced = true;
            log.info("agent announced targets", { rules: msg.rules.length });
            break;
          case "POOL_CONFIRM": {
            const r = s.requests.get(msg.requestId);
            if (r) {
              s.requests.delete(msg.requestId);
              s.outstanding = Math.max(0, s.outstanding - Math.max(0, r.count - msg.count));
              if (msg.count < r.count) {
                log.warn("agent opened fewer pool connections than asked", { asked: r.count, opened: msg.count });
              }
            }
            this.#replenish(s);
            break;
          }
          case "PING":
            await wire.send({ type: "PONG", data: msg.data });
            break;
          case "PONG":
            break;
          case "GOAWAY":
            log.info("agent going away", { code: msg.code, reason: msg.message });
            this.#endSession(s, null, "");
            break;
          case "ERROR":
            throw new PeerError(msg.code, msg.message);
          default:
            throw new ProtocolError("unexpected_message", `${msg.type} is not allowed on a control connection`);
        }
      }
    } catch (e) {
      if (!s.closed) await this.#connError(wire, e, log, "agents");
    } finally {
      this.#endSession(s, null, "control connection closed");
    }
  }

  /** End a session: GOAWAY (if code given), close control and idle pool. Open streams go on. */
  #endSession(s: Session, code: keyof typeof ErrorCode | null, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    clearInterval(s.timer);
    if (this.#sessions.get(s.name) === s) this.#sessions.delete(s.name);
    this.#sessionsById.delete(s.key);
    for (const pc of s.idle) pc.wire.conn.close();
    s.idle = [];
    for (const w of s.waiters) w.resolve(null);
    s.waiters = [];
    if (code) {
      s.wire.send({ type: "GOAWAY", code: ErrorCode[code], message: reason }).catch(() => {}).finally(() => s.wire.conn.close());
    } else {
      s.wire.conn.close();
    }
    s.log.info("agent session ended", { reason: code ?? reason });
  }

  #tick(s: Session): void {
    const now = Date.now();
    const c = this.#config;
    if (now - s.lastRx > c.heartbeatTimeoutMs) {
      this.metrics.inc("burrow_heartbeat_timeouts_total", "Agent sessions dropped for silence");
      s.log.warn("agent heartbeat timeout", { silent_ms: now - s.lastRx });
      s.wire.fail("heartbeat_timeout", `no frame for ${now - s.lastRx} ms`);
      this.#endSession(s, null, "heartbeat timeout");
      return;
    }
    s.wire.send({ type: "PING", data: randomBytes(8) }).catch(() => s.wire.conn.close());
    // Pool requests the agent never confirmed stop counting after the open timeout.
    for (const [id, r] of s.requests) {
      if (now - r.at > c.openTimeoutMs) {
        s.requests.delete(id);
        s.outstanding = Math.max(0, s.outstanding - r.count);
      }
    }
    // Demand history over the idle time; the pool target follows its peak.
    s.demand.push(s.opening);
    const keep = Math.max(1, Math.ceil(c.poolIdleMs / c.heartbeatIntervalMs));
    while (s.demand.length > keep) s.demand.shift();
    const target = this.#target(s);
    while (s.idle.length > target) {
      const oldest = s.idle[0];
      if (!oldest || now - oldest.since < c.poolIdleMs) break;
      s.idle.shift();
      oldest.wire.conn.close();
    }
    this.#replenish(s);
  }

  /** Idle pool connections this session should have: recent peak demand within [min, max]. */
  #target(s: Session): number {
    const { poolMin, poolMax } = this.#config;
    return Math.min(poolMax, Math.max(poolMin, ...s.demand));
  }

  /**
   * Refill after a take, off the stream's critical path: one POOL_REQUEST per
   * burst of takes, sent after the OPENs of this turn of the event loop, so
   * the agent dials its target before it dials new pool connections.
   */
  #replenishSoon(s: Session): void {
    if (s.replenishPending) return;
    s.replenishPending = true;
    setTimeout(() => {
      s.replenishPending = false;
      this.#replenish(s);
    }, 0);
  }

  #replenish(s: Session): void {
    if (s.closed) return;
    const want = this.#target(s) + s.waiters.length;
    const have = s.idle.length + s.outstanding;
    if (want <= have) return;
    const count = Math.min(65535, want - have);
    const requestId = s.nextRequest++;
    s.requests.set(requestId, { count, at: Date.now() });
    s.outstanding += count;
    s.wire.send({ type: "POOL_REQUEST", requestId, count }).catch(() => s.wire.conn.close());
  }

  async #pool(wire: Wire, hello: MessageOf<"POOL_HELLO">, log: Logger, cancel: () => void): Promise<void> {
    const s = this.#sessionsById.get(hex(hello.sessionId));
    if (!s || s.agentId !== hello.agentId) {
      throw new ProtocolError("session_unknown", "no live session with this id");
    }
    if (hello.version !== s.version) {
      throw new ProtocolError("unsupported_version", `pool version ${hello.version} is not the session's ${s.version}`);
    }
    const ok = await s.verifier.verify(poolTranscript(s.agentId, s.id, hello.seq, s.nonce), hello.proof);
    if (!ok) {
      this.metrics.inc("burrow_auth_failures_total", "Failed authentications", { role: "pool" });
      this.#authFailed(wire.conn.remote.host);
      throw new ProtocolError("auth_failed", "authentication failed");
    }
    if (s.seqUsed.has(hello.seq) || hello.seq <= s.seqMax - SEQ_WINDOW) {
      this.metrics.inc("burrow_auth_failures_total", "Failed authentications", { role: "pool_replay" });
      throw new ProtocolError("replayed", `pool sequence number ${hello.seq} was already used`);
    }
    s.seqUsed.add(hello.seq);
    if (hello.seq > s.seqMax) {
      s.seqMax = hello.seq;
      if (s.seqUsed.size > SEQ_WINDOW) for (const q of s.seqUsed) if (q <= s.seqMax - SEQ_WINDOW) s.seqUsed.delete(q);
    }
    cancel();
    s.outstanding = Math.max(0, s.outstanding - 1);
    if (s.closed) return wire.conn.close();
    if (s.idle.length >= this.#config.poolMax + s.waiters.length) {
      this.metrics.inc("burrow_limit_hits_total", "Limits that triggered", { limit: "pool_max" });
      log.debug("pool full, closing extra connection", { agent: s.name });
      return wire.conn.close();
    }
    const pc: PoolConn = {
      wire,
      first: wire.recv().catch(() => null),
      since: Date.now(),
    };
    const waiter = s.waiters.shift();
    if (waiter) return waiter.resolve(pc);
    s.idle.push(pc);
    // An idle connection the agent closes (or breaks) leaves the pool.
    pc.first.then(() => {
      const i = s.idle.indexOf(pc);
      if (i >= 0) {
        s.idle.splice(i, 1);
        wire.conn.close();
        this.#replenish(s);
      }
    });
  }

  /** An idle pool connection of `s`, waiting up to the pool wait. */
  #take(s: Session): Promise<PoolConn | null> {
    s.opening++;
    const last = s.demand.length - 1;
    if (s.opening > s.demand[last]!) s.demand[last] = s.opening;
    const pc = s.idle.shift();
    if (pc) {
      this.#replenishSoon(s);
      return Promise.resolve(pc);
    }
    return new Promise((resolve) => {
      const w: Waiter = {
        resolve: (pc) => {
          clearTimeout(t);
          resolve(pc);
        },
      };
      const t = setTimeout(() => {
        const i = s.waiters.indexOf(w);
        if (i >= 0) s.waiters.splice(i, 1);
        resolve(null);
      }, this.#config.poolWaitMs);
      s.waiters.push(w);
      this.#replenish(s);
    });
  }

  // ---------------------------------------------------------------- routing

  /** Decide and open a stream (SPEC.md §7.2). Nothing is dialed unless every check passes. */
  async open(req: OpenRequest): Promise<OpenResult> {
    const c = this.#config;
    const grants = c.grants.filter((g) => g.client === req.client);
    let agent = req.agent;
    if (agent === "") {
      const names = [...new Set(grants.flatMap((g) => g.agents))];
      if (names.length !== 1) {
        return {
          status: Status.not_allowed,
          reason: names.length === 0
            ? "client has no grant"
            : `client is granted ${names.length} agents; name one as ${req.client}@agent`,
        };
      }
      agent = names[0]!;
    }
    const rules = grants.filter((g) => g.agents.includes(agent)).flatMap((g) => g.rules);
    if (!grants.some((g) => g.agents.includes(agent))) {
      return { status: Status.not_allowed, reason: `client is not granted agent ${agent}` };
    }
    if (!allowed(rules, req.client, req.target, "never")) {
      return { status: Status.not_allowed, reason: "target outside the grant" };
    }
    const lim = c.limits;
    if ((this.#clientStreams.get(req.client) ?? 0) >= lim.streamsPerClient) {
      this.#limitHit("streams_per_client", { client: req.client, max: lim.streamsPerClient });
      return { status: Status.general_failure, reason: `client has ${lim.streamsPerClient} streams open (limits.streams_per_client)` };
    }
    if ((this.#agentStreams.get(agent) ?? 0) >= lim.streamsPerAgent) {
      this.#limitHit("streams_per_agent", { agent, max: lim.streamsPerAgent });
      return { status: Status.general_failure, reason: `agent has ${lim.streamsPerAgent} streams open (limits.streams_per_agent)` };
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const s = this.#sessions.get(agent);
      if (!s) return { status: Status.host_unreachable, reason: `agent ${agent} is offline` };
      if (!allowed(rulesFor(s.rules, req.client), req.client, req.target, "defer")) {
        return { status: Status.not_allowed, reason: "target outside what the agent announced" };
      }
      const pc = await this.#take(s);
      try {
        const r = await this.#openOn(s, pc, req, agent);
        if (r) return r;
      } finally {
        s.opening--;
      }
    }
    return { status: Status.general_failure, reason: "pool connections kept failing" };
  }

  /** Send OPEN on `pc` and read its result; null means "that pool connection was dead, try another". */
  async #openOn(s: Session, pc: PoolConn | null, req: OpenRequest, agent: string): Promise<OpenResult | null> {
    const c = this.#config;
    if (!pc) {
      return {
        status: Status.host_unreachable,
        reason: s.closed ? `agent ${agent} went offline` : `no pool connection within ${c.poolWaitMs} ms`,
      };
    }
    const streamId = this.#nextStream;
    this.#nextStream = this.#nextStream >= 0xffffffff ? 1 : this.#nextStream + 1;
    let res: Message | null;
    try {
      await pc.wire.send({ type: "OPEN", streamId, clientId: req.clientId, client: req.client, target: req.target });
      res = await deadline(pc.first, c.openTimeoutMs, "OPEN_RESULT");
    } catch (e) {
      pc.wire.conn.close();
      if (e instanceof TimeoutError) return { status: Status.ttl_expired, reason: "agent did not answer OPEN in time" };
      return null;
    }
    if (res === null) {
      pc.wire.conn.close(); // closed under us: try another pool connection
      return null;
    }
    if (res.type !== "OPEN_RESULT" || res.streamId !== streamId) {
      s.log.warn("bad answer to OPEN", { got: res.type });
      pc.wire.fail("unexpected_message", `expected OPEN_RESULT for stream ${streamId}`);
      return { status: Status.general_failure, reason: "agent answered OPEN wrongly" };
    }
    if (res.status !== Status.succeeded) {
      pc.wire.conn.close();
      return { status: res.status, reason: "agent could not open the target" };
    }
    return { status: 0, conn: pc.wire.conn, rest: pc.wire.rest(), bound: res.bound, streamId, agent };
  }

  /** Relay an opened stream; log and count it. */
  async #stream(
    client: string,
    clientConn: Conn,
    clientRest: Uint8Array,
    r: Extract<OpenResult, { status: 0 }>,
    log: Logger,
  ): Promise<void> {
    const bump = (m: Map<string, number>, k: string, d: number) => {
      const n = (m.get(k) ?? 0) + d;
      if (n === 0) m.delete(k);
      else m.set(k, n);
    };
    bump(this.#clientStreams, client, 1);
    bump(this.#agentStreams, r.agent, 1);
    this.#activeStreams++;
    this.metrics.inc("burrow_streams_total", "Streams opened", { agent: r.agent });
    const t0 = Date.now();
    try {
      const { aToB, bToA } = await relay(clientConn, r.conn, clientRest, r.rest);
      this.metrics.inc("burrow_bytes_total", "Bytes relayed", { direction: "up" }, aToB);
      this.metrics.inc("burrow_bytes_total", "Bytes relayed", { direction: "down" }, bToA);
      log.debug("stream closed", { stream: r.streamId, up: aToB, down: bToA, ms: Date.now() - t0 });
    } finally {
      this.#activeStreams--;
      bump(this.#clientStreams, client, -1);
      bump(this.#agentStreams, r.agent, -1);
    }
  }

  #clientId(name: string): number {
    let id = this.#clientIds.get(name);
    if (id === undefined) {
      id = this.#clientIds.size + 1;
      this.#clientIds.set(name, id);
    }
    return id;
  }

  #refused(log: Logger, port: string, client: string, target: Target | null, status: number, reason: string): void {
    this.metrics.inc("burrow_connects_refused_total", "CONNECTs refused", { port, status: String(status) });
    log.warn("connect refused", {
      port,
      client,
      target: target ? targetText(target) : undefined,
      status,
      reason,
    });
  }

  // ---------------------------------------------------------------- SOCKS5

  async #socksConn(conn: Conn): Promise<void> {
    const cancel = this.#handshake(conn, "socks");
    if (!cancel) return;
    const rd = new Reader(conn, 1024);
    const log = this.log.with({ remote: fmt(conn.remote) });
    try {
      const greeting = await rd.parse(parseGreeting, "SOCKS5 greeting");
      if (!greeting.methods.includes(2)) {
        log.warn("socks client offers no acceptable method", { methods: greeting.methods.join(",") });
        await conn.write(methodSelection(0xff));
        return conn.close();
      }
      await conn.write(methodSelection(2));
      const up = await rd.parse(parseUserpassRequest, "SOCKS5 user/password");
      const at = up.username.indexOf("@");
      const client = at >= 0 ? up.username.slice(0, at) : up.username;
      const agent = at >= 0 ? up.username.slice(at + 1) : "";
      const id = this.#config.clients.get(client);
      if (!id?.checkPassword || !await id.checkPassword(up.password)) {
        this.metrics.inc("burrow_auth_failures_total", "Failed authentications", { role: "socks" });
        this.#authFailed(conn.remote.host);
        log.warn("socks authentication failed", { client, reason: id ? "bad token" : "unknown client" });
        await conn.write(userpassReply(1));
        return conn.close();
      }
      await conn.write(userpassReply(0));
      const req = await rd.parse(parseRequest, "SOCKS5 request");
      cancel();
      const clientId = this.#clientId(client);
      const clog = log.with({ client, client_id: clientId });
      if (req.command !== 1) {
        this.#refused(clog, "socks", client, req.target, Status.command_not_supported, `command ${req.command} not supported`);
        await conn.write(reply(Status.command_not_supported, NO_ADDR));
        return conn.close();
      }
      const r = await this.open({ client, clientId, agent, target: req.target, log: clog });
      if (r.status !== 0 || !("conn" in r)) {
        this.#refused(clog, "socks", client, req.target, r.status, "reason" in r ? r.reason : "");
        await conn.write(reply(r.status, NO_ADDR));
        return conn.close();
      }
      clog.info("stream open", { stream: r.streamId, agent: r.agent, target: targetText(req.target) });
      try {
        await conn.write(reply(0, r.bound));
      } catch (e) {
        r.conn.close();
        throw e;
      }
      // Returned, not awaited: this handshake's frame (reader, parsed
      // messages) is released for the stream's lifetime. #stream never throws.
      return this.#stream(client, conn, rd.rest(), r, clog);
    } catch (e) {
      cancel();
      conn.close();
      if (e instanceof SocksError || e instanceof EofError) {
        this.metrics.inc("burrow_protocol_errors_total", "Connections closed for a protocol error", {
          port: "socks",
          code: e instanceof SocksError ? e.code : "eof",
        });
        log.warn("bad socks handshake, closing", { error: e.message });
      } else if (e instanceof NetError) {
        log.debug("socks connection ended", { error: e.message });
      } else throw e;
    }
  }

  // ---------------------------------------------------------------- client proxies

  async #clientConn(conn: Conn): Promise<void> {
    const wire = new Wire(conn);
    const cancel = this.#handshake(conn, "clients");
    if (!cancel) return;
    const log = this.log.with({ remote: fmt(conn.remote) });
    try {
      const hello = await wire.expect("CLIENT_HELLO");
      await this.#authenticate(wire, hello, "client", this.#config.clients, log);
      const client = hello.name;
      const clientId = this.#clientId(client);
      await wire.send({ type: "CLIENT_READY", clientId });
      const req = await wire.expect("CONNECT");
      cancel();
      const clog = log.with({ client, client_id: clientId });
      const r = await this.open({ client, clientId, agent: req.agent, target: req.target, log: clog });
      if (r.status !== 0 || !("conn" in r)) {
        this.#refused(clog, "clients", client, req.target, r.status, "reason" in r ? r.reason : "");
        await wire.send({ type: "CONNECT_RESULT", status: r.status, bound: NO_ADDR });
        return conn.close();
      }
      clog.info("stream open", { stream: r.streamId, agent: r.agent, target: targetText(req.target) });
      try {
        await wire.send({ type: "CONNECT_RESULT", status: 0, bound: r.bound });
      } catch (e) {
        r.conn.close();
        throw e;
      }
      return this.#stream(client, conn, wire.rest(), r, clog); // see #socksConn
    } catch (e) {
      cancel();
      await this.#connError(wire, e, log, "clients");
    }
  }
}

function isLoopback(host: string): boolean {
  return host === "::1" || host.startsWith("127.") || host === "localhost";
}
