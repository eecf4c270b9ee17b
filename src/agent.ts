/**
 * The agent (SPEC.md §2.1, §2.2): logs in to the server and keeps one
 * session (agent_session.ts), which provides pool connections when asked
 * through its carriers (agent_carrier.ts); its pool (agent_stream.ts) checks
 * each OPEN against its own allowlist, dials the target and relays.
 * Reconnects with backoff after any loss, with a new session.
 *
 * @module
 */
import { fmt } from "./addr.ts";
import { type Credential, randomBytes, toHex } from "./auth.ts";
import { NetError, PeerError } from "./errors.ts";
export { statusOf } from "./agent_dial.ts";
import { ControlSession } from "./agent_session.ts";
import { AgentPool } from "./agent_stream.ts";
import type { AgentUdp } from "./agent_udp.ts";
import type { Logger } from "./log.ts";
import { ErrorCode, type Rule, type Target } from "./messages.ts";
import { type Addr, type Conn, type Net, type TlsClientOptions } from "./net.ts";
import { deadline, sleep } from "./time.ts";
import { dialServer, login, Wire } from "./wire.ts";
import { NO_ADDR } from "./writer.ts";

export interface AgentOptions {
  server: Addr;
  /** Verify and speak TLS to the server; absent = plain TCP. */
  tls?: TlsClientOptions;
  name: string;
  credential: Credential;
  /** What this agent opens (SPEC.md §5.7), announced and enforced. */
  rules: Rule[];
  /** Dial timeout for the server and for targets. Default 10 s. */
  dialTimeoutMs?: number;
  /** A UDP association's socket closes after this long without a datagram (default 60 s). */
  udpIdleMs?: number;
  /** Reconnect backoff: first delay and cap. Defaults 500 ms and 30 s. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  software?: string;
  /** The instance id (16 bytes); default: random, made here. One process shares one (SPEC.md §2.1). */
  instance?: Uint8Array;
  /**
   * How to reach the server, when not as targets are reached: through an
   * outbound proxy (proxy.ts `proxiedNet`) or over WebSocket (transport.ts
   * `wsNet`). Targets are always dialed with the agent's own `net`.
   */
  transport?: Net;
  /**
   * Carry pool connections as streams of one link connection (SPEC.md
   * §2.4): a new pool connection then costs a frame, not a TCP and TLS
   * handshake. Default true; false dials one connection per pool connection.
   */
  link?: boolean;
  /** The last stream id a link may use before the next one takes over; for tests (default 2³²−1). */
  linkLastId?: number;
  /** Log an `agent stats` line (pool, link queue) this often; absent: never (tests read it). */
  statsMs?: number;
  /** Told when a session is established (true) and when an attempt or session fails (false). */
  onState?: (connected: boolean) => void;
  /**
   * The nameserver to report in INSTANCE (SPEC.md §5.19), asked at each login (the
   * CLI reads /etc/resolv.conf); absent or null: none.
   */
  nameserver?: () => Promise<Target | null>;
}

export interface SessionInfo {
  agentId: number;
  sessionId: Uint8Array;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

export class Agent {
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  /** The control connection while it logs in, then the session's. */
  #control: Conn | undefined;
  /** The live session; a reconnect drops it whole and makes a new one. */
  #live: ControlSession | undefined;
  readonly #pool: AgentPool;
  #session: SessionInfo | undefined;
  #sessionWaiters: Array<(s: SessionInfo) => void> = [];
  /** Sessions established so far (for tests and logs). */
  sessions = 0;

  /**
   * This process's instance id (SPEC.md §2.1): sent in INSTANCE, so that
   * servers tell replicas (other instances) from a reconnect (this one).
   */
  readonly instance: Uint8Array;

  constructor(readonly net: Net, readonly opts: AgentOptions, readonly log: Logger) {
    this.instance = opts.instance ?? randomBytes(16);
    this.#pool = new AgentPool(net, opts.rules, opts.dialTimeoutMs ?? 10_000, log, opts.udpIdleMs);
  }

  get session(): SessionInfo | undefined {
    return this.#session;
  }

  /** UDP associations: their counts (SPEC.md §2.5). */
  get udp(): AgentUdp {
    return this.#pool.udp;
  }

  /** The stats line's UDP fields: associations open, datagrams and drops so far. */
  #udpStats(): Record<string, number> {
    const { open, totals } = this.udp;
    return {
      udp_associations: open,
      udp_datagrams_up: totals.datagramsUp,
      udp_datagrams_down: totals.datagramsDown,
      udp_dropped: totals.droppedTotal,
    };
  }

  /**
   * Idle or busy pool connections currently open, with the link's stream ids
   * granted that the server has not opened yet.
   */
  get poolSize(): number {
    return this.#pool.size + (this.#live?.spare ?? 0);
  }

