/**
 * A table for what comes and goes with every stream (link streams, live
 * streams, open connections), where a `Map` or `Set` costs its program
 * dearly at garbage collection.
 *
 * Under a steady churn of entries (a few dozen live, one added and one
 * deleted per stream), every young collection marked, and so promoted to the
 * old generation, nearly everything the table had held since the previous
 * collection, deleted or not, with the whole object graph of each ended
 * stream behind it; an old-generation collection freed it all again. Both
 * engines do it; a likely cause is that a `Map` rehashes every few changes
 * and leaves each old table linked to the next one, for live iterators to
 * follow. Measured under the connection-rate load (32 clients): the Bun
 * server promoted 3.8 KiB per stream and marked 2.4 MiB per young
 * collection, nearly as much as a full one (3.8 MiB); with this table
 * 0.5 KiB and 0.3 MiB, and its GC pauses fell from 3.6 % to 2.0 % of the
 * time. A Node server's scavenges promoted 5.5 against 0.9 KiB per stream
 * and paused 5.9 % against 2.9 % of the time. A Bun echo server with 8 KiB
 * per connection kept in a `Map` by id promoted 7.6 KiB per connection,
 * with this table 0.1.
 *
 * An `IdMap` keeps its entries as the integer-keyed properties of an object
 * without prototype: a deleted entry is gone. Ids are integers from 0 to
 * 2^32 − 1; values are objects (undefined means "absent"). Besides
 * `set(id, value)` with ids of the caller's, {@link IdMap.add} hands out ids
 * of its own, for a table used as a set.
 *
 * @module
 */
export class IdMap<V extends object> {
  #entries: Record<number, V> = Object.create(null);
  #size = 0;
  #next: number;

  /** `first`: the id {@link add} tries first (then upwards, wrapping after 2^32 − 1). */
  constructor(first = 0) {
    this.#next = first >>> 0;
  }

  /** Entries in the table. */
  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    return this.#entries[id];
  }

  has(id: number): boolean {
    return this.#entries[id] !== undefined;
  }

  set(id: number, value: V): this {
    if (this.#entries[id] === undefined) this.#size++;
    this.#entries[id] = value;
    return this;
  }

  /** Add `value` under an id not in use, and return that id. */
  add(value: V): number {
    let id = this.#next;
    while (this.#entries[id] !== undefined) id = (id + 1) >>> 0;
    this.#next = (id + 1) >>> 0;
    this.#entries[id] = value; // free: the loop stopped on it
    this.#size++;
    return id;
  }

  delete(id: number): boolean {
    if (this.#entries[id] === undefined) return false;
    delete this.#entries[id];
    this.#size--;
    return true;
  }

  clear(): void {
    this.#entries = Object.create(null);
    this.#size = 0;
  }

  /** Ids in ascending order. */
  *keys(): IterableIterator<number> {
    for (const k in this.#entries) yield Number(k);
  }

  /** Values in ascending order of their ids. */
  *values(): IterableIterator<V> {
    for (const k in this.#entries) yield this.#entries[k as unknown as number]!;
  }
}
