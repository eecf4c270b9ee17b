/**
 * The routing server (SPEC.md §2, §7): listeners and lifecycle. It accepts
 * agents' control and pool connections ({@link AgentPort}), SOCKS5 clients
 * ({@link SocksFront}) and client proxies ({@link ClientFront}), and the
 * {@link Router} sends each CONNECT to an idle pool connection of an agent the
 * client may use. It never dials a target itself.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import type { ServerConfig } from "../config.ts";
import type { HealthSource } from "../http.ts";
import type { Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import type { Addr, Conn, Listener, Net, TlsServerOptions } from "../net.ts";
import { Admission } from "./admission.ts";
import { AgentPort } from "./agent_port.ts";
import { ClientFront } from "./client_front.ts";
import type { ServerContext } from "./context.ts";
import { Router } from "./router.ts";
import { SocksFront } from "./socks_front.ts";

export class Server implements HealthSource {
  readonly metrics = new Metrics();
  readonly admission: Admission;
  readonly agents: AgentPort;
  readonly router: Router;
  #config: ServerConfig;
  readonly #listeners: Listener[] = [];
  readonly #conns = new Set<Conn>();
  #stopping = false;
  /** The bound addresses, once started (ports chosen when configured as 0). */
  addrs: { agents?: Addr; socks?: Addr; clients?: Addr } = {};

  /**
   * `tls` is the certificate for the agent and client ports (the SOCKS5 port
   * stays plain SOCKS5); without it those ports are plain TCP.
   */
  constructor(
    readonly net: Net,
    config: ServerConfig,
    readonly log: Logger,
    readonly tls?: TlsServerOptions,
  ) {
    this.#config = config;
    this.admission = new Admission(() => this.#config, this.metrics, log);
    const ctx: ServerContext = {
      config: () => this.#config,
      metrics: this.metrics,
      log,
      admission: this.admission,
    };
    this.agents = new AgentPort(ctx);
    this.router = new Router(ctx, this.agents);
    const m = this.metrics;
    m.gauge(
      "burrow_agents_connected",
      "Agents with a live session",
      () => [[{}, this.agents.sessions.size]],
    );
    m.gauge("burrow_streams_active", "Streams being relayed", () => [[{}, this.router.active]]);
    m.gauge(
      "burrow_pool_idle",
      "Idle pool connections per agent",
      () => [...this.agents.sessions.values()].map((s) => [{ agent: s.name }, s.idle]),
    );
  }

  get config(): ServerConfig {
    return this.#config;
  }

  health() {
    return {
      status: this.#stopping ? "stopping" as const : "ok" as const,
      agents: this.agents.sessions.size,
      streams: this.router.active,
    };
  }

  /** Listen on the configured ports. */
  async start(): Promise<void> {
    const { agents, socks, clients } = this.#config.listen;
    const tls = this.tls ? { tls: this.tls } : {};
    for (const [port, addr] of [["agents", agents], ["clients", clients]] as const) {
      if (!this.tls && addr && !isLoopback(addr.host)) {
        this.log.warn(
          "plain TCP on a non-loopback address: credentials are safe, but traffic is not",
          {
            port,
            listen: fmt(addr),
          },
        );
      }
    }
    this.addrs.agents = await this.#listen({ ...agents, ...tls }, (c) => this.agents.handle(c));
    if (socks) {
      const front = new SocksFront(this.agents.ctx, this.router);
      this.addrs.socks = await this.#listen(socks, (c) => front.handle(c));
    }
    if (clients) {
      const front = new ClientFront(this.agents.ctx, this.router);
      this.addrs.clients = await this.#listen({ ...clients, ...tls }, (c) => front.handle(c));
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
    this.agents.reload(old, config);
    this.log.info("config reloaded", {
      agents: config.agents.size,
      clients: config.clients.size,
      grants: config.grants.length,
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const l of this.#listeners) l.close();
    this.agents.stop();
    for (const c of this.#conns) c.close();
    await Promise.all([...this.#conns].map((c) => c.closed));
  }

  async #listen(
    opts: Parameters<Net["listen"]>[0],
    handle: (c: Conn) => Promise<void>,
  ): Promise<Addr> {
    const l = await this.net.listen(opts);
    this.#listeners.push(l);
    void this.#acceptLoop(l, handle);
    return l.addr;
  }

  async #acceptLoop(l: Listener, handle: (c: Conn) => Promise<void>): Promise<void> {
    for (;;) {
      let conn: Conn | null;
      try {
        conn = await l.accept();
      } catch (e) {
        this.log.error("accept failed", { error: String(e) });
        continue;
      }
      if (!conn) return;
      const c = conn;
      this.#conns.add(c);
      c.closed.then(() => this.#conns.delete(c));
      handle(c).catch((e) => {
        this.log.error("connection handler failed", { error: String(e), remote: fmt(c.remote) });
        c.close();
      });
    }
  }
}

function isLoopback(host: string): boolean {
  return host === "::1" || host.startsWith("127.") || host === "localhost";
}
