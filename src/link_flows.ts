/**
 * The link writer's queues (link_writer.ts): one {@link Flow} per stream
 * with DATA or FIN waiting, in lists ({@link Flows}) linked through the
 * flows themselves, so that moving a stream between the fresh and the busy
 * list allocates nothing.
 *
 * @module
 */

export type Waiter = { resolve: () => void; reject: (e: Error) => void };

/** One stream's queue of DATA and FIN frames. */
export class Flow {
  frames: Uint8Array[] = [];
  head = 0;
  bytes = 0;
  deficit = 0;
  /** In the fresh list (1), the busy list (2) or neither (0). */
  list: 0 | 1 | 2 = 0;
  next: Flow | null = null;
  /** A write waiting for room (`fin`: for the FIN to be taken). */
  waiter: (Waiter & { fin: boolean }) | null = null;
  constructor(readonly id: number) {}
}

/** A list of flows in order (linked through `Flow.next`). */
export class Flows {
  head: Flow | null = null;
  tail: Flow | null = null;
  push(f: Flow): void {
    f.next = null;
    if (this.tail) this.tail.next = f;
    else this.head = f;
    this.tail = f;
  }
  shift(): Flow | null {
    const f = this.head;
    if (!f) return null;
    this.head = f.next;
    if (!this.head) this.tail = null;
    f.next = null;
    return f;
  }
}