  /** Resolves at the next established session (or the current one). */
  connected(): Promise<SessionInfo> {
    if (this.#session) return Promise.resolve(this.#session);
    return new Promise((r) => this.#sessionWaiters.push(r));
  }

  /** Run until stop(): connect, serve, reconnect with backoff. */
  start(): void {
    if (this.#running) return;
    this.#running = this.#loop();
    if (!this.opts.statsMs) return;
    const stats = setInterval(() => {
      const q = this.#live?.link?.queuedControl;
      this.log.info("agent stats", {
        pool: this.poolSize,
        unused: this.#pool.unused,
        ...(q ? { link_queued_control: q.now, link_queued_control_peak: q.peak } : {}),
        ...(this.udp.totals.datagramsUp > 0 ? this.#udpStats() : {}),
      });
    }, this.opts.statsMs);
    void this.#running.finally(() => clearInterval(stats));
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#control?.close();
    this.#live?.close();
    this.#pool.close();
    await this.#running;
  }

  async #loop(): Promise<void> {
    const base = this.opts.backoffBaseMs ?? 500;
    const max = this.opts.backoffMaxMs ?? 30_000;
    let attempt = 0;
    while (!this.#stop.signal.aborted) {
      const t0 = Date.now();
      let replaced = false;
      try {
        await this.#run();
      } catch (e) {
        if (this.#stop.signal.aborted) break;
        replaced = this.#failed(e);
        this.opts.onState?.(false);
      } finally {
        this.#session = undefined;
        this.#control = undefined;
      }
      if (this.#stop.signal.aborted) break;
      if (Date.now() - t0 > 60_000) attempt = 0;
      if (replaced) attempt = 30;
      const delay = Math.random() * Math.min(max, base * 2 ** attempt);
      attempt = Math.min(attempt + 1, 30);
      this.log.info("reconnecting", { in_ms: Math.round(delay) });
      await sleep(delay, this.#stop.signal);
    }
  }

  /** Log why a session failed; true if another agent with this name replaced it. */
  #failed(e: unknown): boolean {
    const fields = {
      server: fmt(this.opts.server),
      error: e instanceof Error ? e.message : String(e),
    };
    if (e instanceof PeerError && e.code === ErrorCode.auth_failed) {
      this.log.error("server refused our credentials", fields);
    } else if (e instanceof PeerError && e.code === ErrorCode.replaced) {
      // Another agent with our name took over: do not fight it at full speed.
      this.log.error("another agent with this name replaced this session; backing off", fields);
      return true;
    } else if (e instanceof NetError && e.code === "ETLS") {
      this.log.error("TLS with the server failed", fields);
    } else this.log.warn("session failed", fields);
    return false;
  }

  async #dialServer(): Promise<Conn> {
    const c = await dialServer(this.opts.transport ?? this.net, {
      ...this.opts.server,
      timeoutMs: this.opts.dialTimeoutMs ?? 10_000,
      ...(this.opts.tls ? { tls: this.opts.tls } : {}),
    });
    if (this.#stop.signal.aborted) {
      c.close();
      throw new NetError("ECLOSED", "agent stopping");
    }
    return c;
  }

  async #run(): Promise<void> {
    const { name, credential } = this.opts;
    const conn = await this.#dialServer();
    this.#control = conn;
    const wire = new Wire(conn);
    let live: ControlSession | undefined;
    try {
      const { welcome, version, nonce } = await deadline(
        (async () => {
          const software = this.opts.software ?? `burrow/0.1.0 ${this.net.runtime}`;
          const l = await login(wire, "agent", name, credential, software, !this.opts.tls);
          return { ...l, welcome: await wire.expect("WELCOME") };
        })(),
        this.opts.dialTimeoutMs ?? 10_000,
        "handshake",
        () => conn.close(),
      );
      const nameserver = (await this.opts.nameserver?.().catch(() => null)) ?? NO_ADDR;
      await wire.send({ type: "INSTANCE", instance: this.instance, nameserver });
      await wire.send({ type: "ANNOUNCE", rules: this.opts.rules });
      live = this.#live = new ControlSession(
        {
          pool: this.#pool,
          log: this.log,
          credential,
          link: this.opts.link !== false,
          linkLastId: this.opts.linkLastId,
          dialServer: () => this.#dialServer(),
        },
        wire,
        welcome,
        version,
        nonce,
      );
      this.#session = {
        agentId: welcome.agentId,
        sessionId: welcome.sessionId,
        heartbeatIntervalMs: welcome.heartbeatIntervalMs,
        heartbeatTimeoutMs: welcome.heartbeatTimeoutMs,
      };
      this.sessions++;
      this.log.info("connected", {
        server: fmt(this.opts.server),
        agent_id: welcome.agentId,
        instance: toHex(this.instance).slice(0, 8),
        protocol: version,
        rules: this.opts.rules.length,
      });
      for (const w of this.#sessionWaiters.splice(0)) w(this.#session);
      this.opts.onState?.(true);
      await live.serve();
    } finally {
      conn.close();
      live?.drop();
      this.#live = undefined;
    }
  }
}
