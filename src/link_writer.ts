/**
 * The write side of a link (link.ts, SPEC.md §3.2): what its streams and
 * the link itself queue, and the order in which it goes to the connection.
 *
 * - Frames other than DATA and FIN (OPEN, GRANT, WINDOW, RESET, PONG) leave
 *   first, in the order they were queued.
 * - DATA and FIN wait in a queue per stream (FIN after its stream's DATA),
 *   served by deficit round-robin over bytes: each turn of a stream takes
 *   up to {@link QUANTUM} bytes (at least one frame), and a stream whose
 *   queue was empty is served before the ones that stayed busy (as fq_codel
 *   serves new flows first), with one quantum: an interactive stream's byte
 *   waits for no bulk stream's backlog.
 * - Bytes go to the connection only as it drains (a write starts while
 *   less than {@link LOW_WATER} handed to it is not yet taken) and only
 *   while fewer than the pace's cap (link_pace.ts) are in flight; a PING
 *   follows the DATA it marks. So what waits is here, where it can be
 *   ordered, not in the runtime's or the kernel's send buffer.
 * - Frames queued in one turn of the event loop go out together after it
 *   (one system call, one TLS record), or as soon as `batch` of them wait.
 *
 * A stream's write resolves while its queue holds less than
 * {@link STREAM_QUEUE} bytes and the link's less than {@link LINK_QUEUE},
 * or its own less than a {@link QUANTUM}: so a link holds at most
 * LINK_QUEUE, and a quantum and a frame per stream beyond it.
 *
 * @module
 */
import { encodeLinkFrame, LINK_HEADER_SIZE } from "./link_frame.ts";
import { LinkPace } from "./link_pace.ts";
import type { Conn } from "./net.ts";
import { IdMap } from "./idmap.ts";
import { Flow, Flows } from "./link_flows.ts";
import { NetError } from "./errors.ts";
import { afterTurn } from "./time.ts";

/** Bytes of a stream's DRR turn. */
export const QUANTUM = 16 * 1024;
/** A stream's write waits while its queue holds this many bytes. */
export const STREAM_QUEUE = 256 * 1024;
/** Every stream's write waits while the link's queues hold this many bytes. */
export const LINK_QUEUE = 1024 * 1024;
/** A write starts while less than this handed to the connection is not yet taken. */
export const LOW_WATER = 128 * 1024;
/** Bytes taken from the queues for one write at most. */
const WRITE_MAX = 256 * 1024;
/** Frames this large are written as they are, not copied into a batch. */
const COPY_LIMIT = 16 * 1024;
const RESOLVED = Promise.resolve();

/** A FIN refused because the link's control queue is full: the link is failing. */
const FULL = new NetError(
  "ECONNRESET",
  "link lost: its control queue is full (limit=link_queued_control)",
);

export class LinkWriter {
  readonly pace = new LinkPace();
  #control: Uint8Array[] = [];
  readonly #flows = new IdMap<Flow>();
  readonly #fresh = new Flows();
  readonly #busy = new Flows();
  /** Bytes in the streams' queues. */
  #queued = 0;
  /** Flows whose write waits for the link's queue to shrink. */
  #blocked: Flow[] = [];
  /** Bytes handed to the connection, not yet taken. */
  #unsent = 0;
  #scheduled = false;
  /** Frames queued since the last write began. */
  #since = 0;
  /** Frames other than DATA queued (not PINGs), in the write under way, and most ever. */
  #controlQueued = 0;
  #controlWriting = 0;
  #controlPeak = 0;
  #overflowed = false;
  #idle: (() => void)[] = [];
  #dead: Error | null = null;
  #ended = false;

  /**
   * `batch`: frames that start a write before the turn ends (Infinity
   * where Nagle's algorithm holds small writes); `onError`: a write failed.
   */
  constructor(
    readonly conn: Conn,
    readonly batch: number,
    readonly onError: (e: Error) => void,
    /**
     * Frames other than DATA it holds at most (`limit=link_queued_control`):
     * one more is not queued, and `onFull` is called once, after the turn's
     * current task, to fail the link.
     */
    readonly maxControl = Infinity,
    readonly onFull: () => void = () => {},
  ) {}

