/**
 * The link (SPEC.md §2.4, §3.2): many pool streams over one connection. The
 * agent grants stream ids ({@link Link.grant}) and is handed each stream
 * the server opens (`onStream`); the server opens streams within the
 * grants ({@link Link.open}). A stream is a
 * {@link Conn}, so the rest of burrow (the pool, OPEN / OPEN_RESULT, the
 * relay) treats it as it treats a pool connection of its own.
 *
 * Flow control is per stream and direction: a sender may have at most the
 * window its peer granted in flight ({@link LINK_WINDOW} at first); the
 * receiver grants more as its reader consumes. So the link's reader never
 * waits for a slow stream (no stream holds up another), and what a link
 * buffers is bounded by the windows it granted.
 *
 * @module
 */
import { NetError, ProtocolError } from "./errors.ts";
import { encodeLinkFrame, type LinkFrame, LinkFramer } from "./link_frame.ts";
import { LINK_WINDOW, Stream } from "./link_stream.ts";
import type { Addr, Conn } from "./net.ts";
import { FrameDeadline } from "./frame_deadline.ts";
import { IdMap } from "./idmap.ts";
import type { LinkOptions } from "./link_options.ts";
import { LinkWriter } from "./link_writer.ts";

export { LINK_WINDOW };
export type { LinkOptions };
/** Frames that make a write before the turn ends (see link_writer.ts). */
const LINK_BATCH = 8;
const RESOLVED = Promise.resolve();

/** How long a drained link waits for the peer to close its side. */
const LINGER_MS = 5000;
/**
 * Frames other than DATA a link may have queued, not yet taken by its
 * connection, when a peer's frame arrives (SPEC.md §3.2); past it the peer
 * does not read what it makes this side answer, and the link fails (as Go's
 * HTTP/2 server does past 10 000 queued control frames). DATA: see windows.
 */
export const LINK_MAX_QUEUED_CONTROL = 10_000;

