/**
 * src/link_writer.ts, the link's write side: frames other than DATA first,
 * a fresh stream's byte before the backlog of bulk streams, deficit
 * round-robin over bytes between busy streams, no more in flight than the
 * pace's cap, and bounded queues.
 *
 * The connection is a recording one whose writes are taken only when the
 * test says (as a socket whose kernel buffer is full): what the writer hands
 * it, and when, is then exact, with no timing in the assertions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeData, encodeLinkFrame, type LinkFrame, LinkFramer } from "../src/link_frame.ts";
import { CAP_MIN } from "../src/link_pace.ts";
import { LINK_QUEUE, LinkWriter, QUANTUM, STREAM_QUEUE } from "../src/link_writer.ts";
import type { Addr, Conn } from "../src/net.ts";
import { runtime, until } from "./helpers.ts";

const rt = runtime;
const ADDR: Addr = { host: "127.0.0.1", port: 1 };

/** A Conn that records each write; while `held`, a write is taken only at `release()`. */
class HeldConn implements Conn {
  readonly local = ADDR;
  readonly remote = ADDR;
  readonly closed = new Promise<void>(() => {});
  /** The frames of each write() call. */
  readonly writes: LinkFrame[][] = [];
  held = true;
  #framer = new LinkFramer();
  #waiting: (() => void)[] = [];

