/**
 * The agent's pool (SPEC.md §2.2): every pool connection and link stream of
 * every session, whichever carrier brought it, counted while it is open. Each
 * waits for its OPEN, checks the target against the agent's own allowlist,
 * dials it, answers OPEN_RESULT and relays.
 *
 * @module
 */
import { targetText } from "./addr.ts";
import { dialTarget } from "./agent_dial.ts";
import { ProtocolError } from "./errors.ts";
import { IdMap } from "./idmap.ts";
import { ipKind } from "./ip.ts";
import type { Logger } from "./log.ts";
import { type MessageOf, type Rule, RuleProtocol, type Target } from "./messages.ts";
import type { Conn, Net } from "./net.ts";
import { relay } from "./relay.ts";
import { AgentUdp, UDP_IDLE_MS } from "./agent_udp.ts";
import { Wire } from "./wire.ts";
import { NO_ADDR } from "./writer.ts";

const noop = () => {};

export class AgentPool {
  readonly #conns = new IdMap<Conn>();
  /**
   * Pool connections and streams asked for and not yet given their OPEN:
   * with the link's granted ids not yet opened, at most WELCOME's pool_max
   * (a POOL_REQUEST beyond it is confirmed with fewer).
   */
  unused = 0;

  /** UDP associations (SPEC.md §2.5): OPENs with protocol 17. */
  readonly udp: AgentUdp;

  constructor(
    readonly net: Net,
    readonly rules: Rule[],
    readonly dialTimeoutMs: number,
    readonly log: Logger,
    udpIdleMs: number = UDP_IDLE_MS,
  ) {
    this.udp = new AgentUdp(net, rules, log, udpIdleMs);
  }

  /** Pool connections and streams open now, idle or relaying. */
  get size(): number {
    return this.#conns.size;
  }

  /** Close every pool connection and stream (the agent stops). */
  close(): void {
    for (const c of this.#conns.values()) c.close();
  }

  /** Count `conn` in {@link size} until it closes. */
  add(conn: Conn): void {
    const id = this.#conns.add(conn);
    conn.closed.then(() => this.#conns.delete(id));
  }

  /**
   * A dialed pool connection that holds part of a frame with none completed
   * for `ms` (a server trickling bytes) is closed (`limit=frame_timeout`,
   * SPEC.md §10.1); a link has its own deadline. Returns the stop.
   */
  #watch(wire: Wire, ms: number): () => void {
    const t = setInterval(() => {
      const held = wire.heldFor(Date.now());
      if (held <= ms) return;
      this.log.warn("limit hit", { limit: "frame_timeout", held_ms: held });
      wire.conn.close();
    }, Math.max(100, ms / 3));
    return () => clearInterval(t);
  }

  /** A proven pool connection, or a stream the server opened on a link: it waits for OPEN. */
  serve(wire: Wire, frameTimeoutMs?: number): void {
    this.#caught(this.#awaitOpen(wire, frameTimeoutMs), wire.conn);
  }

  /**
   * A handler's failure closes its connection. What this holds lasts as long
   * as the stream: the connection, not the wire (whose framer is garbage once
   * the stream relays), and in one scope (a local beside `this` would make a
   * second one).
   */
  #caught(handler: Promise<void>, conn: Conn): void {
    handler.catch((e) => {
      this.log.error("pool connection handler failed", { error: String(e) });
      conn.close();
    });
  }

  async #awaitOpen(wire: Wire, frameTimeoutMs: number | undefined): Promise<void> {
    let open: MessageOf<"OPEN">;
    this.unused++;
    const watch = frameTimeoutMs === undefined ? noop : this.#watch(wire, frameTimeoutMs);
    try {
      const msg = await wire.recv().finally(() => {
        this.unused--;
        watch();
      });
      if (msg === null) return wire.conn.close(); // the server shrank its pool
      if (msg.type === "ERROR") {
        this.log.warn("server refused pool connection", { code: msg.code, error: msg.message });
        return wire.conn.close();
      }
      if (msg.type !== "OPEN") {
        throw new ProtocolError("unexpected_message", `expected OPEN, got ${msg.type}`);
      }
      open = msg;
      if (open.protocol === RuleProtocol.udp) return await this.udp.serve(wire, open);
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
    const result = await dialTarget(this.net, this.rules, open, this.dialTimeoutMs);
    if (!result.ok) {
      const { status, reason } = result.error;
      log().warn("stream refused", { status, reason });
      return wire.last({
        type: "OPEN_RESULT",
        streamId: open.streamId,
        status,
        bound: NO_ADDR,
      });
    }
    const target = result.value;
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
