/**
 * The audit log's way to the PostgreSQL store (store_pg.ts): lines wait in
 * a bounded queue, off the stream path, and go in one statement per batch,
 * every {@link AUDIT_FLUSH_MS} or as soon as {@link AUDIT_BATCH} lines
 * wait. While the store is down they keep waiting; once the queue holds
 * `store.audit_queue` lines, new ones are dropped and counted
 * (`burrow_audit_dropped_total`), logged once per outage with
 * `limit=audit_queue`. The log keeps every line either way.
 *
 * @module
 */
import type { AuditLine } from "./store.ts";

/** How often the queue is written, ms. */
export const AUDIT_FLUSH_MS = 1000;
/** Lines per statement; this many waiting are written at once. */
export const AUDIT_BATCH = 500;

/** A bounded queue of audit lines written in batches; see the module doc. */
export class AuditQueue {
  #lines: AuditLine[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> | null = null;
  /** Whether a drop was reported since the queue last drained. */
  #reported = false;

  constructor(
    readonly max: number,
    /** Writes one batch; throws when the store is down (the lines are kept). */
    readonly write: (lines: AuditLine[]) => Promise<void>,
    /** Whether a write may be tried now (the store is up). */
    readonly ready: () => boolean,
    /** Told of each dropped line, and whether it is the first since the queue drained. */
    readonly dropped: (first: boolean) => void,
  ) {}

  /** Lines waiting. */
  get size(): number {
    return this.#lines.length;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), AUDIT_FLUSH_MS);
  }

  /** Queue `line`; dropped (and counted) when the queue is full. Never waits. */
  push(line: AuditLine): void {
    if (this.#lines.length >= this.max) {
      this.dropped(!this.#reported);
      this.#reported = true;
      return;
    }
    this.#lines.push(line);
    if (this.#lines.length >= AUDIT_BATCH && !this.#soon) {
      this.#soon = setTimeout(() => {
        this.#soon = undefined;
        void this.flush();
      }, 0);
    }
  }

  /** Write what waits, batch by batch, while the store takes it; never throws. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => this.#flushing = null);
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#lines.length > 0 && this.ready()) {
      const batch = this.#lines.slice(0, AUDIT_BATCH);
      try {
        await this.write(batch);
      } catch {
        return; // kept for the next try; the store logs its outage
      }
      this.#lines.splice(0, batch.length);
    }
    if (this.#lines.length === 0) this.#reported = false;
  }

  /** Stop the timers; write what waits, for at most `ms`. */
  async stop(ms: number): Promise<void> {
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    this.#timer = this.#soon = undefined;
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.flush(), new Promise((r) => t = setTimeout(r, ms))]);
    clearTimeout(t);
  }
}
