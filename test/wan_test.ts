/**
 * The agent under bursts at distance (issue 9): it serves POOL_REQUESTs
 * concurrently, answers PING while pool dials are pending, and confirms each
 * request when its own dials finish. A fake server on 127.0.0.1 drives the
 * agent; pool dials are held at a gate (a wrapper of this runtime's Net), so
 * "pending" is a state the test controls, not a timing. No assertion here is
 * on speed: each is on the order of events.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Agent } from "../src/agent.ts";
import { tokenCredential } from "../src/auth.ts";
import type { MessageOf } from "../src/messages.ts";
import type { Conn, DialOptions, Net } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import { Wire } from "../src/wire.ts";
import { acceptAgent, AGENT_TOKEN, memoryLogger, runtime, runtimeNet } from "./helpers.ts";

const rt = runtime;

/** `net`, with every dial after the first (the control connection) held until `open()`. */
function gatedNet(net: Net) {
  let dials = 0;
  let waiting = 0;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const wrapped: Net = {
    runtime: net.runtime,
    listen: (o) => net.listen(o),
    lookup: (h) => net.lookup(h),
    bindUdp: (o) => net.bindUdp(o),
    async dial(o: DialOptions): Promise<Conn> {
      if (dials++ > 0) {
        waiting++;
        await gate;
        waiting--;
      }
      return await net.dial(o);
    },
  };
  return {
    net: wrapped,
    open: () => release(),
    get waiting() {
      return waiting;
    },
  };
}

/** Resolves when `cond()` holds, checking every 5 ms, or after `ms` (bounded). */
async function when(cond: () => boolean, ms: number): Promise<boolean> {
  for (let i = 0; i < ms / 5 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  return cond();
}

async function fakeSession(net: Net) {
  const g = gatedNet(net);
  const fake = await net.listen({ host: "127.0.0.1", port: 0 });
  const agent = new Agent(g.net, {
    server: fake.addr,
    name: "office",
    credential: tokenCredential(AGENT_TOKEN),
    rules: parseRule("127.0.0.1:*"),
    link: false, // the dialed carrier: each pool connection is a dial held at the gate
  }, memoryLogger().log);
  agent.start();
  const control = await acceptAgent(fake, 30_000);
  const pool: Conn[] = [];
  const accepting = (async () => {
    for (let i = 0; i < 64; i++) {
      const c = await fake.accept();
      if (!c) return;
      pool.push(c);
    }
  })();
  return {
    g,
    control,
    pool,
    async close() {
      g.open();
      control.conn.close();
      for (const c of pool) c.close();
      await agent.stop();
      fake.close();
      await accepting;
    },
  };
}

test(`${rt}: agent dials for two POOL_REQUESTs at once and answers PING while they are pending`, async () => {
  const s = await fakeSession(await runtimeNet());
  try {
    await s.control.send({ type: "POOL_REQUEST", requestId: 1, count: 2 });
    await s.control.send({ type: "POOL_REQUEST", requestId: 2, count: 3 });
    await s.control.send({ type: "PING", data: new Uint8Array(8).fill(7) });
    // Bounded wait (not a speed check): a serializing agent never gets past 2.
    const bothPending = await when(() => s.g.waiting === 5, 5000);
    assert.equal(s.g.waiting, 5, "pool dials of both requests pending at once");
    assert.ok(bothPending);
    // The PONG comes while every pool dial is still held at the gate; a
    // serializing agent answers only after them, so release them if it
    // stays silent, and the order below shows which it was.
    let pongWhileHeld: boolean | undefined;
    const pong = s.control.recv().then((m) => {
      pongWhileHeld = s.g.waiting === 5;
      return m;
    });
    const released = when(() => pongWhileHeld !== undefined, 5000).then(() => s.g.open());
    const m = await pong;
    await released;
    assert.equal(m?.type, "PONG");
    assert.equal(pongWhileHeld, true, "PONG answered while pool dials were pending");
    // Each request is confirmed with its own count once its dials are done.
    const confirms = new Map<number, number>();
    for (let i = 0; i < 2; i++) {
      const c = await s.control.expect("POOL_CONFIRM") as MessageOf<"POOL_CONFIRM">;
      confirms.set(c.requestId, c.count);
    }
    assert.deepEqual([...confirms].sort((a, b) => a[0] - b[0]), [[1, 2], [2, 3]]);
    assert.ok(await when(() => s.pool.length === 5, 5000), "five pool connections arrived");
    for (const c of s.pool) {
      const hello = await new Wire(c).expect("POOL_HELLO");
      assert.equal(hello.agentId, 1);
    }
  } finally {
    await s.close();
  }
});
