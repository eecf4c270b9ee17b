/**
 * One session of the agent with the server (SPEC.md §2.1, §7.4): its control
 * loop (POOL_REQUEST answered by its carriers, heartbeats, GOAWAY), its pool
 * sequence numbers and its carriers. A reconnect makes a new session; the
 * old one is dropped whole, and whatever of its work is still in flight
 * sees `dropped` and stops.
 *
 * @module
 */
import { poolTranscript } from "./auth.ts";
import type { Credential } from "./auth.ts";
import { type Carrier, type CarrierSession, DialCarrier, LinkCarrier } from "./agent_carrier.ts";
import type { AgentPool } from "./agent_stream.ts";
import { NetError, PeerError, ProtocolError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { MessageOf } from "./messages.ts";
import type { Conn } from "./net.ts";
import { answerControl, type Wire } from "./wire.ts";

/** POOL_REQUESTs whose POOL_CONFIRM is not yet taken by the connection (SPEC.md §10). */
const MAX_UNCONFIRMED = 1024;

/** What a session takes from its agent. */
export interface SessionParams {
  pool: AgentPool;
  log: Logger;
  credential: Credential;
  /** Carry pool connections on a link (default) or dial each one. */
  link: boolean;
  linkLastId: number | undefined;
  dialServer(): Promise<Conn>;
}

export class ControlSession implements CarrierSession {
  dropped = false;
  #seq = 0;
  /** The link, when the session has one. */
  readonly link: LinkCarrier | null;
  /** Asked in turn: the link first, then dialing. */
  readonly #carriers: Carrier[];
  readonly pool: AgentPool;
  readonly log: Logger;
  readonly linkLastId: number | undefined;

  constructor(
    readonly params: SessionParams,
    readonly wire: Wire,
    readonly welcome: MessageOf<"WELCOME">,
    readonly version: number,
    readonly nonce: Uint8Array,
  ) {
    this.pool = params.pool;
    this.log = params.log;
    this.linkLastId = params.linkLastId;
    this.link = params.link ? new LinkCarrier(this) : null;
    this.#carriers = this.link ? [this.link, new DialCarrier(this)] : [new DialCarrier(this)];
  }

  get frameTimeoutMs(): number {
    return this.welcome.heartbeatTimeoutMs;
  }

  /** Pool connections made available and not yet taken by the server. */
  get spare(): number {
    return this.link?.spare ?? 0;
  }

  dialServer(): Promise<Conn> {
    return this.params.dialServer();
  }

  /** The session ended: nothing new is opened for it; its streams relay on. */
  drop(): void {
    this.dropped = true;
    this.wire.conn.close();
    for (const c of this.#carriers) c.drop();
  }

  /** The agent stops: close the control connection and the link now. */
  close(): void {
    this.wire.conn.close();
    for (const c of this.#carriers) c.close();
  }

  /**
   * Provide `asked` pool connections, within pool_max of them unused;
   * resolves with how many the carriers made available.
   */
  async provide(asked: number): Promise<number> {
    const count = Math.min(asked, this.welcome.poolMax - this.pool.unused - this.spare);
    if (count <= 0) return 0;
    this.pool.unused += count; // until each has its own place (AgentPool) or a grant
    try {
      let done = 0;
      for (const c of this.#carriers) {
        if (done === count || this.dropped) break;
        done += await c.provide(count - done);
      }
      return done;
    } finally {
      this.pool.unused -= count;
    }
  }

  /**
   * Prove a pool connection or a link for the session (SPEC.md §6.3) with
   * the next sequence number; false (and the connection closed) on failure.
   */
  async hello(type: "POOL_HELLO" | "LINK_HELLO", wire: Wire): Promise<boolean> {
    const seq = ++this.#seq;
    const { agentId, sessionId } = this.welcome;
    try {
      const proof = await this.params.credential.prove(
        poolTranscript(agentId, sessionId, seq, this.nonce),
      );
      await wire.send({ type, version: this.version, agentId, sessionId, seq, proof });
      return true;
    } catch {
      wire.conn.close();
      return false;
    }
  }

  /** The control loop, until the connection ends (it throws why). */
  async serve(): Promise<void> {
    const { wire, welcome } = this;
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
        if (msg.type === "GOAWAY") throw new PeerError(msg.code, msg.message);
        if (msg.type !== "POOL_REQUEST") {
          await answerControl(wire, msg);
          continue;
        }
        // Served concurrently, not awaited: the next request (and a PING
        // behind it) is read at once, so a burst of requests costs one
        // round of dials, not one per request. Each request is confirmed
        // when its own dials are done (SPEC.md §7.4).
        const { requestId, count } = msg;
        // A server that does not read its POOL_CONFIRMs fails the session.
        if (unconfirmed >= MAX_UNCONFIRMED) {
          this.log.warn("limit hit", { limit: "pool_requests_unconfirmed", max: MAX_UNCONFIRMED });
          throw new ProtocolError(
            "limit_exceeded",
            `${MAX_UNCONFIRMED} POOL_REQUESTs wait for their POOL_CONFIRM to be read`,
          );
        }
        unconfirmed++;
        this.provide(count).then(
          (opened) => wire.send({ type: "POOL_CONFIRM", requestId, count: opened }),
        ).then(() => unconfirmed--, () => wire.conn.close());
      }
    } catch (e) {
      if (e instanceof ProtocolError && e.reply) await wire.fail(e.code, e.message);
      throw e;
    } finally {
      clearInterval(watchdog);
    }
  }
}
