/**
 * The data link of protocol versions 3 and 4 (SPEC.md §2.4, §3.2): many pool
 * streams over one connection. The agent opens streams ({@link Link.open});
 * the server is handed each one the agent opens (`onStream`); at version 4
 * the roles turn: the agent grants stream ids ({@link Link.grant}) and the
 * server opens the streams. A stream is a
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
import {
  encodeData,
  encodeLinkFrame,
  LINK_MAX_DATA,
  type LinkFrame,
  LinkFramer,
} from "./link_frame.ts";
import type { Addr, Conn } from "./net.ts";
import { IdMap } from "./idmap.ts";
import { afterTurn } from "./time.ts";

/** Each direction of each stream starts with this window (SPEC.md §3.2). */
export const LINK_WINDOW = 1 << 20;
/** Bytes a link may hold for the connection before `send` waits for them. */
const LINK_HWM = 256 * 1024;
/** Frames that make a write before the turn ends (see `Link.send`). */
const LINK_BATCH = 8;
/** Frames this large are written as they are, not copied into a batch. */
const COPY_LIMIT = 16 * 1024;
const RESOLVED = Promise.resolve();

/** How long a drained link waits for the peer to close its side. */
const LINGER_MS = 5000;
/** A receiver grants window once its reader has consumed this much. */
const GRANT_AT = LINK_WINDOW / 4;

