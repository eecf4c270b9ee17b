/**
 * Hostile peers (issue "Hardening, second round"): each test failed before
 * its fix. A peer that logs in properly and then sends valid frames without
 * reading what they make the other side answer; CONNECTs racing the stream
 * limits; a link whose first chunk carries a bad frame behind its hello.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ProtocolError } from "../src/errors.ts";
import { Link, LINK_MAX_QUEUED_CONTROL } from "../src/link.ts";
import { encodeLinkFrame, LINK_HEADER_SIZE, type LinkFrame } from "../src/link_frame.ts";
import type { Conn } from "../src/net.ts";
import type { Target } from "../src/messages.ts";
import { Agent } from "../src/agent.ts";
import { Wire } from "../src/wire.ts";
import { tokenCredential } from "../src/auth.ts";
import { encode } from "../src/encode.ts";
import { parseRule } from "../src/policy.ts";
import {
  acceptAgent,
  AGENT_TOKEN,
  ALICE_TOKEN,
  echoTarget,
  memoryLogger,
  runtime,
  runtimeNet,
  socks,
  tunnel,
  until,
} from "./helpers.ts";
import { flood, hostileAgent, linkOpens } from "./hostile.ts";

const rt = runtime;

test(`${rt}: a link whose first chunk has a bad frame behind LINK_HELLO fails the link cleanly`, async () => {
  const t = await tunnel({ startAgent: false });
  // OPEN on stream 0 is no link frame at all; an OPEN from the agent is none either.
  const stream0 = new Uint8Array(LINK_HEADER_SIZE);
  stream0[0] = 1;
  for (const bad of [stream0, encodeLinkFrame({ type: "OPEN", stream: 1 })]) {
    const a = await hostileAgent(t.net, t.server.addrs.agents!, 1);
    try {
      const link = await a.link(bad);
      assert.equal(await link.read().catch(() => null), null, "the server closes the link");
      assert.ok(
        await until(() => t.logs.some((l) => l.includes("agent link closed"))),
        t.logs.join("\n"),
      );
      const failed = t.logs.filter((l) => /handler failed|before initialization/.test(l));
      assert.deepEqual(failed, []);
      const pongs = a.pongs();
      assert.ok(await until(() => a.pongs() > pongs), "the session goes on");
    } finally {
      a.close();
    }
    t.logs.length = 0;
  }
  await t.close();
});

test(`${rt}: a link or an idle pool connection holding a partial frame trickled in is closed (limit=frame_timeout)`, async () => {
  // heartbeat timeout 1 s (helpers.ts): no frame completed for that long while bytes are held.
  const t = await tunnel({ startAgent: false });
  const a = await hostileAgent(t.net, t.server.addrs.agents!, 1);
  const trickles: ReturnType<typeof setInterval>[] = [];
  try {
    // A DATA header announcing 65535 bytes on a link, and a frame header
    // announcing 128 KiB on a pool connection (an ANNOUNCE: a length its type
    // can have, so the framer waits for it); then one byte every 100 ms.
    const data = Uint8Array.of(0, 0, 0, 0, 1, 0xff, 0xff);
    const frame = Uint8Array.of(0x42, 0x52, 0x52, 0x57, 1, 0x10, 0, 0, 0, 2, 0, 0);
    const conns = [await a.link(data), await a.pool(frame)];
    for (const c of conns) {
      trickles.push(setInterval(() => void c.write(Uint8Array.of(0)).catch(() => {}), 100));
    }
    for (const c of conns) {
      // Bounded: the deadline is 1 s; a connection the server keeps is read until 10 s.
      const end = Date.now() + 10_000;
      let closed = false;
      while (!closed && Date.now() < end) {
        closed = await Promise.race([
          c.read().then((x) => x === null, () => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
        ]);
      }
      assert.ok(closed, "the server closes it");
    }
    assert.ok(
      await until(() => t.logs.filter((l) => l.includes("limit=frame_timeout")).length >= 2),
      t.logs.join("\n"),
    );
    const hits = /^burrow_limit_hits_total\{limit="frame_timeout"\} [2-9]/m;
    assert.ok(
      await until(() => hits.test(t.server.metrics.render())),
      t.logs.filter((l) => l.includes("frame_timeout")).join("\n"),
    );
    const pongs = a.pongs();
    assert.ok(await until(() => a.pongs() > pongs), "the session goes on");
  } finally {
    for (const i of trickles) clearInterval(i);
    a.close();
    await t.close();
  }
});

test(`${rt}: a peer that sends OPENs without reading the RESETs has its link failed (limit=link_queued_control)`, async () => {
  const net = await runtimeNet();
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const dialed = await net.dial(l.addr);
  const accepted = (await l.accept())!;
  const limits: string[] = [];
  let why = null as Error | null;
  // Every stream the peer opens is reset at once, as the server's pool does when full.
  const link = new Link(accepted, {
    onStream: (s) => s.close(),
    onLimit: (name, max) => limits.push(`${name} ${max}`),
    onClose: (e) => why = e,
  });
  link.grant(0xffffffff); // every id: the peer's OPENs are all within the grants
  try {
    const batch = 8192;
    const r = await flood(dialed, (i) => linkOpens(1 + i * batch, batch), {
      maxBytes: 24 << 20, // 3.6 M OPENs: more RESETs than the socket buffers hold
      stop: () => limits.length > 0,
    });
    assert.ok(await until(() => why !== null), `the link is up after ${r.bytes} bytes`);
    assert.deepEqual(limits, [`link_queued_control ${LINK_MAX_QUEUED_CONTROL}`], JSON.stringify(r));
    assert.ok(why instanceof ProtocolError && why.code === "limit_exceeded", String(why));
    assert.ok(r.bytes < 24 << 20, `${r.bytes} bytes taken`);
    assert.ok(link.queuedControl.peak <= LINK_MAX_QUEUED_CONTROL + 1, `${link.queuedControl.peak}`);
  } finally {
    dialed.close();
    accepted.close();
    l.close();
  }
});

for (
  const [key, max, conns] of [["streams_per_client", 2, 10], ["streams_per_agent", 5, 60]] as const
) {
  test(`${rt}: ${key} ${max} holds for ${conns} CONNECTs at once (places taken before OPEN)`, async () => {
    const t = await tunnel({ config: { limits: { [key]: max } } });
    const echo = await echoTarget(t.net);
    const target: Target = { type: "ipv4", host: "127.0.0.1", port: echo.addr.port };
    const opened: Array<Awaited<ReturnType<typeof socks>>> = [];
    try {
      const all = await Promise.all(
        Array.from({ length: conns }, () => socks(t.net, t.socks, "alice", ALICE_TOKEN, target)),
      );
      opened.push(...all);
      const ok = all.filter((s) => s.reply === 0).length;
      assert.ok(ok <= max, `${ok} of ${conns} CONNECTs succeeded with ${key} ${max}`);
      assert.ok(ok >= 1, "some succeeded");
      for (const s of all) s.conn.close();
      // Every place comes back.
      const router = t.server.router;
      assert.ok(
        await until(() =>
          router.active === 0 && router.clientStreams("alice") === 0 &&
          router.agentStreams("office") === 0
        ),
        `active ${router.active}, alice ${router.clientStreams("alice")}, office ${
          router.agentStreams("office")
        }`,
      );
      const again = await socks(t.net, t.socks, "alice", ALICE_TOKEN, target);
      opened.push(again);
      assert.equal(again.reply, 0);
    } finally {
      for (const s of opened) s.conn.close();
      echo.close();
      await t.close();
    }
  });
}

/**
 * The side of a connection whose peer never reads: every write stays
 * pending. Reads take what `feed` gives, then wait (the peer goes on).
 */
