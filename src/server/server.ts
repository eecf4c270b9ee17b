/**
 * The routing server (SPEC.md §2, §7): listeners and lifecycle. It accepts
 * agents' control and pool connections ({@link AgentPort}), SOCKS5 clients
 * ({@link SocksFront}) and client proxies ({@link ClientFront}), and the
 * {@link Router} sends each CONNECT to an idle pool connection of an agent the
 * client may use. It never dials a target itself. What the admin API and the
 * dashboard show comes from {@link Server.snapshot} (snapshot.ts).
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { toHex } from "../auth.ts";
import { ListenError } from "../errors.ts";
import { IdMap } from "../idmap.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { HttpPeer, HttpSource } from "../http/mod.ts";
import type { Logger } from "../log.ts";
import { Status, VERSION_MAX, VERSION_MIN } from "../messages.ts";
import { Metrics } from "../metrics.ts";
import { VERSION } from "../version.ts";
import type { Addr, Conn, Listener, Net, TlsServerOptions } from "../net.ts";
import { Admission, type Port } from "./admission.ts";
import { AgentPort } from "./agent_port.ts";
import { ClientFront } from "./client_front.ts";
import { HttpsFront } from "./https_front.ts";
import type { ServerContext } from "./context.ts";
import { Router } from "./router.ts";
import {
  MAX_SERIES,
  type Reading,
  type Readings,
  Series,
  SERIES_INTERVAL_MS,
  type SeriesView,
} from "./series.ts";
import {
  type AgentView,
  agentViews,
  associationViews,
  type ClientView,
  clientViews,
  refusalViews,
  type ServerView,
  type Snapshot,
  type StreamView,
  streamViews,
} from "./snapshot.ts";
import { SocksFront } from "./socks_front.ts";
import { TokenStore, tokenView } from "./tokens.ts";
import type { Store } from "./store.ts";
import { FileStore } from "./store_file.ts";
import { auditLogger } from "./audit.ts";
import { followStore } from "./tokens_sync.ts";
import { UdpFront } from "./udp_front.ts";
import { serverGauges } from "./gauges.ts";
import { OidcLogin } from "./oidc.ts";
import { netFetch } from "../net_fetch.ts";
import { expectsHeader, proxied } from "./trusted.ts";
import { Fleet } from "./fleet.ts";

import type { ServerInfo } from "./context.ts";
export type { ServerInfo };

export class Server implements HttpSource {
  readonly metrics: Metrics = new Metrics();
  readonly admission: Admission;
  readonly agents: AgentPort;
  readonly router: Router;
  /** UDP associations (SPEC.md §2.5, §8.2). */
  readonly udp: UdpFront;
  readonly tokens: TokenStore;
  readonly oidc: OidcLogin;
  /** Shared state: tokens, keys, presence, audit (store.ts). */
  readonly store: Store;
  /** The log; with a store that keeps audit lines, they go there too (audit.ts). */
  readonly log: Logger;
  #config: ServerConfig;
  readonly #listeners: Listener[] = [];
  readonly #conns = new IdMap<Conn>();
  #state: "starting" | "ready" | "stopping" = "starting";
  readonly #startedAt = Date.now();
  readonly #runtimeVersion: string;
  /** The bound addresses, once started (ports chosen when configured as 0). */
  addrs: { agents?: Addr; socks?: Addr; clients?: Addr; https?: Addr } = {};
  /** What the HTTPS port serves besides WebSocket links (the Hono app): see {@link useHttpApp}. */
  #httpApp: ((req: Request, peer: HttpPeer) => Response | Promise<Response>) | undefined;
  /** The dashboard's graphs: counters sampled every 5 s for 15 minutes (series.ts). */
  readonly series: Series;
  #sampler: ReturnType<typeof setInterval> | undefined;
  /** Peer links and the fleet view (SPEC.md §2.6), with `peer:`; else null. */
  fleet: Fleet | null = null;

  /**
   * `tls` is the certificate for the agent and client ports (the SOCKS5 port
   * stays plain SOCKS5); without it those ports are plain TCP.
   */
  constructor(
    readonly net: Net,
    config: ServerConfig,
    log: Logger,
    readonly tls?: TlsServerOptions,
    readonly info: ServerInfo = {},
  ) {
    this.#config = config;
    this.#runtimeVersion = info.runtimeVersion ?? "unknown";
    this.store = info.store ?? new FileStore();
    this.log = log = auditLogger(log, this.store);
    this.admission = new Admission(() => this.#config, this.metrics, log);
    this.tokens = new TokenStore(this.store);
    this.tokens.closeOnRevoke = () => this.#config.tokens.revokeClosesStreams;
    followStore(this.tokens, this.store, log);
    const read = info.readTextFile;
    this.oidc = new OidcLogin(
      () => this.#config,
      this.tokens,
      async (o) => netFetch(net, o.ca && read ? [await read(o.ca)] : undefined),
      log,
      this.metrics,
      info.readSecretFile,
    );
    const ctx: ServerContext = {
      config: () => this.#config,
      metrics: this.metrics,
      log,
      admission: this.admission,
      tokens: this.tokens,
      store: this.store,
    };
    this.agents = new AgentPort(ctx);
    this.router = new Router(ctx, this.agents);
    this.udp = new UdpFront(ctx, this.router, net);
    this.series = new Series((left) =>
      this.admission.limitHit("series", { left, max: MAX_SERIES })
    );
    serverGauges(this.metrics, this, { runtime: net.runtime, version: this.#runtimeVersion });
  }

  get config(): ServerConfig {
    return this.#config;
  }

  /** `tokens:` of the config in force, and its clients (admin API). */
  tokenPolicy(): ServerConfig["tokens"] & { clients: ServerConfig["clients"] } {
    return { ...this.#config.tokens, clients: this.#config.clients };
  }

  health(): { status: "ok" | "stopping"; agents: number; streams: number } {
    return {
      status: this.#state === "stopping" ? "stopping" as const : "ok" as const,
      agents: this.agents.connected,
      streams: this.router.active,
    };
  }

  /** Ready (`/readyz`): the config is loaded and every listener is up, and not stopping. */
  ready(): boolean {
    return this.#state === "ready";
  }

  /** Where and what this server is. */
  serverView(): ServerView {
    return {
      version: VERSION,
      runtime: this.net.runtime,
      runtime_version: this.#runtimeVersion,
      protocol: { min: VERSION_MIN, max: VERSION_MAX },
      started_at: new Date(this.#startedAt).toISOString(),
      ready: this.ready(),
    };
  }

  /** Connected agents (admin API). */
  agentViews(): AgentView[] {
    return agentViews(this.agents, this.router);
  }

  /** Configured clients and clients with live streams (admin API). */
  clientViews(): ClientView[] {
    return clientViews(this.#config, this.router);
  }

  /** Live streams, oldest first (admin API). */
  streamViews(): StreamView[] {
    return streamViews(this.router).map((v) => {
      const token = this.tokens.tokenOf(v.id);
      return token ? { ...v, token } : v;
    });
  }

  /** Everything the dashboard shows, in one object. */
  snapshot(): Snapshot {
    return {
      server: this.serverView(),
      agents: this.agentViews(),
      clients: this.clientViews(),
      streams: this.streamViews(),
      refusals: refusalViews(this.router),
      tokens: this.tokens.list().filter((t) => !t.revoked).map(tokenView),
      associations: associationViews(this.udp),
    };
  }

  /** The sampled series (admin API, `GET /api/v1/series`). */
  seriesView(): SeriesView {
    return this.series.view();
  }

  /** Take one sample of the counters into {@link series} (every 5 s while running). */
  sampleSeries(now = Date.now()): void {
    this.series.sample(this.#readings(), now);
  }

  #readings(): Readings {
    const r = this.router;
    const read = (kind: "agent" | "client", names: Iterable<string>) => {
      const bytes = r.bytesBy(kind);
      const out = new Map<string, Reading>();
      for (const name of new Set([...names, ...bytes.keys()])) {
        const b = bytes.get(name) ?? { up: 0, down: 0 };
        const streams = kind === "agent" ? r.agentStreams(name) : r.clientStreams(name);
        out.set(name, { streams, up: b.up, down: b.down });
      }
      return out;
    };
    const m = this.metrics;
    const refusals = new Map<string, number>();
    for (const [status, n] of m.sumBy("burrow_connects_refused_total", "status")) {
      const name = Object.entries(Status).find(([, v]) => String(v) === status)?.[0] ?? status;
      refusals.set(`connect:${name}`, n);
    }
    for (const [role, n] of m.sumBy("burrow_auth_failures_total", "role")) {
      refusals.set(`auth:${role}`, n);
    }
    for (const [limit, n] of m.sumBy("burrow_limit_hits_total", "limit")) {
      refusals.set(`limit:${limit}`, n);
    }
    return {
      agents: read("agent", this.agents.names()),
      clients: read("client", [...r.streams.values()].map((s) => s.client)),
      refusals,
    };
  }

  /** End a live stream on an operator's request; false if there is no such stream. */
  closeStream(id: number): boolean {
    const ok = this.router.closeStream(id, "admin");
    if (ok) this.log.info("stream closed by admin", { stream: id });
    return ok;
  }

  /** End an agent's session on an operator's request; false if it is not connected. */
  disconnectAgent(name: string): boolean {
    const ok = this.agents.disconnect(name, "disconnected by an operator");
    if (ok) this.log.info("agent disconnected by admin", { agent: name });
    return ok;
  }

  /**
   * End one replica's session (the one whose instance id is `instance`, hex)
   * on an operator's request; the agent's other replicas go on. False if
   * there is no such session.
   */
  disconnectReplica(name: string, instance: string): boolean {
    const want = instance.toLowerCase();
    const s = this.agents.group(name).find((s) => s.instance && toHex(s.instance) === want);
    if (!s) return false;
    this.agents.end(s, "shutdown", "disconnected by an operator");
    this.log.info("agent replica disconnected by admin", {
      agent: name,
      instance: want.slice(0, 8),
    });
    return true;
  }

  /** Log and count a failed admin token from `peer`'s source; past the limit it is blocked. */
  adminAuthFailed(peer: HttpPeer | undefined, reason: string): void {
    this.#httpAuthFailed("admin", "admin authentication failed", peer, reason);
  }

  /** Seconds `peer`'s source stays blocked from the admin API (0: not blocked). */
  adminBlocked(peer: HttpPeer | undefined): number {
    return peer ? this.admission.blockedFor("admin", peer.remote.host) : 0;
  }

  /** Log and count a refused sign-in (`/login/token`) from `peer`'s source, as adminAuthFailed. */
  signInRefused(peer: HttpPeer | undefined, reason: string): void {
    this.#httpAuthFailed("login", "sign-in refused", peer, reason);
  }

  /** Seconds `peer`'s source stays blocked from signing in (0: not blocked). */
  signInBlocked(peer: HttpPeer | undefined): number {
    return peer ? this.admission.blockedFor("login", peer.remote.host) : 0;
  }

  #httpAuthFailed(
    what: "admin" | "login",
    msg: string,
    peer: HttpPeer | undefined,
    reason: string,
  ): void {
    const remote = peer ? fmt(peer.remote) : "in-process";
    this.log.warn(msg, { remote, listener: peer?.listener ?? "none", reason });
    if (peer) this.admission.authFailed(what, peer.remote.host);
  }

  useHttpApp(fetch: (req: Request, peer: HttpPeer) => Response | Promise<Response>): void {
    this.#httpApp = fetch;
  }

  /** Listen on the configured ports. */
  async start(): Promise<void> {
    await this.store.open({ log: this.log, metrics: this.metrics });
    await this.tokens.load();
    const { agents, socks, clients, https } = this.#config.listen;
    const tls = this.tls ? { tls: this.tls } : {};
    for (const [port, addr] of [["agents", agents], ["clients", clients]] as const) {
      if (!this.tls && addr && !isLoopback(addr.host)) {
        this.log.warn(
          "plain TCP on a non-loopback address: credentials are safe, but traffic is not",
          { port, listen: fmt(addr) },
        );
      }
    }
    this.addrs.agents = await this.#listen(
      "agents",
      { ...agents, ...tls },
      (c) => this.agents.handle(c),
    );
    if (socks) {
      const front = new SocksFront(this.agents.ctx, this.router, this.udp);
      this.addrs.socks = await this.#listen("socks", socks, (c) => front.handle(c));
    }
    const clientFront = new ClientFront(this.agents.ctx, this.router, this.udp);
    if (clients) {
      this.addrs.clients = await this.#listen(
        "clients",
        { ...clients, ...tls },
        (c) => clientFront.handle(c),
      );
    }
    if (https) {
      if (!this.tls && !isLoopback(https.host)) {
        this.log.warn(
          "listen.https without TLS on a non-loopback address: only behind a TLS-terminating proxy",
          { listen: fmt(https) },
        );
      }
      const front = new HttpsFront(this.agents.ctx, {
        agent: (c) => this.agents.handle(c),
        client: (c) => clientFront.handle(c),
        fetch: (req, peer) =>
          this.#httpApp
            ? this.#httpApp(req, { ...peer, bound: this.addrs.https! })
            : new Response("not found\n", { status: 404 }),
      });
      this.addrs.https = await this.#listen("https", { ...https, ...tls }, (c) => front.handle(c));
    }
    this.fleet = await Fleet.forServer(this, this.info);
    this.log.info("server listening", {
      agents: fmt(this.addrs.agents),
      socks: this.addrs.socks ? fmt(this.addrs.socks) : "off",
      clients: this.addrs.clients ? fmt(this.addrs.clients) : "off",
      https: this.addrs.https ? fmt(this.addrs.https) : "off",
      runtime: this.net.runtime,
      tls: this.tls ? "on" : "off",
    });
    if (this.#state === "starting") this.#state = "ready";
    this.sampleSeries();
    this.#sampler ??= setInterval(() => this.sampleSeries(), SERIES_INTERVAL_MS);
  }

  /** Apply a new config. Live streams continue; sessions of removed or re-keyed agents end. */
  reload(config: ServerConfig): void {
    const old = this.#config;
    this.#config = config;
    this.agents.reload(old, config);
    this.router.bandwidth.reload(); // running streams take the new limits now
    this.log.info("config reloaded", {
      agents: config.agents.size,
      clients: config.clients.size,
      grants: config.grants.length,
    });
  }

  async stop(): Promise<void> {
    this.#state = "stopping";
    clearInterval(this.#sampler);
    this.router.bandwidth.stop();
    for (const l of this.#listeners) l.close();
    this.fleet?.close();
    this.agents.stop();
    for (const c of this.#conns.values()) c.close();
    await Promise.all([...this.#conns.values()].map((c) => c.closed));
    await this.store.close();
  }

  /** Listen on `listen.<key>`; a failure is a {@link ListenError} naming the address and key. */
  async #listen(
    port: Exclude<Port, "admin" | "login">,
    opts: Parameters<Net["listen"]>[0],
    handle: (c: Conn) => Promise<void>,
  ): Promise<Addr> {
    const deferTls = opts.tls !== undefined && this.#config.proxyProtocol.has(port);
    const l = await this.net.listen(deferTls ? { ...opts, deferTls } : opts).catch((e) => {
      throw new ListenError(fmt(opts), `listen.${port}`, e);
    });
    this.#listeners.push(l);
    // A PROXY header comes before anything else on the port, TLS included
    // (trusted.ts). A listener with TLS at accept reads none: naming its
    // port in proxy_protocol takes a restart.
    // Without a header, the handler's own promise: no frame here waits for the stream's end.
    const ctx = this.agents.ctx;
    void this.#acceptLoop(l, (c) => {
      if ((opts.tls && !deferTls) || !expectsHeader(ctx, port, deferTls)) return handle(c);
      return proxied(ctx, port, c, deferTls).then((real) => {
        if (real && deferTls) this.#track(real); // the TLS Conn: c hands over to it
        return real ? handle(real) : undefined;
      });
    });
    return l.addr;
  }

  #track(c: Conn): void {
    const id = this.#conns.add(c);
    c.closed.then(() => this.#conns.delete(id));
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
      this.#track(c);
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
