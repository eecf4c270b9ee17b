/**
 * src/link_pace.ts, what a link keeps in flight, on a simulated path (no
 * clock, no sockets): a bottleneck of a given rate, a round trip, a sender
 * that writes whatever the cap allows and a PING after it, a peer that
 * answers each PING once the bottleneck delivered the bytes before it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CAP_MIN, LinkPace, MAX_PINGS } from "../src/link_pace.ts";
import { runtime } from "./helpers.ts";

const rt = runtime;

/**
 * `ms` milliseconds of a backlogged sender on a path of `rate` bytes/ms and
 * `rtt` ms; returns the pace and the most it ever had in flight. With
 * `jitter`, each PONG arrives up to that many ms late (in order: an event
 * loop or a relay that gets to the link late, then reads several at once).
 */
function simulate(
  rate: number,
  rtt: number,
  ms: number,
  jitter = 0,
): { pace: LinkPace; peak: number } {
  let seed = 1;
  const random = () => (seed = (seed * 48271) % 0x7fffffff) / 0x7fffffff;
  const pace = new LinkPace();
  /** PINGs on their way: [seq, when its PONG arrives]. */
  const pongs: Array<[number, number]> = [];
  /** When the bottleneck has delivered everything written so far. */
  let drained = 0;
  let peak = 0;
  for (let now = 0; now < ms; now += 0.25) {
    while (pongs.length > 0 && pongs[0]![1] <= now) {
      assert.ok(pace.pong(pongs.shift()![0], now));
    }
    // As the link's writer: frames of 64 KiB within the room, a PING after each when due.
    const ping = () => {
      const seq = pace.ping(now);
      const at = Math.max(drained, now) + rtt + jitter * random();
      if (seq) pongs.push([seq, Math.max(at, pongs.at(-1)?.[1] ?? 0)]);
    };
    ping();
    for (let room = pace.room; room > 0; room -= 65542) {
      pace.wrote(Math.min(room, 65542), now);
      drained = Math.max(drained, now) + Math.min(room, 65542) / rate;
      ping();
    }
    peak = Math.max(peak, pace.inflight);
  }
  return { pace, peak };
}

test(`${rt}: the cap grows to 1.25 × the bandwidth-delay product and stays there past the round trip's expiry`, () => {
  // 40 MiB/s, 10 ms: a BDP of 400 KiB, above the starting cap.
  const rate = 40 * 2 ** 20 / 1000;
  const bdp = rate * 10;
  for (const ms of [3000, 25_000]) {
    const { pace, peak } = simulate(rate, 10, ms);
    // The round trip of a PING includes the 64 KiB frame before it at the bottleneck (1.6 ms).
    const path = bdp * 11.6 / 10;
    assert.ok(
      pace.cap >= 1.1 * path && pace.cap <= 1.35 * path,
      `${ms} ms: cap ${pace.cap}, BDP ${bdp}`,
    );
    assert.ok(peak <= 1.35 * path, `${ms} ms: peak ${peak}`);
    assert.ok(pace.rtt >= 10 && pace.rtt <= 12, `${ms} ms: rtt ${pace.rtt}`);
  }
});

test(`${rt}: PONGs that arrive late and then together do not make the path look faster`, () => {
  // A PONG late by a few ms and the next one on time: the bytes between
  // them look delivered in less time than the path took. As a rate over the
  // acknowledgements' interval alone, the highest of a second's samples was
  // up to 1.5× the path's (issue 26: 45–60 MiB/s at a 40 MiB/s bottleneck, a
  // third of the cap waiting in the bottleneck's queue); over the longer of
  // that and the interval in which those bytes were written, it is not.
  const rate = 40 * 2 ** 20 / 1000;
  for (const jitter of [2, 4]) {
    const path = rate * (11.6 + jitter / 2);
    const { pace, peak } = simulate(rate, 10, 3000, jitter);
    assert.ok(pace.cap <= 1.3 * path, `jitter ${jitter} ms: cap ${pace.cap}, path ${path}`);
    assert.ok(peak <= 1.3 * path, `jitter ${jitter} ms: peak ${peak}`);
  }
});

test(`${rt}: a small bandwidth-delay product keeps the least cap; a short round trip counts as 4 ms`, () => {
  // 1 MiB/s over 20 ms: 20 KiB, below CAP_MIN.
  assert.equal(simulate(2 ** 20 / 1000, 20, 2000).pace.cap, CAP_MIN);
  // 1 GiB/s over 0.1 ms: taken as 4 ms, so 1.25 × 4 MiB.
  const fast = simulate(2 ** 30 / 1000, 0.1, 500).pace;
  assert.ok(fast.cap >= 4.5 * 2 ** 20 && fast.cap <= 6 * 2 ** 20, `cap ${fast.cap}`);
});

test(`${rt}: PINGs: none for less than 16 KiB of unmarked DATA, at most ${MAX_PINGS} awaited, PONGs in order only`, () => {
  const pace = new LinkPace();
  assert.equal(pace.ping(0), 0, "nothing written");
  pace.wrote(100, 0);
  assert.equal(pace.ping(0), 0, "a few bytes are not marked");
  pace.settle();
  assert.equal(pace.inflight, 0, "and count as delivered once the link has nothing queued");
  pace.wrote(100, 0);
  pace.wrote(16 * 1024, 0);
  const first = pace.ping(0);
  assert.ok(first > 0, "16 KiB and more are marked");
  pace.settle();
  assert.equal(pace.inflight, 16 * 1024 + 100, "not while a PING is awaited");
  pace.wrote(100, 0);
  assert.equal(pace.ping(0), 0, "too little since the last PING");
  const seqs = [first];
  for (let i = 0; i < 100; i++) {
    pace.wrote(1 << 20, 0);
    const s = pace.ping(0);
    if (s) seqs.push(s);
  }
  assert.equal(seqs.length, MAX_PINGS);
  assert.equal(pace.pong(seqs[1]!, 1), false, "not the oldest");
  assert.equal(pace.pong(seqs[0]!, 1), true);
  assert.equal(pace.inflight, 100 * (1 << 20) + 100);
  for (const s of seqs.slice(1)) assert.ok(pace.pong(s, 2));
  assert.equal(pace.pong(seqs[0]!, 3), false, "answered already");
});