function unreadConn(): { conn: Conn; feed(b: Uint8Array): void } {
  const queue: Uint8Array[] = [];
  let waiter: ((c: Uint8Array | null) => void) | null = null;
  let done = false;
  let resolveClosed!: () => void;
  const addr = { host: "127.0.0.1", port: 1 };
  const conn: Conn = {
    local: addr,
    remote: addr,
    read: () =>
      queue.length > 0
        ? Promise.resolve(queue.shift()!)
        : done
        ? Promise.resolve(null)
        : new Promise((r) => waiter = r),
    write: () => new Promise(() => {}),
    end: () => new Promise(() => {}),
    close: () => {
      done = true;
      waiter?.(null);
      resolveClosed();
    },
    closed: new Promise((r) => resolveClosed = r),
    setNoDelay: () => {},
  };
  return {
    conn,
    feed(b) {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(b);
      } else queue.push(b);
    },
  };
}

type Step = { kind: "OPEN" | "RESET" | "FIN" | "WINDOW" | "DATA" | "PING"; pick: number };

/** Valid link frames from `steps`, as a peer that opens streams sends them. */
function validFrames(steps: Step[]): LinkFrame[] {
  let highest = 0;
  const finished = new Set<number>();
  const out: LinkFrame[] = [];
  for (const { kind, pick } of steps) {
    if (kind === "OPEN" || highest === 0) {
      out.push({ type: "OPEN", stream: ++highest });
      continue;
    }
    if (kind === "PING") {
      out.push({ type: "PING", stream: 1 + (pick % 1000) }); // each answered with a PONG
      continue;
    }
    const stream = 1 + (pick % highest);
    if (kind === "RESET") out.push({ type: "RESET", stream });
    else if (kind === "WINDOW") out.push({ type: "WINDOW", stream, increment: 1 + pick });
    else if (!finished.has(stream)) {
      if (kind === "FIN") finished.add(stream);
      out.push(
        kind === "FIN"
          ? { type: "FIN", stream }
          : { type: "DATA", stream, data: new Uint8Array(8) },
      );
    }
  }
  return out;
}