  /** Frames other than DATA queued and not yet taken by the connection, now and at most. */
  get queuedControl(): { now: number; peak: number } {
    return { now: this.controlNow, peak: this.#controlPeak };
  }

  /** Frames other than DATA queued and not yet taken (checked for every frame read: no object). */
  get controlNow(): number {
    return this.#controlQueued + this.#controlWriting;
  }

  /** Bytes of DATA and FIN queued, not yet handed to the connection. */
  get queued(): number {
    return this.#queued;
  }

  /** Queue a frame other than DATA or FIN: it leaves before every DATA. */
  control(frame: Uint8Array): void {
    if (this.#dead || this.#full()) return;
    this.#control.push(frame);
    this.#counted(1);
    this.#kick();
  }

  /**
   * Queue a DATA frame (encoded) of stream `id`; resolves when the stream
   * may queue more (rejects once the link failed or the stream was dropped).
   */
  data(id: number, frame: Uint8Array): Promise<void> {
    const f = this.#push(id, frame);
    if (!f) return Promise.reject(this.#dead);
    const p = this.#fits(f) ? RESOLVED : this.#wait(f, false);
    this.#kick(); // after the waiter is set: the write may take the frame at once
    return p;
  }

  /** Queue stream `id`'s FIN after its DATA; resolves once it is handed to the connection. */
  fin(id: number, frame: Uint8Array): Promise<void> {
    if (this.#full()) return Promise.reject(FULL);
    const f = this.#push(id, frame);
    if (!f) return Promise.reject(this.#dead);
    this.#counted(1);
    const p = this.#wait(f, true);
    this.#kick();
    return p;
  }

  /** Stream `id` was reset: its queued frames are dropped and its waiting write fails. */
  drop(id: number, why: Error): void {
    const f = this.#flows.get(id);
    if (!f) return;
    this.#flows.delete(id);
    this.#queued -= f.bytes;
    for (let i = f.head; i < f.frames.length; i++) {
      if (f.frames[i]!.length === FIN_SIZE) this.#controlQueued--;
    }
    f.frames = [];
    f.head = 0;
    f.bytes = 0;
    const w = f.waiter;
    f.waiter = null;
    w?.reject(why);
    this.#wakeBlocked();
  }

  /** A PONG arrived: false if it answers no PING awaited. */
  pong(seq: number): boolean {
    if (!this.pace.pong(seq, performance.now())) return false;
    if (this.#queued > 0) this.#kick();
    else this.pace.settle();
    return true;
  }

  /** Resolves once everything queued was handed to the connection. */
  flushed(): Promise<void> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (this.#empty()) return RESOLVED;
    return new Promise((r) => this.#idle.push(r));
  }

  /**
   * The link ends its side (a drained link, after {@link flushed}): nothing
   * more is written, not even a PING or PONG.
   */
  end(): void {
    this.#ended = true;
  }

  /** The link failed: everything queued is dropped, waiting writes fail. */
  fail(why: Error): void {
    if (this.#dead) return;
    this.#dead = why;
    this.#control = [];
    for (const f of [...this.#flows.values()]) this.drop(f.id, why);
    this.#blocked = [];
    this.#controlQueued = 0;
    this.#queued = 0;
  }

  #push(id: number, frame: Uint8Array): Flow | null {
    if (this.#dead) return null;
    let f = this.#flows.get(id);
    if (!f) this.#flows.set(id, f = new Flow(id));
    f.frames.push(frame);
    f.bytes += frame.length;
    this.#queued += frame.length;
    if (f.list === 0) {
      f.deficit = QUANTUM;
      f.list = 1;
      this.#fresh.push(f);
    }
    return f;
  }

  #wait(f: Flow, fin: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      f.waiter = { resolve, reject, fin };
      if (!fin && f.bytes < STREAM_QUEUE) this.#blocked.push(f); // waits for the link's queue
    });
  }

  /**
   * Stream `f` may queue more: its queue holds less than STREAM_QUEUE, and
   * the link's less than LINK_QUEUE or its own less than a quantum (a stream
   * that sends little is never held up by the bulk the others queued).
   */
  #fits(f: Flow): boolean {
    return f.bytes < STREAM_QUEUE && (f.bytes < QUANTUM || this.#queued < LINK_QUEUE);
  }

  /** At `maxControl`: the frame is not queued, and the link is told once. */
  #full(): boolean {
    if (this.controlNow < this.maxControl) return false;
    if (!this.#overflowed) {
      this.#overflowed = true;
      queueMicrotask(this.onFull);
    }
    return true;
  }

  #counted(n: number): void {
    this.#controlQueued += n;
    const now = this.#controlQueued + this.#controlWriting;
    if (now > this.#controlPeak) this.#controlPeak = now;
  }

  #empty(): boolean {
    return this.#unsent === 0 && this.#control.length === 0 && this.#queued === 0;
  }

  /** Something was queued: write after this turn, or now once `batch` frames wait. */
  #kick(): void {
    if (++this.#since >= this.batch) return this.#pump();
    if (this.#scheduled) return;
    this.#scheduled = true;
    afterTurn(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  /** The next DATA or FIN frame by deficit round-robin, or null when every queue is empty. */
  #next(): Uint8Array | null {
    for (;;) {
      const list = this.#fresh.head ? this.#fresh : this.#busy;
      const f = list.head;
      if (!f) return null;
      if (f.head === f.frames.length) { // emptied: leaves the lists
        list.shift();
        f.list = 0;
        f.frames = [];
        f.head = 0;
        if (this.#flows.get(f.id) === f) this.#flows.delete(f.id);
        continue;
      }
      if (f.deficit <= 0) { // its turn is used: to the back of the busy list
        list.shift();
        f.deficit += QUANTUM;
        f.list = 2;
        this.#busy.push(f);
        continue;
      }
      const frame = f.frames[f.head]!;
      f.frames[f.head++] = EMPTY;
      f.deficit -= frame.length;
      f.bytes -= frame.length;
      this.#queued -= frame.length;
      if (f.head > 64 && f.head * 2 > f.frames.length) {
        f.frames = f.frames.slice(f.head);
        f.head = 0;
      }
      this.#wake(f);
      return frame;
    }
  }

  /** Writes waiting for room in `f`'s queue or the link's. */
  #wake(f: Flow): void {
    const w = f.waiter;
    if (w && (w.fin ? f.bytes === 0 : this.#fits(f))) {
      f.waiter = null;
      w.resolve();
    }
    this.#wakeBlocked();
  }

  /** Writes waiting for room in the link's queue, once it has some. */
  #wakeBlocked(): void {
    if (this.#queued >= LINK_QUEUE || this.#blocked.length === 0) return;
    const blocked = this.#blocked;
    this.#blocked = [];
    for (const b of blocked) {
      const bw = b.waiter;
      if (bw && !bw.fin && this.#fits(b)) (b.waiter = null, bw.resolve());
    }
  }

  /** Take what may go now and hand it to the connection in one write. */
  #pump(): void {
    if (this.#ended) return;
    this.#since = 0;
    // Batches while less than LOW_WATER is unsent: the next one is ready as
    // the runtime takes the last (Node's write resolves only once drained).
    while (this.#unsent < LOW_WATER && !this.#dead) {
      if (!this.#writeBatch()) return this.#settleIdle();
    }
  }

  /** Take what may go now (up to WRITE_MAX) and hand it to the connection; false if nothing. */
  #writeBatch(): boolean {
    const parts = this.#control;
    this.#control = [];
    let control = parts.length;
    const room = Math.min(this.pace.room, WRITE_MAX);
    const now = performance.now();
    let data = 0;
    let frame: Uint8Array | null;
    // A PING follows the DATA it marks, every so many bytes (link_pace.ts):
    // their PONGs come back as the path delivers, and free room as it does.
    const ping = () => {
      const seq = this.pace.ping(now);
      if (seq) parts.push(encodeLinkFrame({ type: "PING", stream: seq }));
    };
    ping();
    while (data < room && (frame = this.#next()) !== null) {
      parts.push(frame);
      data += frame.length;
      this.pace.wrote(frame.length, now);
      if (frame.length === FIN_SIZE) control++;
      ping();
    }
    if (this.#queued === 0) this.pace.settle();
    if (parts.length === 0) return false;
    this.#controlQueued -= control;
    this.#controlWriting += control;
    const [bytes, written] = write(this.conn, parts);
    this.#unsent += bytes;
    written.then(() => {
      this.#unsent -= bytes;
      this.#controlWriting -= control;
      const more = this.#control.length > 0 || (this.#queued > 0 && this.pace.room > 0);
      if (more) this.#pump();
      else this.#settleIdle();
    }, (e) => this.onError(e instanceof Error ? e : new Error(String(e))));
    return true;
  }

  #settleIdle(): void {
    if (!this.#empty()) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const r of idle) r();
  }
}

/** A FIN frame's size (a DATA frame has a body). */
const FIN_SIZE = LINK_HEADER_SIZE;
const EMPTY = new Uint8Array(0);

/**
 * Hand `parts` to the connection: small ones in one buffer, each large one
 * (DATA of a big read) as it is, so its bytes are not copied twice. Writes
 * keep their order; the last one's promise stands for all. Returns the
 * bytes written and that promise.
 */
function write(conn: Conn, parts: Uint8Array[]): [number, Promise<void>] {
  let total = 0;
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
    last.catch(() => {}); // the last write's promise stands for all
    last = conn.write(buf);
    batch = [];
    batchBytes = 0;
  };
  for (const p of parts) {
    total += p.length;
    if (p.length >= COPY_LIMIT) {
      writeBatch();
      last.catch(() => {});
      last = conn.write(p);
    } else {
      batch.push(p);
      batchBytes += p.length;
    }
  }
  writeBatch();
  return [total, last];
}