export class Link {
  readonly #conn: Conn;
  readonly #opts: LinkOptions;
  readonly #streams = new IdMap<Stream>();
  readonly #framer = new LinkFramer();
  /** What goes out, in its order (link_writer.ts). */
  readonly #out: LinkWriter;
  /** Highest stream id opened on this link. */
  #highest = 0;
  #draining = false;
  /** Drained and half-closed: waiting for the peer's EOF. */
  #ending = false;
  #linger: ReturnType<typeof setTimeout> | undefined;
  #dead: Error | null = null;
  #gotFirst = false;
  /** The deadline from a frame's first byte, if `frameTimeoutMs`. */
  readonly #deadline: FrameDeadline | null;
  /** The highest stream id granted (sent by the agent, received by the server). */
  #granted = 0;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(conn: Conn, opts: LinkOptions, initial?: Uint8Array) {
    this.#conn = conn;
    // A failed write fails the link (and so every stream).
    this.#out = new LinkWriter(
      conn,
      conn.nagle ? Infinity : LINK_BATCH,
      (e) => this.#fail(e),
      LINK_MAX_QUEUED_CONTROL,
      () => this.#overLimit(),
    );
    this.#opts = opts;
    const ms = opts.frameTimeoutMs;
    this.#deadline = ms
      ? new FrameDeadline(ms, () => this.#framer.buffered, () => this.#stalled(ms))
      : null;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    void this.#readLoop(initial);
  }

  /** Streams opened on this link so far. */
  get opened(): number {
    return this.#highest;
  }

  /** Streams open now. */
  get streams(): number {
    return this.#streams.size;
  }

  /** Frames other than DATA queued and not yet taken by the connection, now and at most so far. */
  get queuedControl(): { now: number; peak: number } {
    return this.#out.queuedControl;
  }

  /** DATA bytes written and not yet answered by a PONG, and the most the link lets be. */
  get inflight(): { now: number; cap: number } {
    return { now: this.#out.pace.inflight, cap: this.#out.pace.cap };
  }

  /** False once the link failed, closed, drains, or has used its last stream id. */
  get usable(): boolean {
    return this.#dead === null && !this.#draining && !this.exhausted;
  }

  /**
   * Every stream id was used (SPEC.md §3.2: ids are never reused): open a
   * new link for further streams and drain this one.
   */
  get exhausted(): boolean {
    return this.#highest >= (this.#opts.lastId ?? 0xffffffff);
  }

  /** The server's side: stream ids granted and not yet opened. */
  get credit(): number {
    return this.#opts.onGrant ? this.#granted - this.#highest : 0;
  }

  /** The agent's side: stream ids granted so far. */
  get granted(): number {
    return this.#granted;
  }

  /**
   * The agent's side: let the peer open `n` more streams (one GRANT frame
   * with the new highest id). Returns how many were granted: fewer near the
   * last id, 0 on a link that is not usable.
   */
  grant(n: number): number {
    if (!this.#opts.onStream || !this.usable) return 0;
    const upTo = Math.min(this.#granted + n, this.#opts.lastId ?? 0xffffffff);
    const added = upTo - this.#granted;
    if (added <= 0) return 0;
    this.#granted = upTo;
    this.send({ type: "GRANT", stream: upTo });
    return added;
  }

  /** The server's side: open a stream (OPEN is sent now; the stream may be written at once). */
  open(): Conn {
    if (!this.usable) throw new NetError("ECLOSED", "the link is closed");
    if (!this.#opts.onGrant || this.#highest >= this.#granted) {
      throw new NetError("ECLOSED", "the link has no stream granted to open");
    }
    const id = ++this.#highest;
    const s = new Stream(this, id);
    this.#streams.set(id, s);
    this.send({ type: "OPEN", stream: id });
    return s;
  }

  /**
   * No new streams; once the open ones are done, end the link gracefully
   * (what was written is delivered; the connection closes when the peer
   * closes its side, or after {@link LINGER_MS}).
   */
  drain(): void {
    this.#draining = true;
    if (this.#streams.size === 0) this.#finish();
  }

  /** Close the link now: every open stream fails (ECONNRESET). */
  close(): void {
    this.#fail(null);
  }

  get local(): Addr {
    return this.#conn.local;
  }

  get remote(): Addr {
    return this.#conn.remote;
  }

  /**
   * @internal Queue a frame other than DATA and FIN: it leaves ahead of
   * every stream's DATA (link_writer.ts). Nothing on a dead or ended link.
   */
  send(f: LinkFrame): void {
    // A drained link has ended its side: a PING's PONG (or anything) cannot follow.
    if (!this.#ending) this.#out.control(encodeLinkFrame(f));
  }

  /**
   * @internal Queue a DATA frame of stream `id` with body `body` (not
   * copied: not to be modified afterwards), after its earlier ones;
   * resolves when the stream may queue more (backpressure, as `Conn.write`),
   * rejects once the link failed.
   */
  data(id: number, body: Uint8Array): Promise<void> {
    return this.#out.data(id, body);
  }

  /** @internal Queue stream `id`'s FIN after its DATA; resolves once it is handed to the connection. */
  fin(id: number): Promise<void> {
    return this.#out.fin(id);
  }

  /**
   * @internal A stream is done in both directions, or was reset or failed
   * (`dropped`: what it has queued is dropped, its waiting write fails).
   */
  forget(id: number, dropped: Error | null = null): void {
    if (dropped) this.#out.drop(id, dropped);
    this.#streams.delete(id);
    if (this.#draining && this.#streams.size === 0) this.#finish();
  }

  /** Half-close the drained link after what is queued; the peer's EOF (or the linger timer) closes it. */
  #finish(): void {
    if (this.#ending || this.#dead) return;
    this.#ending = true;
    this.#linger = setTimeout(() => this.close(), LINGER_MS);
    this.#out.flushed().then(() => {
      this.#out.end();
      return this.#conn.end();
    }).catch(() => this.close());
  }

  async #readLoop(initial: Uint8Array | undefined): Promise<void> {
    // Bytes read with the hello are taken after the constructor returned:
    // its caller holds the link before any of its callbacks run.
    if (initial && initial.length > 0) {
      await RESOLVED;
      if (!this.#feed(initial)) return;
    }
    try {
      for (;;) {
        const chunk = await this.#conn.read();
        if (chunk === null) {
          // After our own end (a drained link) the peer's EOF is the clean finish.
          return this.#fail(
            this.#ending ? null : new NetError("ECONNRESET", "the peer closed the link"),
          );
        }
        if (!this.#feed(chunk)) return;
      }
    } catch (e) {
      this.#fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Take a chunk; false once the link failed. */
  #feed(chunk: Uint8Array): boolean {
    if (this.#dead) return false;
    if (!this.#gotFirst) {
      this.#gotFirst = true;
      const refused = this.#opts.first?.(chunk);
      if (refused) {
        this.#fail(refused);
        return false;
      }
    }
    this.#framer.push(chunk);
    try {
      let f: LinkFrame | null;
      while ((f = this.#framer.next()) !== null) (this.#deadline?.frame(), this.#dispatch(f));
    } catch (e) {
      this.#fail(e instanceof Error ? e : new Error(String(e)));
      return false;
    }
    this.#deadline?.holding();
    return this.#dead === null;
  }

  /** Bytes of a frame were held `ms` with no frame completed (SPEC.md §10.1). */
  #stalled(ms: number): void {
    if (this.#dead) return;
    this.#opts.onLimit?.("frame_timeout", ms);
    this.#fail(violation(
      "limit_exceeded",
      `Cannot take link frame: ${this.#framer.buffered} bytes held, no frame completed ` +
        `for ${ms} ms (limit=frame_timeout)`,
    ));
  }

  /** The peer does not read what its frames make us answer (SPEC.md §10.1): the link fails. */
  #overLimit(): void {
    if (this.#dead) return;
    this.#opts.onLimit?.("link_queued_control", LINK_MAX_QUEUED_CONTROL);
    this.#fail(violation(
      "limit_exceeded",
      `Cannot take link frame: ${LINK_MAX_QUEUED_CONTROL} frames answering the peer ` +
        "wait for it to read (limit=link_queued_control)",
    ));
  }

  #dispatch(f: LinkFrame): void {
    switch (f.type) {
      case "PING":
        return this.send({ type: "PONG", stream: f.stream });
      case "PONG":
        if (this.#out.pong(f.stream)) return;
        throw violation(
          "invalid_message",
          `Cannot take PONG: ${f.stream} answers no PING awaiting its PONG`,
        );
      case "GRANT":
        return this.#takeGrant(f.stream);
      case "OPEN":
        return this.#opened(f.stream);
    }
    if (f.stream > this.#highest) {
      throw violation(
        "invalid_message",
        `Cannot parse link frame: ${f.type} for stream ${f.stream}, which was never opened`,
      );
    }
    // A frame for a stream already gone (reset or closed here) crossed our RESET: drop it.
    this.#streams.get(f.stream)?.receive(f);
  }

  /** The server's side: the agent granted ids up to `upTo`. */
  #takeGrant(upTo: number): void {
    if (!this.#opts.onGrant) {
      throw violation(
        "unexpected_message",
        "Cannot take GRANT: this side does not open streams within grants",
      );
    }
    if (upTo <= this.#granted) {
      throw violation(
        "invalid_message",
        `Cannot take GRANT: id ${upTo} is not above ${this.#granted}`,
      );
    }
    const added = upTo - this.#granted;
    this.#granted = upTo;
    this.#opts.onGrant(added);
  }

  /** The agent's side: the server opened stream `id`. */
  #opened(id: number): void {
    if (!this.#opts.onStream) {
      throw violation("unexpected_message", "Cannot open link stream: this side opens them");
    }
    if (id <= this.#highest) {
      throw violation(
        "invalid_message",
        `Cannot open link stream: id ${id} is not above ${this.#highest}`,
      );
    }
    if (id > this.#granted) {
      throw violation(
        "limit_exceeded",
        `Cannot open link stream: id ${id} is beyond the ${this.#granted} granted`,
      );
    }
    this.#highest = id;
    const max = this.#opts.maxStreams ?? 65536;
    if (this.#draining || this.#streams.size >= max) {
      return this.send({ type: "RESET", stream: id }); // not dead: no new rejection
    }
    const s = new Stream(this, id);
    this.#streams.set(id, s);
    this.#opts.onStream(s);
  }

  /**
   * The link is gone: by `close()` here (`why` null), a violation, or the
   * peer's end or a failure. In the last two a stream whose peer had sent FIN
   * keeps what it received for its reader; every other stream fails.
   */
  #fail(why: Error | null): void {
    if (this.#dead) return;
    this.#dead = why ?? new NetError("ECLOSED", "the link is closed");
    this.#out.fail(this.#dead);
    clearTimeout(this.#linger);
    this.#deadline?.stop();
    this.#conn.close();
    const gone = new NetError("ECONNRESET", `link lost: ${this.#dead.message}`);
    // Closed here, or a violation: every stream fails (SPEC.md §3.2).
    const fail = (why === null && !this.#ending) || why instanceof ProtocolError;
    for (const s of [...this.#streams.values()]) fail ? s.abort(gone) : s.linkLost(gone);
    this.#streams.clear();
    try {
      this.#opts.onClose?.(why);
    } finally {
      this.#resolveClosed();
    }
  }
}

/** A link violation (SPEC.md §3.2): the link has no ERROR frame, so nothing is replied. */
function violation(
  code: "limit_exceeded" | "invalid_message" | "unexpected_message",
  text: string,
) {
  return new ProtocolError(code, text, { reply: false });
}