  write(chunk: Uint8Array): Promise<void> {
    this.#framer.push(chunk.slice());
    const frames: LinkFrame[] = [];
    for (let f = this.#framer.next(); f !== null; f = this.#framer.next()) frames.push(f);
    this.writes.push(frames);
    return this.held ? new Promise((r) => this.#waiting.push(r)) : Promise.resolve();
  }

  /** Every write so far is taken. */
  release(): void {
    for (const r of this.#waiting.splice(0)) r();
  }

  read(): Promise<Uint8Array | null> {
    return new Promise(() => {});
  }
  end(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
  setNoDelay(): void {}
}

/** Every frame written so far, in order. */
const all = (c: HeldConn) => c.writes.flat();
const dataBytes = (fs: LinkFrame[]) =>
  fs.reduce((n, f) => n + (f.type === "DATA" ? f.data.length + 7 : 0), 0);
/** A turn of the event loop (the writer writes a turn's frames after it). */
const turn = () => new Promise((r) => setTimeout(r, 1));

/** Answer every PING written since frame `from` (as the peer does once it read them). */
function pongAll(w: LinkWriter, c: HeldConn, from: number): number {
  const fs = all(c);
  for (let i = from; i < fs.length; i++) {
    const f = fs[i]!;
    if (f.type === "PING") assert.ok(w.pong(f.stream), `PONG ${f.stream}`);
  }
  return fs.length;
}

test(`${rt}: a control frame and a fresh stream's byte leave before megabytes of other streams' DATA`, async () => {
  const c = new HeldConn();
  const w = new LinkWriter(c, 8, (e) => assert.fail(e));
  // 8 bulk streams, 16 × 64 KiB each: 8 MiB queued.
  for (let s = 1; s <= 8; s++) {
    for (let i = 0; i < 16; i++) {
      void w.data(s, encodeData(s, new Uint8Array(65535))).catch(() => {});
    }
  }
  assert.ok(await until(() => c.writes.length > 0), "the first write");
  // No more than the cap (and one frame) went out before the peer answered a PING.
  assert.ok(dataBytes(all(c)) <= CAP_MIN + 65542, `${dataBytes(all(c))} bytes in flight`);
  assert.ok(all(c).some((f) => f.type === "PING"));
  // The socket takes a write now and then, the peer answers: every bulk stream is served.
  let seen = 0;
  for (let i = 0; i < 6; i++) {
    seen = pongAll(w, c, seen);
    c.release();
    await turn();
  }
  assert.equal(new Set(all(c).map((f) => f.stream)).size >= 8, true);
  const before = all(c).length;
  assert.ok(w.queued >= 4 * 2 ** 20, `${w.queued} queued`);
  // The socket is full. A WINDOW and one byte of stream 99 come: nothing is written yet.
  w.control(encodeLinkFrame({ type: "WINDOW", stream: 50, increment: 1 }));
  void w.data(99, encodeData(99, Uint8Array.of(0x21)));
  await turn();
  assert.equal(all(c).length, before, "written while the socket held its bytes");
  // The socket takes its bytes, the peer answers: the WINDOW leaves first, then the byte,
  // ahead of the megabytes queued before them.
  for (let i = 0; i < 20 && !all(c).slice(before).some((f) => f.stream === 99); i++) {
    c.release();
    await turn();
    seen = pongAll(w, c, seen);
  }
  const after = all(c).slice(before).filter((f) => f.type !== "PING");
  assert.deepEqual(after[0], { type: "WINDOW", stream: 50, increment: 1 });
  assert.deepEqual(after[1], { type: "DATA", stream: 99, data: Uint8Array.of(0x21) });
  assert.ok(w.queued >= 4 * 2 ** 20, `${w.queued} queued`);
  w.fail(new Error("done"));
});

test(`${rt}: busy streams share the link by deficit round-robin, within a quantum`, async () => {
  const c = new HeldConn();
  c.held = false;
  // No write before the turn ends: the three streams start together.
  const w = new LinkWriter(c, Infinity, (e) => assert.fail(e));
  const FRAME = 4096;
  const each = 64; // frames per stream: 256 KiB
  for (let s = 1; s <= 3; s++) {
    for (let i = 0; i < each; i++) {
      void w.data(s, encodeData(s, new Uint8Array(FRAME))).catch(() => {});
    }
  }
  let seen = 0;
  for (let i = 0; i < 1000 && w.queued > 0; i++) {
    await turn();
    seen = pongAll(w, c, seen);
  }
  assert.equal(w.queued, 0);
  const sent = new Map<number, number>();
  const order = all(c).filter((f) => f.type === "DATA");
  assert.equal(order.length, 3 * each);
  for (const f of order) {
    sent.set(f.stream, (sent.get(f.stream) ?? 0) + FRAME + 7);
    // While every stream has DATA left, none is ahead of another by more than a quantum and a frame.
    if ([...sent.values()].every((n) => n < each * (FRAME + 7)) && sent.size === 3) {
      const v = [...sent.values()];
      const spread = Math.max(...v) - Math.min(...v);
      assert.ok(spread <= QUANTUM + FRAME + 7, `spread ${spread}`);
    }
  }
});

test(`${rt}: a stream's write waits at its queue's limit and at the link's (not with less than a quantum queued), and resumes as it drains`, async () => {
  const c = new HeldConn();
  const w = new LinkWriter(c, Infinity, (e) => assert.fail(e));
  const frame = (s: number) => encodeData(s, new Uint8Array(65535));
  const state = (p: Promise<void>) => {
    const st = { done: false };
    void p.then(() => st.done = true, () => st.done = true);
    return st;
  };
  // Stream 1: the frame that brings its queue to STREAM_QUEUE waits.
  const early = [];
  let queued = 0;
  while (queued + 65542 < STREAM_QUEUE) (early.push(state(w.data(1, frame(1)))), queued += 65542);
  const b = state(w.data(1, frame(1)));
  await Promise.resolve();
  assert.ok(early.every((x) => x.done) && !b.done, "the write at the limit did not wait");
  assert.equal(w.queued, queued + 65542);
  // The turn's writes take them (within the cap): the write resumes.
  assert.ok(await until(() => b.done), "the write resumed once the queue drained");
  // The cap is in flight and the socket takes nothing: other streams fill the link's queue.
  const states = [];
  for (let s = 2; s < 2 + LINK_QUEUE / 65542 + 2; s++) states.push(state(w.data(s, frame(s))));
  await turn();
  // Each stream's frame is queued; the writes from the one that reached LINK_QUEUE on wait.
  const full = states.findIndex((_, k) => (k + 1) * 65542 >= LINK_QUEUE);
  assert.deepEqual(states.map((x) => x.done), states.map((_, k) => k < full));
  assert.equal(w.queued, states.length * 65542, "the socket took nothing more");
  // A stream with less than a quantum queued is not held up by the others' bulk.
  const small = state(w.data(99, encodeData(99, Uint8Array.of(1))));
  await Promise.resolve();
  assert.ok(small.done, "a 1-byte write waited for the link's queue");
  // The socket takes its bytes and the peer answers the PING: they resume.
  c.held = false;
  c.release();
  let seen = 0;
  for (let i = 0; i < 200 && states.some((x) => !x.done); i++) {
    seen = pongAll(w, c, seen);
    await turn();
  }
  assert.ok(states.every((x) => x.done), "writes resumed");
  w.fail(new Error("done"));
  assert.equal(w.queued, 0);
});

test(`${rt}: FIN leaves after its stream's DATA; a dropped stream's frames never leave`, async () => {
  const c = new HeldConn();
  c.held = false;
  const w = new LinkWriter(c, 8, (e) => assert.fail(e));
  void w.data(1, encodeData(1, Uint8Array.of(1)));
  void w.data(2, encodeData(2, Uint8Array.of(2)));
  const fin = w.fin(1, encodeLinkFrame({ type: "FIN", stream: 1 }));
  w.drop(2, new Error("reset"));
  await fin;
  await w.flushed();
  const fs = all(c).filter((f) => f.type !== "PING");
  assert.deepEqual(fs, [{ type: "DATA", stream: 1, data: Uint8Array.of(1) }, {
    type: "FIN",
    stream: 1,
  }]);
  assert.equal(w.queuedControl.now, 0);
});
