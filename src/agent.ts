/**
 * The agent (SPEC.md §2.1, §2.2): keeps a control connection to the server,
 * opens pool connections when asked, and on OPEN checks its own allowlist,
 * dials the target and relays. Reconnects with backoff after any loss.
 *
 * @module
 */
import { fmt, targetText } from "./addr.ts";
import { type Credential, poolTranscript, randomBytes, toHex } from "./auth.ts";
import { decode } from "./decode.ts";
import { NetError, PeerError, ProtocolError } from "./errors.ts";
import { Framer } from "./framer.ts";
import { IdMap } from "./idmap.ts";
import { dialTarget } from "./agent_dial.ts";
export { statusOf } from "./agent_dial.ts";
import { Link } from "./link.ts";
import { NO_ADDR } from "./writer.ts";
import { ipKind } from "./ip.ts";
import type { Logger } from "./log.ts";
import { ErrorCode, type MessageOf, type Rule, type Target } from "./messages.ts";
import { type Addr, type Conn, type Net, type TlsClientOptions } from "./net.ts";
import { relay } from "./relay.ts";
import { deadline, sleep } from "./time.ts";
import { answerControl, dialServer, login, Wire } from "./wire.ts";

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
}

export interface SessionInfo {
  agentId: number;
  sessionId: Uint8Array;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

const noop = () => {};
/** POOL_REQUESTs whose POOL_CONFIRM is not yet taken by the connection (SPEC.md §10). */
const MAX_UNCONFIRMED = 1024;

export class Agent {
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #control: Conn | undefined;
  /** The session's link, once asked for; null if it could not be opened. */
  #link: Promise<Link | null> | undefined;
  /** The link that grants the session's pool streams, once up. */
  #granting: Link | null = null;
  readonly #pool = new IdMap<Conn>();
  /**
   * Pool connections and streams asked for and not yet given their OPEN:
   * with the link's granted ids not yet opened, at most WELCOME's pool_max
   * (a POOL_REQUEST beyond it is confirmed with fewer).
   */
  #unused = 0;
  #session: SessionInfo | undefined;
  #seq = 0;
  #nonce: Uint8Array = new Uint8Array(0);
  #version = 1;
  #sessionWaiters: Array<(s: SessionInfo) => void> = [];
  /** Sessions established so far (for tests and logs). */
  sessions = 0;

  /**
   * This process's instance id (SPEC.md §2.1): sent in INSTANCE, so that servers tell replicas (other instances) from a reconnect (this one).
   */
  readonly instance: Uint8Array;

  constructor(readonly net: Net, readonly opts: AgentOptions, readonly log: Logger) {
    this.instance = opts.instance ?? randomBytes(16);
  }

  get session(): SessionInfo | undefined {
    return this.#session;
  }