test(`${rt}: property: a peer that sends valid link frames and never reads gets at most ${LINK_MAX_QUEUED_CONTROL} control frames queued`, async () => {
  const kinds = fc.constantFrom("OPEN", "RESET", "FIN", "WINDOW", "DATA", "PING") as fc.Arbitrary<
    Step["kind"]
  >;
  const steps = fc.array(fc.record({ kind: kinds, pick: fc.nat(1 << 20) }), {
    minLength: 1,
    maxLength: 400,
  });
  await fc.assert(
    fc.asyncProperty(
      steps,
      fc.constantFrom("close", "end", "keep"),
      fc.integer({ min: 1, max: 64 }),
      async (pattern, behaviour, maxStreams) => {
        const { conn, feed } = unreadConn();
        let why = null as Error | null;
        const link = new Link(conn, {
          maxStreams,
          onStream: (s) => {
            if (behaviour === "close") s.close();
            else if (behaviour === "end") s.end().catch(() => {});
          },
          onClose: (e) => why = e,
        });
        link.grant(0xffffffff); // every id: the peer's OPENs are all within the grants
        // The pattern again and again, its stream ids moved past the last: 20 000 frames.
        const frames = validFrames(pattern);
        let sent = 0;
        for (let base = 0; sent < 20_000 && why === null;) {
          const batch: Uint8Array[] = [];
          while (batch.length < 1000) { // ≥ 1000 frames a read
            for (const f of frames) batch.push(encodeLinkFrame({ ...f, stream: f.stream + base }));
            base += Math.max(...frames.map((f) => f.stream));
          }
          const chunk = new Uint8Array(batch.reduce((n, b) => n + b.length, 0));
          batch.reduce((at, b) => (chunk.set(b, at), at + b.length), 0);
          feed(chunk);
          sent += batch.length;
          await new Promise((r) => setTimeout(r, 0));
        }
        assert.ok(
          link.queuedControl.peak <= LINK_MAX_QUEUED_CONTROL + 1,
          `${link.queuedControl.peak}`,
        );
        const e = why as Error | null;
        if (e !== null) {
          assert.ok(e instanceof ProtocolError && e.code === "limit_exceeded", String(e));
        }
        link.close();
      },
    ),
    { numRuns: 20 },
  );
});

test(`${rt}: an agent's idle dialed pool connection holding a partial frame from the server is closed (limit=frame_timeout)`, async () => {
  const net = await runtimeNet();
  const fake = await net.listen({ host: "127.0.0.1", port: 0 });
  const mem = memoryLogger();
  const agent = new Agent(net, {
    server: fake.addr,
    name: "office",
    credential: tokenCredential(AGENT_TOKEN),
    rules: parseRule("127.0.0.1:*"),
    link: false,
  }, mem.log);
  agent.start();
  const control = await acceptAgent(fake, 600);
  // PINGs keep the control connection alive; the pool connection gets 5
  // bytes of a frame header and nothing more.
  const ping = setInterval(() => {
    void control.send({ type: "PING", data: new Uint8Array(8) }).catch(() => {});
  }, 100);
  try {
    await control.send({ type: "POOL_REQUEST", requestId: 1, count: 1 });
    const pool = new Wire((await fake.accept())!);
    await pool.expect("POOL_HELLO");
    const frame = encode({ type: "PING", data: new Uint8Array(8) });
    await pool.conn.write(frame.subarray(0, 5));
    assert.equal(await pool.conn.read(), null, "the agent closed the pool connection");
    assert.ok(mem.lines.some((l) => l.includes("limit=frame_timeout")), mem.lines.join("\n"));
    pool.conn.close();
  } finally {
    clearInterval(ping);
    await agent.stop();
    control.conn.close();
    fake.close();
  }
});
