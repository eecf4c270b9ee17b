/**
 * How an agent's session brings the server its pool connections (SPEC.md
 * §2.2, §2.4): one {@link Carrier} per way. {@link LinkCarrier} grants stream
 * ids on the session's link (the default); {@link DialCarrier} dials a
 * connection of its own per pool connection (with `--no-link`, and for what
 * the link cannot carry). The session asks its carriers in turn and never
 * looks at which one served.
 *
 * @module
 */
import { decode } from "./decode.ts";
import { PeerError, ProtocolError } from "./errors.ts";
import { Framer } from "./framer.ts";
import { Link } from "./link.ts";
import type { Logger } from "./log.ts";
import type { Conn } from "./net.ts";
import type { AgentPool } from "./agent_stream.ts";
import { Wire } from "./wire.ts";

/** What a carrier needs of its session; once `dropped`, the session is gone and asks nothing more. */
export interface CarrierSession {
  readonly dropped: boolean;
  readonly pool: AgentPool;
  readonly log: Logger;
  /** The last stream id a link may use (tests lower it); absent: 2³²−1. */
  readonly linkLastId: number | undefined;
  /** How long a link may hold part of a frame with no frame completed (the heartbeat timeout). */
  readonly frameTimeoutMs: number;
  dialServer(): Promise<Conn>;
  /** Prove `wire` for the session with the next sequence number; false (and closed) on failure. */
  hello(type: "POOL_HELLO" | "LINK_HELLO", wire: Wire): Promise<boolean>;
  /** Ask the session's carriers for `count` pool connections (what a refused link had granted). */
  provide(count: number): Promise<number>;
}

/** One way of carrying a session's pool connections to the server. */
export interface Carrier {
  /** Make up to `count` more pool connections available to the server; how many it did. */
  provide(count: number): Promise<number>;
  /** Pool connections made available and not yet taken by the server. */
  readonly spare: number;
  /** The session ended: nothing new; what relays goes on. */
  drop(): void;
  /** The agent stops: close at once. */
  close(): void;
}

/** Pool connections of their own: dialed, proven by POOL_HELLO, each then waits for OPEN. */
export class DialCarrier implements Carrier {
  readonly spare = 0;

  constructor(readonly s: CarrierSession) {}

  async provide(count: number): Promise<number> {
    const results = await Promise.all(Array.from({ length: count }, () => this.#one()));
    return results.filter(Boolean).length;
  }

  async #one(): Promise<boolean> {
    let conn: Conn;
    try {
      conn = await this.s.dialServer();
    } catch (e) {
      this.s.log.warn("pool connection failed", { error: (e as Error).message });
      return false;
    }
    if (this.s.dropped) {
      // The session ended while this dial was in flight: its hello would be refused.
      conn.close();
      return false;
    }
    this.s.pool.add(conn);
    const wire = new Wire(conn);
    if (!await this.s.hello("POOL_HELLO", wire)) return false;
    this.s.pool.serve(wire, this.s.frameTimeoutMs);
    return true;
  }

  drop(): void {}

  close(): void {}
}

/**
 * The session's link (SPEC.md §2.4): it grants stream ids, and each stream
 * the server opens joins the pool. A link that has used every stream id
 * hands over: the next link takes over, this one drains.
 */
export class LinkCarrier implements Carrier {
  /** The link, once asked for; null if it could not be opened. */
  #link: Promise<Link | null>;
  /** The newest link once it is up. */
  #up: Link | null = null;

  constructor(readonly s: CarrierSession) {
    this.#link = this.#open();
  }

  get spare(): number {
    const l = this.#up;
    return l?.usable ? l.granted - l.opened : 0;
  }

  /** The link's queued control frames (for `agent stats`), once it is up. */
  get queuedControl(): { now: number; peak: number } | undefined {
    return this.#up?.queuedControl;
  }

  async provide(count: number): Promise<number> {
    const link = await this.#settled();
    if (this.s.dropped || !link?.usable) return 0;
    return link.grant(count);
  }

  drop(): void {
    // Streams relaying on the link go on; it closes when they are done.
    void this.#link.then((l) => l?.drain());
  }

  close(): void {
    void this.#link.then((l) => l?.close());
  }

  /** The link once it is settled (null: none), after a handover if this one is exhausted. */
  async #settled(): Promise<Link | null> {
    const pending = this.#link;
    const link = await pending;
    if (this.s.dropped) return null;
    if (link?.exhausted && this.#link === pending) {
      this.s.log.info("link used its last stream id; opening a new one");
      link.drain();
      this.#link = this.#open();
    }
    return this.#link === pending ? link : await this.#link;
  }

  /**
   * Open a link: a connection whose LINK_HELLO proves it as POOL_HELLO
   * proves a pool connection, then link frames. Null when it cannot be had:
   * the session's pool connections are then dialed one by one, and the next
   * session tries again.
   */
  async #open(): Promise<Link | null> {
    let conn: Conn;
    try {
      conn = await this.s.dialServer();
    } catch (e) {
      this.s.log.warn("link failed; pool connections are dialed one by one", {
        error: (e as Error).message,
      });
      return null;
    }
    if (!await this.s.hello("LINK_HELLO", new Wire(conn))) return null;
    if (this.s.dropped) {
      conn.close();
      return null;
    }
    let refused = false;
    const { s } = this;
    // The server opens the streams within what this side grants.
    const link: Link = new Link(conn, {
      ...(s.linkLastId ? { lastId: s.linkLastId } : {}),
      frameTimeoutMs: s.frameTimeoutMs,
      onStream: (stream: Conn) => {
        s.pool.add(stream);
        s.pool.serve(new Wire(stream));
      },
      onLimit: (limit, max) => s.log.warn("limit hit", { limit, max }),
      first: (chunk) => {
        const e = refusal(chunk);
        refused = e !== null;
        return e;
      },
      onClose: (why) => {
        if (!why || s.dropped) return;
        s.log.warn("link lost; pool connections are dialed one by one", { error: why.message });
        // A refused link carried no pool connection the server counted: dial them.
        if (refused) void s.provide(link.granted);
      },
    });
    this.#up = link;
    return link;
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
