/**
 * How a stream reaches the agent on the server's side (SPEC.md §2.2, §2.4):
 * a session's pool holds {@link PoolEntry}s, and a CONNECT that takes one
 * asks it for a {@link PoolConn}, whatever carries it. Two carriers make
 * entries: a pool connection of its own, proven by POOL_HELLO
 * ({@link PooledConn}, which is its own entry), and a link, whose entries are
 * stream ids the agent granted, each opened as a link stream when taken
 * ({@link LinkCarrier}). The router and the session see only entries.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Message } from "../messages.ts";
import type { Conn } from "../net.ts";
import { Link } from "../link.ts";
import { Wire } from "../wire.ts";
import type { AgentSession } from "./session.ts";

/** A connection or link stream ready for OPEN: the stream's way to the agent. */
export interface PoolConn {
  wire: Wire;
  /** The pending read: OPEN_RESULT once OPEN is sent; EOF or an error while idle. */
  first: Promise<Message | null>;
  close(): void;
}

/** What a session's pool holds: one stream to the agent, not yet opened. */
export interface PoolEntry {
  /** The connection for a CONNECT that took this entry; throws if its carrier is gone. */
  open(): PoolConn;
  /** Leave the pool unused. */
  close(): void;
  /** How long, at `now`, bytes have been held with no frame completed (ms; 0: none). */
  heldFor(now: number): number;
}

export type Session = AgentSession<PoolEntry>;

/** A pool connection of its own (or a link stream once opened), read from at once. */
export class PooledConn implements PoolConn, PoolEntry {
  readonly first: Promise<Message | null>;

  constructor(readonly wire: Wire) {
    this.first = wire.recv().catch(() => null);
  }

  open(): PoolConn {
    return this;
  }

  close(): void {
    this.wire.conn.close();
  }

  heldFor(now: number): number {
    return this.wire.heldFor(now);
  }
}

/**
 * A pool entry of a link: a stream id the agent granted, whose stream is
 * opened (OPEN frame) when a CONNECT takes it. It is never written after it
 * is made: an entry that waited in the pool is old by the time it is used,
 * and what a stream stored in it would be kept and marked by young
 * collections after the stream ended (see idmap.ts).
 */
class Credit implements PoolEntry {
  constructor(readonly carrier: LinkCarrier) {}

  /** Its link has not ended. */
  get usable(): boolean {
    return !this.carrier.gone;
  }

  open(): PoolConn {
    return this.carrier.open();
  }

  close(): void {} // the id stays unused; the link's end drops it on the agent's side

  heldFor(): number {
    return 0; // its bytes are the link's, which has its own deadline
  }
}

interface LinkHooks {
  /** A limit of the link triggered (to log and count). */
  onLimit(limit: string, max: number): void;
  /** The link ended (`why` null after a drain or close here). */
  onClose(carrier: LinkCarrier, why: Error | null): void;
}

/** Links one session may have at once (SPEC.md §2.4). */
const MAX_LINKS = 4;

/** Every live session's links (SPEC.md §2.4). */
export class Links {
  readonly #of = new Map<Session, Set<LinkCarrier>>();

  /** Links session `s` has now. */
  count(s: Session): number {
    return this.#of.get(s)?.size ?? 0;
  }

  /** Most frames other than DATA any live link has had waiting for its agent. */
  queuedControlPeak(): number {
    let peak = 0;
    for (const ls of this.#of.values()) {
      for (const l of ls) peak = Math.max(peak, l.link.queuedControl.peak);
    }
    return peak;
  }

  /** Throws `limit_exceeded` if session `s` has all the links it may have. */
  check(s: Session): void {
    if (this.count(s) >= MAX_LINKS) {
      throw new ProtocolError(
        "limit_exceeded",
        `a session may have ${MAX_LINKS} links; this one has them`,
      );
    }
  }

  /** The session ended: its links close once their streams are done. */
  drain(s: Session): void {
    for (const l of this.#of.get(s) ?? []) l.link.drain();
  }

  /**
   * A proven link of session `s` on `conn` (`rest`: bytes read after its
   * hello), failed when bytes of a frame are held `frameTimeoutMs` with no
   * frame completed.
   */
  add(
    s: Session,
    conn: Conn,
    rest: Uint8Array,
    frameTimeoutMs: number,
    log: Logger,
    onLimit: LinkHooks["onLimit"],
  ): void {
    const links = this.#of.get(s) ?? new Set<LinkCarrier>();
    const carrier = new LinkCarrier(s, conn, rest, frameTimeoutMs, {
      onLimit,
      onClose: (c, why) => {
        if (!links.delete(c)) return; // drained at once: the session had ended
        if (links.size === 0) this.#of.delete(s);
        // Granted streams never opened leave the pool with a failed link, and
        // so do the requests whose streams were still to come on it.
        s.linkClosed(why !== null);
        if (why && !s.closed) log.info("agent link closed", { reason: why.message });
      },
    });
    if (s.closed) return carrier.link.drain();
    links.add(carrier);
    this.#of.set(s, links);
    // An unopened pool stream costs a few bytes here and nothing on the
    // agent: such a session keeps pool_max of them (SPEC.md §7.4).
    s.linkOpened();
    s.replenish();
    log.debug("agent link open", { session: s.key.slice(0, 8), links: links.size });
  }
}

/**
 * One link of a session (SPEC.md §2.4): each GRANT adds entries to the
 * session's pool, up to what it takes; a taken entry opens a stream.
 */
export class LinkCarrier {
  readonly link: Link;
  /** The link ended: its granted ids left unopened are dead entries. */
  gone = false;

  constructor(
    readonly session: Session,
    conn: Conn,
    rest: Uint8Array,
    frameTimeoutMs: number,
    hooks: LinkHooks,
  ) {
    // A GRANT that came with the hello's bytes is read after this
    // constructor returned (Link defers them), so `this.link` is set by then.
    this.link = new Link(conn, {
      onGrant: (added: number) => {
        // Bounded by the pool, not by the agent's number: once the pool is
        // full (pool_max idle) the rest of a grant is dropped.
        for (let i = 0; i < added && session.wants; i++) {
          const placed = session.add(new Credit(this));
          if (placed !== "idle" && placed !== "taken") break;
        }
      },
      frameTimeoutMs,
      onLimit: hooks.onLimit,
      onClose: (why) => {
        this.gone = true;
        hooks.onClose(this, why);
      },
    }, rest);
  }

  /** A stream on the link for a CONNECT; throws on a link that is gone (a dead entry). */
  open(): PoolConn {
    return new PooledConn(new Wire(this.link.open()));
  }
}
