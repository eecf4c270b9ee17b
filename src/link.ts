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
import { afterTurn } from "./time.ts";

export { LINK_WINDOW };
export type { LinkOptions };
/** Bytes a link may hold for the connection before `send` waits for them. */
const LINK_HWM = 256 * 1024;
/** Frames that make a write before the turn ends (see `Link.send`). */
const LINK_BATCH = 8;
/** Frames this large are written as they are, not copied into a batch. */
const COPY_LIMIT = 16 * 1024;
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
  /** Highest stream id opened on this link (by either side's count). */
  #highest = 0;
  #draining = false;
  /** Drained and half-closed: waiting for the peer's EOF. */
  #ending = false;
  #linger: ReturnType<typeof setTimeout> | undefined;
  #dead: Error | null = null;
  #gotFirst = false;
  /** The deadline from a frame's first byte, if `frameTimeoutMs`. */
  readonly #deadline: FrameDeadline | null;
  /** The highest stream id granted (sent by the acceptor, received by the opener). */
  #granted = 0;
  /** Frames waiting for this turn's write, and that write. */
  #out: Uint8Array[] = [];
  #flushed: Promise<void> = RESOLVED;
  /** A flush after this turn is scheduled. */
  #flushing = false;
  /** Frames that make a write before the turn ends: none where Nagle holds small writes. */
  readonly #batch: number;
  /** Bytes queued by `send` and not yet taken by the connection. */
  #pending = 0;
  /** Frames other than DATA in `#out`, in writes not yet taken, and most ever waiting. */
  #controlOut = 0;
  #controlWriting = 0;
  #controlPeak = 0;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(conn: Conn, opts: LinkOptions = {}, initial?: Uint8Array) {
    this.#conn = conn;
    this.#batch = conn.nagle ? Infinity : LINK_BATCH;
    this.#opts = opts;
    const ms = opts.frameTimeoutMs;
    this.#deadline = ms
      ? new FrameDeadline(ms, () => this.#framer.buffered, () => this.#stalled(ms))
      : null;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    void this.#readLoop(initial);
  }

  /** Streams opened on this link so far (by either side). */
  get opened(): number {
    return this.#highest;
  }

  /** Streams open now. */
  get streams(): number {
    return this.#streams.size;
  }

  /** Frames other than DATA queued and not yet taken by the connection, now and at most so far. */
  get queuedControl(): { now: number; peak: number } {
    return { now: this.#controlOut + this.#controlWriting, peak: this.#controlPeak };
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

  /** Opener: stream ids granted and not yet opened. */
  get credit(): number {
    return this.#opts.onGrant ? this.#granted - this.#highest : 0;
  }

  /** Acceptor: stream ids granted so far. */
  get granted(): number {
    return this.#granted;
  }

  /**
   * Acceptor: let the peer open `n` more streams (one GRANT frame
   * with the new highest id). Returns how many were granted: fewer near the
   * last id, 0 on a link that is not usable.
   */
  grant(n: number): number {
    if (!this.#opts.granting || !this.usable) return 0;
    const upTo = Math.min(this.#granted + n, this.#opts.lastId ?? 0xffffffff);
    const added = upTo - this.#granted;
    if (added <= 0) return 0;
    this.#granted = upTo;
    this.send({ type: "GRANT", stream: upTo }).catch(() => {}); // a dead link fails its streams
    return added;
  }

  /** Open a stream (OPEN is sent now; the stream may be written at once). */
  open(): Conn {
    if (!this.usable) throw new NetError("ECLOSED", "the link is closed");
    if (this.#opts.onGrant && this.#highest >= this.#granted) {
      throw new NetError("ECLOSED", "the link has no stream granted to open");
    }
    const id = ++this.#highest;
    const s = new Stream(this, id);
    this.#streams.set(id, s);
    this.send({ type: "OPEN", stream: id }).catch(() => {}); // a dead link fails the stream
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
   * @internal Queue a frame on the link. Frames queued in one turn of the
   * event loop go out together after it (a burst of OPENs, or the frames of
   * many streams, cost one syscall and over TLS one record, not one each),
   * or as soon as {@link LINK_BATCH} of them wait: the peer starts on those
   * while this turn goes on (under load a turn serves dozens of streams, and
   * holding all their frames to its end made each side wait for the other's
   * whole turn). Not on a connection that keeps Nagle's algorithm
   * (`Conn.nagle`): there the second write of a turn waited a round trip for
   * the first one's ACK.
   * Resolves at once while the link holds less than {@link LINK_HWM} not yet
   * taken by the connection, else when this turn's frames are taken
   * (backpressure, as `Conn.write`).
   */
  send(f: LinkFrame | Uint8Array): Promise<void> {
    if (this.#dead) return Promise.reject(new NetError("ECLOSED", "the link is closed"));
    const bytes = f instanceof Uint8Array ? f : encodeLinkFrame(f); // DATA comes encoded
    if (bytes !== f && ++this.#controlOut + this.#controlWriting > this.#controlPeak) {
      this.#controlPeak++;
    }
    this.#out.push(bytes);
    this.#pending += bytes.length;
    let flushed: Promise<void> | null = null;
    if (this.#out.length >= this.#batch) flushed = this.#flush();
    else if (!this.#flushing) {
      this.#flushing = true;
      flushed = new Promise<void>((r) => afterTurn(r)).then(() => {
        this.#flushing = false;
        return this.#flush();
      });
    }
    if (flushed) {
      // A failed write fails the link (and so every stream); callers that waited see it too.
      flushed.catch((e) => this.#fail(e instanceof Error ? e : new Error(String(e))));
      this.#flushed = flushed;
    }
    return this.#pending < LINK_HWM ? RESOLVED : this.#flushed;
  }

  /**
   * Hand this turn's frames to the connection: small ones in one buffer,
   * each large one (DATA of a big read) as it is, so its bytes are not copied
   * twice. Writes keep their order; the last one's promise stands for all.
   */
  #flush(): Promise<void> {
    const parts = this.#out;
    this.#out = [];
    let total = 0;
    for (const p of parts) total += p.length;
    const control = this.#controlOut;
    this.#controlOut = 0;
    this.#controlWriting += control;
    const settle = () => {
      this.#pending -= total;
      this.#controlWriting -= control;
    };
    if (this.#dead) {
      settle();
      return Promise.reject(new NetError("ECLOSED", "the link is closed"));
    }
    let last: Promise<void> = RESOLVED;
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const writeBatch = () => {
      if (batch.length === 0) return;
      let buf = batch[0]!;
      if (batch.length > 1) {
        buf = new Uint8Array(batchBytes);
        let at = 0;
        for (const p of batch) (buf.set(p, at), at += p.length);
      }
      last = this.#conn.write(buf);
      batch = [];
      batchBytes = 0;
    };
    for (const p of parts) {
      if (p.length >= COPY_LIMIT) {
        writeBatch();
        last = this.#conn.write(p);
      } else {
        batch.push(p);
        batchBytes += p.length;
      }
    }
    writeBatch();
    return last.finally(settle);
  }

  /** @internal A stream is done in both directions or was reset: forget it. */
  forget(id: number): void {
    this.#streams.delete(id);
    if (this.#draining && this.#streams.size === 0) this.#finish();
  }

  /** Half-close the drained link after what is queued; the peer's EOF (or the linger timer) closes it. */
  #finish(): void {
    if (this.#ending || this.#dead) return;
    this.#ending = true;
    this.#linger = setTimeout(() => this.close(), LINGER_MS);
    this.#flushed.then(() => this.#conn.end()).catch(() => this.close());
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

  #dispatch(f: LinkFrame): void {
    if (this.#controlOut + this.#controlWriting > LINK_MAX_QUEUED_CONTROL) {
      this.#opts.onLimit?.("link_queued_control", LINK_MAX_QUEUED_CONTROL);
      throw violation(
        "limit_exceeded",
        `Cannot take link frame: ${LINK_MAX_QUEUED_CONTROL} frames answering the peer ` +
          "wait for it to read (limit=link_queued_control)",
      );
    }
    if (f.type === "GRANT") {
      if (!this.#opts.onGrant) {
        throw violation(
          "unexpected_message",
          "Cannot take GRANT: this side does not open streams within grants",
        );
      }
      if (f.stream <= this.#granted) {
        throw violation(
          "invalid_message",
          `Cannot take GRANT: id ${f.stream} is not above ${this.#granted}`,
        );
      }
      const added = f.stream - this.#granted;
      this.#granted = f.stream;
      this.#opts.onGrant(added);
      return;
    }
    if (f.type === "OPEN") {
      if (!this.#opts.onStream) {
        throw violation("unexpected_message", "Cannot open link stream: this side opens them");
      }
      if (f.stream <= this.#highest) {
        throw violation(
          "invalid_message",
          `Cannot open link stream: id ${f.stream} is not above ${this.#highest}`,
        );
      }
      if (this.#opts.granting && f.stream > this.#granted) {
        throw violation(
          "limit_exceeded",
          `Cannot open link stream: id ${f.stream} is beyond the ${this.#granted} granted`,
        );
      }
      this.#highest = f.stream;
      const max = this.#opts.maxStreams ?? 65536;
      if (this.#draining || this.#streams.size >= max) {
        return void this.send({ type: "RESET", stream: f.stream }); // not dead: no new rejection
      }
      const s = new Stream(this, f.stream);
      this.#streams.set(f.stream, s);
      this.#opts.onStream(s);
      return;
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

  /**
   * The link is gone: by `close()` here (`why` null), a violation, or the
   * peer's end or a failure. In the last two a stream whose peer had sent FIN
   * keeps what it received for its reader; every other stream fails.
   */
  #fail(why: Error | null): void {
    if (this.#dead) return;
    this.#dead = why ?? new NetError("ECLOSED", "the link is closed");
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