  /**
   * Idle or busy pool connections currently open, with the link's stream ids granted that the server has not opened yet.
   */
  get poolSize(): number {
    const l = this.#granting;
    return this.#pool.size + (l?.usable ? l.granted - l.opened : 0);
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
      const q = this.#granting?.queuedControl;
      this.log.info("agent stats", {
        pool: this.poolSize,
        unused: this.#unused,
        ...(q ? { link_queued_control: q.now, link_queued_control_peak: q.peak } : {}),
      });
    }, this.opts.statsMs);
    void this.#running.finally(() => clearInterval(stats));
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#control?.close();
    void this.#link?.then((l) => l?.close());
    for (const c of this.#pool.values()) c.close();
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
        const fields = {
          server: fmt(this.opts.server),
          error: e instanceof Error ? e.message : String(e),
        };
        if (e instanceof PeerError && e.code === ErrorCode.auth_failed) {
          this.log.error("server refused our credentials", fields);
        } else if (e instanceof PeerError && e.code === ErrorCode.replaced) {
          // Another agent with our name took over: do not fight it at full speed.
          replaced = true;
          this.log.error("another agent with this name replaced this session; backing off", fields);
        } else if (e instanceof NetError && e.code === "ETLS") {
          this.log.error("TLS with the server failed", fields);
        } else this.log.warn("session failed", fields);
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
    try {
      const welcome = await deadline(
        (async () => {
          const software = this.opts.software ?? `burrow/0.1.0 ${this.net.runtime}`;
          const { version, nonce } = await login(
            wire,
            "agent",
            name,
            credential,
            software,
            !this.opts.tls,
          );
          this.#version = version;
          this.#nonce = nonce;
          return await wire.expect("WELCOME");
        })(),
        this.opts.dialTimeoutMs ?? 10_000,
        "handshake",
        () => conn.close(),
      );
      await wire.send({ type: "INSTANCE", instance: this.instance });
      await wire.send({ type: "ANNOUNCE", rules: this.opts.rules });
      if (this.opts.link !== false) {
        this.#link = this.#openLink(welcome, conn);
      }
      this.#seq = 0;
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
        protocol: this.#version,
        rules: this.opts.rules.length,
      });
      for (const w of this.#sessionWaiters.splice(0)) w(this.#session);
      await this.#serve(wire, welcome);
    } finally {
      conn.close();
      // Streams relaying on the link go on; it closes when they are done.
      void this.#link?.then((l) => l?.drain());
      this.#link = undefined;
      this.#granting = null;
    }
  }

  /**
   * Open the session's link (SPEC.md §2.4): a connection whose LINK_HELLO
   * proves it as POOL_HELLO proves a pool connection, then link frames. Null
   * when it cannot be had: the session's pool connections are then dialed
   * one by one, and the next session tries again.
   */
  async #openLink(welcome: MessageOf<"WELCOME">, control: Conn): Promise<Link | null> {
    let conn: Conn;
    try {
      conn = await this.#dialServer();
    } catch (e) {
      this.log.warn("link failed; pool connections are dialed one by one", {
        error: (e as Error).message,
      });
      return null;
    }
    if (!await this.#hello("LINK_HELLO", new Wire(conn), welcome)) return null;
    if (this.#control !== control) {
      conn.close();
      return null;
    }
    let refused = false;
    // The server opens the streams within what this side grants.
    const link: Link = new Link(conn, {
      ...(this.opts.linkLastId ? { lastId: this.opts.linkLastId } : {}),
      granting: true,
      onStream: (stream: Conn) => this.#poolStream(stream),
      onLimit: (limit, max) => this.log.warn("limit hit", { limit, max }),
      first: (chunk) => {
        const e = refusal(chunk);
        refused = e !== null;
        return e;
      },
      onClose: (why) => {
        if (!why || this.#control !== control) return;
        this.log.warn("link lost; pool connections are dialed one by one", {
          error: why.message,
        });
        // A refused link carried no pool connection the server counted: dial them.
        if (refused) void this.#openPool(link.granted, welcome, control);
      },
    });
    this.#granting = link;
    return link;
  }

  async #serve(wire: Wire, welcome: MessageOf<"WELCOME">): Promise<void> {
    const conn = wire.conn;
    let lastRx = Date.now();
    let unconfirmed = 0;
    const watchdog = setInterval(() => {
      if (Date.now() - lastRx > welcome.heartbeatTimeoutMs) {
        this.log.warn("server silent, reconnecting", { silent_ms: Date.now() - lastRx });
        wire.conn.close();
      }
    }, Math.max(100, Math.min(welcome.heartbeatIntervalMs, welcome.heartbeatTimeoutMs / 3)));
    try {
      for (;;) {
        const msg = await wire.recv();
        if (msg === null) throw new NetError("ECONNRESET", "server closed the control connection");
        lastRx = Date.now();
        switch (msg.type) {
          case "POOL_REQUEST": {
            // Served concurrently, not awaited: the next request (and a PING
            // behind it) is read at once, so a burst of requests costs one
            // round of dials, not one per request. Each request is confirmed
            // when its own dials are done (SPEC.md §7.4).
            const { requestId, count } = msg;
            // A server that does not read its POOL_CONFIRMs fails the session.
            if (unconfirmed >= MAX_UNCONFIRMED) {
              this.log.warn("limit hit", {
                limit: "pool_requests_unconfirmed",
                max: MAX_UNCONFIRMED,
              });
              throw new ProtocolError(
                "limit_exceeded",
                `${MAX_UNCONFIRMED} POOL_REQUESTs wait for their POOL_CONFIRM to be read`,
              );
            }
            unconfirmed++;
            this.#openPool(count, welcome, conn).then(
              (opened) => wire.send({ type: "POOL_CONFIRM", requestId, count: opened }),
            ).then(() => unconfirmed--, () => conn.close());
            break;
          }
          case "GOAWAY":
            throw new PeerError(msg.code, msg.message);
          default:
            await answerControl(wire, msg);
        }
      }
    } catch (e) {
      if (e instanceof ProtocolError && e.reply) await wire.fail(e.code, e.message);
      throw e;
    } finally {
      clearInterval(watchdog);
    }
  }

  /**
   * Open `count` pool connections concurrently for the session of `control`;
   * resolves with how many said hello.
   */
  async #openPool(asked: number, welcome: MessageOf<"WELCOME">, control: Conn): Promise<number> {
    const l = this.#granting;
    const count = Math.min(
      asked,
      welcome.poolMax - this.#unused - (l?.usable ? l.granted - l.opened : 0),
    );
    if (count <= 0) return 0;
    this.#unused += count; // until each has its own place (in #awaitOpen) or a grant
    try {
      return await this.#openPoolOf(count, welcome, control);
    } finally {
      this.#unused -= count;
    }
  }

  async #openPoolOf(count: number, welcome: MessageOf<"WELCOME">, control: Conn): Promise<number> {
    if (this.#link) {
      // Pool streams are granted, not opened; the server opens
      // each when it needs it (SPEC.md §2.4). What cannot be granted is dialed.
      const granted = await this.#grant(count, welcome, control);
      if (granted === count || this.#control !== control) return granted;
      return granted + await this.#dialPool(count - granted, welcome, control);
    }
    return await this.#dialPool(count, welcome, control);
  }

  /** `count` dialed pool connections, concurrently. */
  async #dialPool(count: number, welcome: MessageOf<"WELCOME">, control: Conn): Promise<number> {
    const results = await Promise.all(
      Array.from({ length: count }, () => this.#poolConn(welcome, control)),
    );
    return results.filter(Boolean).length;
  }

  /** Grant `count` pool streams on the session's link; how many were granted. */
  async #grant(count: number, welcome: MessageOf<"WELCOME">, control: Conn): Promise<number> {
    const link = await this.#currentLink(welcome, control);
    if (this.#control !== control || !link?.usable) return 0;
    return link.grant(count);
  }

  /**
   * The session's link once it is settled (null: none). A link that has used
   * every stream id hands over: the next link takes over, this one drains.
   */
  async #currentLink(welcome: MessageOf<"WELCOME">, control: Conn): Promise<Link | null> {
    const pending = this.#link;
    const link = await pending;
    if (this.#control !== control) return null;
    if (link?.exhausted && this.#link === pending) {
      this.log.info("link used its last stream id; opening a new one");
      link.drain();
      this.#link = this.#openLink(welcome, control);
    }
    return this.#link === pending ? link ?? null : (await this.#link) ?? null;
  }

  /** A pool stream the server opened on the link: it waits for OPEN. */
  #poolStream(stream: Conn): void {
    this.#track(stream);
    this.#awaitOpen(new Wire(stream)).catch((e) => {
      this.log.error("pool stream handler failed", { error: String(e) });
      stream.close();
    });
  }

  async #poolConn(welcome: MessageOf<"WELCOME">, control: Conn): Promise<boolean> {
    let conn: Conn;
    try {
      conn = await this.#dialServer();
    } catch (e) {
      this.log.warn("pool connection failed", { error: (e as Error).message });
      return false;
    }
    if (this.#control !== control) {
      // The session ended while this dial was in flight: its hello would be refused.
      conn.close();
      return false;
    }
    this.#track(conn);
    const wire = new Wire(conn);
    if (!await this.#hello("POOL_HELLO", wire, welcome)) return false;
    this.#awaitOpen(wire).catch((e) => {
      this.log.error("pool connection handler failed", { error: String(e) });
      conn.close();
    });
    return true;
  }

  /**
   * Prove a pool connection or a link for the session (SPEC.md §6.3) with
   * the next sequence number; false (and the connection closed) on failure.
   */
  async #hello(
    type: "POOL_HELLO" | "LINK_HELLO",
    wire: Wire,
    welcome: MessageOf<"WELCOME">,
  ): Promise<boolean> {
    const seq = ++this.#seq;
    try {
      const proof = await this.opts.credential.prove(
        poolTranscript(welcome.agentId, welcome.sessionId, seq, this.#nonce),
      );
      const { agentId, sessionId } = welcome;
      await wire.send({ type, version: this.#version, agentId, sessionId, seq, proof });
      return true;
    } catch {
      wire.conn.close();
      return false;
    }
  }

  /** Count `conn` in {@link poolSize} until it closes. */
  #track(conn: Conn): void {
    const id = this.#pool.add(conn);
    conn.closed.then(() => this.#pool.delete(id));
  }

  async #awaitOpen(wire: Wire): Promise<void> {
    let open: MessageOf<"OPEN">;
    this.#unused++;
    try {
      const msg = await wire.recv().finally(() => this.#unused--);
      if (msg === null) return wire.conn.close(); // the server shrank its pool
      if (msg.type === "ERROR") {
        this.log.warn("server refused pool connection", { code: msg.code, error: msg.message });
        return wire.conn.close();
      }
      if (msg.type !== "OPEN") {
        throw new ProtocolError("unexpected_message", `expected OPEN, got ${msg.type}`);
      }
      open = msg;
    } catch (e) {
      if (e instanceof ProtocolError) {
        this.log.warn("protocol error on pool connection", { code: e.code, error: e.message });
        return e.reply ? wire.fail(e.code, e.message) : wire.conn.close();
      }
      return wire.conn.close();
    }
    // Made when a line is written: at info, a stream that opens logs none.
    const log = () =>
      this.log.with({
        stream: open.streamId,
        client: open.client,
        target: targetText(open.target),
      });
    const result = await dialTarget(
      this.net,
      this.opts.rules,
      open,
      this.opts.dialTimeoutMs ?? 10_000,
    );
    if (!result.ok) {
      log().warn("stream refused", { status: result.status, reason: result.reason });
      return wire.last({
        type: "OPEN_RESULT",
        streamId: open.streamId,
        status: result.status,
        bound: NO_ADDR,
      });
    }
    const target = result.conn;
    const local = target.local;
    const kind = ipKind(local.host);
    const bound: Target = kind ? { type: kind, host: local.host, port: local.port } : NO_ADDR;
    try {
      await wire.send({ type: "OPEN_RESULT", streamId: open.streamId, status: 0, bound });
    } catch {
      target.close();
      return wire.conn.close();
    }
    if (this.log.enabled("debug")) log().debug("stream open");
    // Returned, not awaited, so this frame is released while the stream lasts.
    return relay(wire.conn, target, wire.rest()).then(noop);
  }
}

/**
 * The first bytes of a link from the server: link frames, or (first byte
 * 0x42, `B` of `BRRW`, no link frame type) a frame refusing the link, read
 * here for its ERROR.
 */
function refusal(chunk: Uint8Array): Error | null {
  if (chunk[0] !== 0x42) return null;
  try {
    const framer = new Framer();
    framer.push(chunk);
    const frame = framer.next();
    const msg = frame && decode(frame);
    if (msg?.type === "ERROR") return new PeerError(msg.code, msg.message);
  } catch {
    // not even a frame
  }
  return new ProtocolError("protocol_error", "The server answered the link with a frame", {
    reply: false,
  });
}