export interface LinkOptions {
  /** Called with each stream the peer opens; absent = the peer may not open streams. */
  onStream?: (stream: Conn) => void;
  /** Streams open at once that the peer may have; an OPEN beyond it is RESET. Default 65536. */
  maxStreams?: number;
  /**
   * Inspects the first bytes received; an error it returns fails the link
   * (the agent uses it to read a server's ERROR frame refusing the link).
   */
  first?: (chunk: Uint8Array) => Error | null;
  /** Called once when the link fails or closes, with the reason (null after `close()`). */
  onClose?: (why: Error | null) => void;
  /** The last stream id this side may open (default 2³²−1; tests lower it). */
  lastId?: number;
  /**
   * Version 4, the side that accepts streams (`onStream`): the peer may open
   * only the stream ids this side granted ({@link Link.grant}); an OPEN
   * beyond them is a link violation.
   */
  granting?: boolean;
  /**
   * Version 4, the side that opens streams: called with each GRANT's number
   * of new stream ids; {@link Link.open} stays within them. Absent: a GRANT
   * is a link violation.
   */
  onGrant?: (added: number) => void;
}

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
  /** Version 4: the highest stream id granted (sent by the acceptor, received by the opener). */
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
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(conn: Conn, opts: LinkOptions = {}, initial?: Uint8Array) {
    this.#conn = conn;
    this.#batch = conn.nagle ? Infinity : LINK_BATCH;
    this.#opts = opts;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    if (initial && initial.length > 0) {
      if (!this.#feed(initial)) return;
    }
    void this.#readLoop();
  }

  /** Streams opened on this link so far (by either side). */
  get opened(): number {
    return this.#highest;
  }

  /** Streams open now. */
  get streams(): number {
    return this.#streams.size;
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

  /** Version 4 opener: stream ids granted and not yet opened. */
  get credit(): number {
    return this.#opts.onGrant ? this.#granted - this.#highest : 0;
  }

  /** Version 4 acceptor: stream ids granted so far. */
  get granted(): number {
    return this.#granted;
  }

  /**
   * Version 4 acceptor: let the peer open `n` more streams (one GRANT frame
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
    const bytes = f instanceof Uint8Array ? f : encodeLinkFrame(f);
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
    const settle = () => void (this.#pending -= total);
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

  async #readLoop(): Promise<void> {
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
      while ((f = this.#framer.next()) !== null) this.#dispatch(f);
    } catch (e) {
      this.#fail(e instanceof Error ? e : new Error(String(e)));
      return false;
    }
    return this.#dead === null;
  }

  #dispatch(f: LinkFrame): void {
    if (f.type === "GRANT") {
      if (!this.#opts.onGrant) {
        throw new ProtocolError(
          "unexpected_message",
          "Cannot take GRANT: this side does not open streams within grants",
          { reply: false },
        );
      }
      if (f.stream <= this.#granted) {
        throw new ProtocolError(
          "invalid_message",
          `Cannot take GRANT: id ${f.stream} is not above ${this.#granted}`,
          { reply: false },
        );
      }
      const added = f.stream - this.#granted;
      this.#granted = f.stream;
      this.#opts.onGrant(added);
      return;
    }
    if (f.type === "OPEN") {
      if (!this.#opts.onStream) {
        throw new ProtocolError(
          "unexpected_message",
          "Cannot open link stream: this side opens them",
          {
            reply: false,
          },
        );
      }
      if (f.stream <= this.#highest) {
        throw new ProtocolError(
          "invalid_message",
          `Cannot open link stream: id ${f.stream} is not above ${this.#highest}`,
          { reply: false },
        );
      }
      if (this.#opts.granting && f.stream > this.#granted) {
        throw new ProtocolError(
          "limit_exceeded",
          `Cannot open link stream: id ${f.stream} is beyond the ${this.#granted} granted`,
          { reply: false },
        );
      }
      this.#highest = f.stream;
      if (this.#draining || this.#streams.size >= (this.#opts.maxStreams ?? 65536)) {
        this.send({ type: "RESET", stream: f.stream }).catch(() => {});
        return;
      }
      const s = new Stream(this, f.stream);
      this.#streams.set(f.stream, s);
      this.#opts.onStream(s);
      return;
    }
    if (f.stream > this.#highest) {
      throw new ProtocolError(
        "invalid_message",
        `Cannot parse link frame: ${f.type} for stream ${f.stream}, which was never opened`,
        { reply: false },
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

type Waiter = { resolve: (c: Uint8Array | null) => void; reject: (e: Error) => void };

/** One stream of a link: a {@link Conn}. */
class Stream implements Conn {
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #reader: Waiter | null = null;
  /** The peer sent FIN. */
  #eof = false;
  /** Bytes the peer may still send before it needs more window. */
  #allowed = LINK_WINDOW;
  /** Bytes read by our reader and not yet granted back. */
  #consumed = 0;
  /** Bytes we may still send. */
  #window = LINK_WINDOW;
  #windowWaiter: (() => void) | null = null;
  #writing: Promise<void> = Promise.resolve();
  #ended: Promise<void> | null = null;
  #finSent = false;
  /** Closed here, reset, or the link failed. */
  #done = false;
  #error: Error | null = null;
  /** The link is gone after the peer's FIN: writes fail with this, reads drain the queue. */
  #lost: Error | null = null;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(readonly link: Link, readonly id: number) {
    this.closed = new Promise((r) => this.#resolveClosed = r);
  }

  get local(): Addr {
    return this.link.local;
  }

  get remote(): Addr {
    return this.link.remote;
  }

  setNoDelay(): void {}

  read(): Promise<Uint8Array | null> {
    const chunk = this.#queue.shift();
    if (chunk) {
      this.#queued -= chunk.length;
      this.#grant(chunk.length);
      this.#settleIfDone();
      return Promise.resolve(chunk);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#eof || this.#done) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.#reader = { resolve, reject });
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#done || this.#ended || this.#lost) {
      return Promise.reject(this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed"));
    }
    const p = this.#writing.then(() => this.#send(chunk));
    this.#writing = p.catch(() => {});
    return p;
  }

  end(): Promise<void> {
    if ((this.#done || this.#lost) && !this.#ended) {
      return Promise.reject(this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed"));
    }
    this.#ended ??= this.#writing.then(async () => {
      if (this.#done || this.#lost) {
        throw this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed");
      }
      this.#finSent = true;
      await this.link.send({ type: "FIN", stream: this.id });
      this.#settleIfDone();
    });
    return this.#ended;
  }

  close(): void {
    if (this.#done) return;
    this.link.send({ type: "RESET", stream: this.id }).catch(() => {});
    this.abort(null);
  }

  /**
   * @internal The link is gone. After the peer's FIN nothing more was coming:
   * the reader still gets what was received, then EOF; writes fail. Else as
   * {@link abort}.
   */
  linkLost(error: Error): void {
    if (this.#done) return;
    if (!this.#eof) return this.abort(error);
    this.#lost = error;
    this.#windowWaiter?.();
    this.#settleIfDone();
  }

  /** @internal Fail or close locally: wake everyone, forget the stream. */
  abort(error: Error | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#queue.length = 0;
    this.#queued = 0;
    const r = this.#reader;
    this.#reader = null;
    if (r) error ? r.reject(error) : r.resolve(null);
    this.#windowWaiter?.();
    this.link.forget(this.id);
    this.#resolveClosed();
  }

  /** @internal A frame for this stream arrived. */
  receive(f: LinkFrame): void {
    if (this.#done) return;
    switch (f.type) {
      case "DATA": {
        if (this.#eof) {
          throw new ProtocolError("invalid_message", `Link stream ${this.id}: DATA after FIN`, {
            reply: false,
          });
        }
        if (f.data.length > this.#allowed) {
          throw new ProtocolError(
            "invalid_message",
            `Link stream ${this.id}: ${f.data.length} bytes exceed the window of ${this.#allowed}`,
            { reply: false },
          );
        }
        this.#allowed -= f.data.length;
        const r = this.#reader;
        if (r) {
          this.#reader = null;
          this.#grant(f.data.length);
          r.resolve(f.data);
        } else {
          this.#queue.push(f.data);
          this.#queued += f.data.length;
        }
        return;
      }
      case "WINDOW":
        this.#window = Math.min(Number.MAX_SAFE_INTEGER, this.#window + f.increment);
        this.#windowWaiter?.();
        return;
      case "FIN": {
        this.#eof = true;
        const r = this.#reader;
        this.#reader = null;
        r?.resolve(null);
        this.#settleIfDone();
        return;
      }
      case "RESET":
        return this.abort(new NetError("ECONNRESET", "stream reset by the peer"));
      default:
        throw new ProtocolError("unexpected_message", `${f.type} on an open link stream`, {
          reply: false,
        });
    }
  }

  /** Bytes buffered and not yet read. */
  get buffered(): number {
    return this.#queued;
  }

  async #send(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.#done || this.#lost) {
        throw this.#lost ?? this.#error ?? new NetError("ECLOSED", "stream closed");
      }
      if (this.#window === 0) {
        await new Promise<void>((r) => this.#windowWaiter = r);
        this.#windowWaiter = null;
        continue;
      }
      // Even pieces: 65 536 bytes go as 2 × 32 768, not 65 535 + 1.
      const left = chunk.length - off;
      const pieces = Math.ceil(left / LINK_MAX_DATA);
      const n = Math.min(Math.ceil(left / pieces), this.#window);
      this.#window -= n;
      const piece = n === chunk.length ? chunk : chunk.subarray(off, off + n);
      await this.link.send(encodeData(this.id, piece));
      off += n;
    }
  }

  /** Our reader consumed `n` bytes: grant them back once enough has gathered. */
  #grant(n: number): void {
    this.#consumed += n;
    if (this.#consumed < GRANT_AT || this.#eof) return;
    const increment = this.#consumed;
    this.#consumed = 0;
    this.#allowed += increment;
    this.link.send({ type: "WINDOW", stream: this.id, increment }).catch(() => {});
  }

  /** Both directions ended and everything was read: the stream is done. */
  #settleIfDone(): void {
    if ((this.#finSent || this.#lost) && this.#eof && this.#queue.length === 0 && !this.#done) {
      this.#done = true;
      this.link.forget(this.id);
      this.#resolveClosed();
    }
  }
}
