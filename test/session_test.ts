/**
 * The pool policy of one agent session (src/server/session.ts, SPEC.md §7.4),
 * without sockets: pool connections are plain objects, POOL_REQUEST is
 * recorded, the clock is the test's.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenVerifier } from "../src/auth.ts";
import { silent } from "../src/log.ts";
import { AgentSession, grantStep, type PoolParams, SEQ_WINDOW } from "../src/server/session.ts";

class Fake {
  closed = false;
  /** Whether its carrier lives (a granted id's link). */
  usable = true;
  close() {
    this.closed = true;
  }
}

function session(over: Partial<PoolParams> = {}) {
  let now = 1_000_000;
  const requests: Array<{ id: number; count: number }> = [];
  const params: PoolParams = {
    poolMin: 2,
    poolMax: 8,
    poolWaitMs: 50,
    poolIdleMs: 1000,
    openTimeoutMs: 500,
    heartbeatIntervalMs: 250,
    ...over,
  };
  const s = new AgentSession<Fake>(
    {
      id: new Uint8Array(16),
      name: "office",
      agentId: 1,
      version: 1,
      nonce: new Uint8Array(32),
      verifier: tokenVerifier("x".repeat(8)),
    },
    () => params,
    { log: silent, request: (id, count) => requests.push({ id, count }), now: () => now },
  );
  return {
    s,
    requests,
    advance: (ms: number) => {
      now += ms;
    },
    /** Requests sent, as total connections asked. */
    asked: () => requests.reduce((n, r) => n + r.count, 0),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

test("session: requested connections that never arrive expire after the open timeout", () => {
  const { s, requests, advance, asked } = session();
  s.replenish();
  assert.deepEqual(requests, [{ id: 1, count: 2 }]);
  // The agent confirms both, but they are closed before their hello is read
  // (e.g. by admission): they never arrive.
  assert.equal(s.confirm(1, 2), 2);
  assert.equal(s.outstanding, 2);
  s.tick();
  assert.equal(asked(), 2, "still counted as on their way");
  advance(501);
  s.tick();
  assert.equal(s.outstanding, 2, "expired, then asked again");
  assert.deepEqual(requests.at(-1), { id: 2, count: 2 });
  s.add(new Fake());
  s.add(new Fake());
  assert.equal(s.idle, 2);
  assert.equal(s.outstanding, 0);
  s.end();
});

test("session: arrivals count when verified; a confirmed shortfall is asked again", () => {
  const { s, requests } = session({ poolMin: 4 });
  s.replenish();
  assert.deepEqual(requests, [{ id: 1, count: 4 }]);
  assert.equal(s.add(new Fake()), "idle");
  assert.equal(s.outstanding, 3);
  s.confirm(1, 2); // one arrived, one more on its way, two never opened
  assert.deepEqual(requests.at(-1), { id: 2, count: 2 }, "the two never opened are asked again");
  assert.equal(s.outstanding, 1 + 2);
  assert.equal(s.confirm(99, 1), null, "unknown request");
  s.end();
});

test("session: a CONNECT waits for the next arrival, oldest first, or gives up after the pool wait", async () => {
  const { s } = session({ poolMin: 0 });
  const first = s.take();
  const second = s.take();
  assert.equal(s.waiting, 2);
  const a = new Fake();
  assert.equal(s.add(a), "taken");
  assert.equal(await first, a);
  assert.equal(await second, null, "nothing came within the pool wait");
  s.release();
  s.release();
  assert.equal(s.waiting, 0);
  s.end();
});

test("session: pool max, removal of a closed idle connection, end", async () => {
  const { s, asked } = session({ poolMin: 1, poolMax: 2 });
  const conns = [new Fake(), new Fake(), new Fake()];
  assert.equal(s.add(conns[0]!), "idle");
  assert.equal(s.add(conns[1]!), "idle");
  assert.equal(s.add(conns[2]!), "full");
  const before = asked();
  assert.equal(s.remove(conns[0]!), true);
  assert.equal(s.remove(conns[0]!), false);
  assert.equal(s.idle, 1);
  assert.equal(asked(), before, "one idle meets the target of 1");
  const waiting = s.take();
  const idle = await waiting;
  assert.equal(idle, conns[1]);
  s.release();
  const late = s.take();
  s.end();
  assert.equal(await late, null, "ending fails waiting CONNECTs");
  assert.equal(s.add(new Fake()), "closed");
  s.end(); // idempotent
});

test("session: the target follows opening demand and shrinks back after the idle time", async () => {
  const { s, advance, asked } = session({ poolMin: 1, poolMax: 8 });
  for (let i = 0; i < 6; i++) s.add(new Fake());
  const takes = await Promise.all(Array.from({ length: 5 }, () => s.take()));
  assert.ok(takes.every((c) => c !== null));
  assert.equal(s.target, 5, "five opening at once");
  for (let i = 0; i < 5; i++) s.release();
  await tick(); // the refill after takes runs off the critical path
  assert.equal(s.idle + s.outstanding, 5, "refilled to the target");
  assert.equal(asked(), 4, "one idle left, four more asked for");
  for (let i = 0; i < 5; i++) s.add(new Fake());
  assert.equal(s.idle, 6);
  assert.equal(s.outstanding, 0);
  // Ticks over the idle window: demand history forgets the burst.
  for (let i = 0; i < 6; i++) {
    advance(250);
    s.tick();
  }
  assert.equal(s.target, 1);
  assert.equal(s.idle, 1, "idle connections beyond the target were closed");
  assert.equal(asked(), 4, "shrinking asks for nothing");
  s.end();
});

test("session: pool sequence numbers are accepted once, within the window", () => {
  const { s } = session();
  assert.equal(s.acceptSeq(1), true);
  assert.equal(s.acceptSeq(1), false);
  assert.equal(s.acceptSeq(3), true);
  assert.equal(s.acceptSeq(2), true, "out of order is fine");
  assert.equal(s.acceptSeq(SEQ_WINDOW + 10), true);
  assert.equal(s.acceptSeq(5), false, "too far behind");
  s.end();
});

test("session: a burst asks for its waiting CONNECTs first, the refill to the grown target after", async () => {
  const { s, requests, asked } = session({ poolMin: 2, poolMax: 64, poolWaitMs: 5000 });
  s.add(new Fake());
  s.add(new Fake());
  // A burst of 10 on a pool of 2: two take idle connections, eight wait.
  const takes = Array.from({ length: 10 }, () => s.take());
  assert.equal(s.waiting, 8);
  assert.equal(s.target, 10, "the target learned the burst");
  assert.equal(asked(), 0, "asked once the turn is over");
  await tick();
  assert.deepEqual(
    requests,
    [{ id: 1, count: 8 }],
    "one request, for the waiting CONNECTs' connections only, while they wait",
  );
  for (let i = 0; i < 8; i++) assert.equal(s.add(new Fake()), "taken");
  assert.ok((await Promise.all(takes)).every((c) => c !== null));
  assert.equal(asked(), 8, "the refill waits for the last waiting CONNECT to be served");
  await tick();
  assert.deepEqual(
    requests.at(-1),
    { id: requests.length, count: 10 },
    "then refills to the target",
  );
  assert.equal(s.idle + s.outstanding, 10);
  for (let i = 0; i < 10; i++) s.release();
  s.end();
});

test("session: authenticated clients count as demand before their CONNECT (expect)", async () => {
  const { s, requests, asked } = session({ poolMin: 2, poolMax: 8 });
  s.replenish();
  s.add(new Fake());
  s.add(new Fake());
  assert.equal(asked(), 2);
  const done = [s.expect(), s.expect(), s.expect(), s.expect(), s.expect()];
  assert.equal(asked(), 2, "asked once per turn, not per client");
  await tick();
  assert.deepEqual(requests.at(-1), { id: 2, count: 3 }, "5 expected − 2 idle");
  // The CONNECTs come: each stops being expected and takes (or waits).
  const taken: Array<Fake | null> = [];
  for (const f of done) {
    f();
    f(); // twice: counted once
    s.take().then((c) => taken.push(c));
  }
  await tick();
  assert.equal(asked(), 5, "no second request for the same demand");
  for (let i = 0; i < 3; i++) s.add(new Fake());
  await tick();
  assert.equal(taken.filter((c) => c !== null).length, 5);
  for (let i = 0; i < 5; i++) s.release();
  s.end();
});

test("session: expected clients beyond pool_max do not grow the request; a closed session ignores them", async () => {
  const { s, requests } = session({ poolMin: 0, poolMax: 4 });
  const done = Array.from({ length: 50 }, () => s.expect());
  await tick();
  assert.deepEqual(requests, [{ id: 1, count: 4 }]);
  for (const f of done) f();
  s.end();
  const late = s.expect();
  await tick();
  assert.equal(requests.length, 1);
  late();
});

test("session: an expected client does not hold back the refill to the target", async () => {
  const { s, requests } = session({ poolMin: 4, poolMax: 8 });
  s.replenish();
  for (let i = 0; i < 4; i++) s.add(new Fake());
  const c = await s.take(); // idle 3, below the target of 4
  assert.ok(c);
  const done = s.expect(); // one client between its authentication and its CONNECT
  await tick();
  assert.deepEqual(requests.at(-1), { id: 2, count: 1 }, "refilled to the target of 4");
  done();
  s.release();
  s.end();
});

test("session: with a link, granted ids are topped up an eighth of pool_max at a time", async () => {
  const { s, requests } = session({ poolMin: 2, poolMax: 64 });
  assert.equal(grantStep(64), 8);
  s.linkOpened();
  s.replenish();
  assert.deepEqual(requests, [{ id: 1, count: 64 }], "a new link asks for pool_max");
  for (let i = 0; i < 64; i++) s.add(new Fake());
  // Seven streams take ids: 57 idle, a shortfall below the step, no request.
  for (let i = 0; i < 7; i++) assert.ok(s.takeNow(), "an idle id, without waiting");
  await tick();
  assert.equal(requests.length, 1, "no request for a shortfall of 7");
  const expected = s.expect(); // a client between authentication and CONNECT is no shortfall either
  await tick();
  assert.equal(requests.length, 1);
  expected();
  // The eighth take reaches the step: one request for the whole shortfall.
  assert.ok(await s.take());
  await tick();
  assert.deepEqual(requests.at(-1), { id: 2, count: 8 });
  for (let i = 0; i < 8; i++) s.add(new Fake());
  // A CONNECT that finds no idle id never waits for the step.
  const { s: s2, requests: r2 } = session({ poolMin: 2, poolMax: 64 });
  s2.linkOpened();
  assert.equal(s2.takeNow(), undefined, "nothing idle: takeNow() takes nothing");
  const waiting = s2.take();
  await tick();
  assert.deepEqual(r2, [{ id: 1, count: 1 }], "the waiting CONNECT is asked for at once");
  s2.add(new Fake());
  assert.ok(await waiting);
  for (let i = 0; i < 8; i++) s.release();
  s2.release();
  s.end();
  s2.end();
});

test("session: a link that fails takes its idle ids and the requests due on it; a drained one does not", () => {
  const { s, requests, advance } = session({ poolMin: 2, poolMax: 8 });
  s.linkOpened();
  s.linkOpened();
  assert.equal(s.target, 8, "with a link the pool rests at pool_max");
  s.replenish();
  assert.deepEqual(requests, [{ id: 1, count: 8 }]);
  const ids = Array.from({ length: 6 }, () => new Fake());
  for (const c of ids) s.add(c);
  assert.equal(s.outstanding, 2);
  // One link drains: its ids stay until taken, nothing is asked.
  s.linkClosed(false);
  assert.equal(s.idle, 6);
  assert.equal(requests.length, 1);
  assert.equal(s.target, 8, "one link is left");
  // The other fails: the ids it carried leave, the two due on it no longer count.
  for (const c of ids.slice(0, 4)) c.usable = false;
  s.linkClosed(true);
  assert.equal(s.idle, 2, "the usable ids stay");
  assert.equal(s.target, 2, "no link: back to the demand within [pool_min, pool_max]");
  assert.deepEqual(requests, [{ id: 1, count: 8 }], "at the target: no request");
  // Requests expire after a heartbeat interval now, not the open timeout.
  s.takeNow();
  s.release();
  s.replenish();
  assert.deepEqual(requests.at(-1), { id: 2, count: 1 });
  advance(300); // > heartbeatIntervalMs 250, < openTimeoutMs 500
  s.tick();
  assert.deepEqual(requests.at(-1), { id: 3, count: 1 }, "expired, so asked again");
  // A new link: requests live for the open timeout again.
  s.linkOpened();
  assert.equal(s.target, 8);
  s.end();
});
