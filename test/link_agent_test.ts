/**
 * The link (SPEC.md §2.4) between a real agent and a
 * real server: pool streams share one connection, `link: false` goes back to
 * one connection per pool connection, a lost link leaves the session working
 * on dialed pool connections, and streams on a link outlive their session.
 * A recording relay between agent and server counts the connections.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Wire } from "../src/wire.ts";
import { encodeLinkFrame, type LinkFrame, LinkFramer } from "../src/link_frame.ts";
import type { Tunnel } from "./helpers.ts";
import {
  acceptAgent,
  echoTarget,
  readAll,
  recorder,
  runtime,
  socksTo,
  testAgent,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** One stream through the tunnel to the echo target: send `text`, half-close, read it all back. */
async function echoed(t: Tunnel, port: number, text: string): Promise<string> {
  const s = await socksTo(t, port);
  try {
    assert.equal(s.reply, 0, `SOCKS5 reply for ${text}`);
    await s.conn.write(enc.encode(text));
    await s.conn.end();
    return dec.decode(await readAll(s.conn));
  } finally {
    s.conn.close();
  }
}

async function setup(link: boolean, linkLastId?: number) {
  const t = await tunnel({ startAgent: false });
  const rec = await recorder(t.net, t.server.addrs.agents!);
  const echo = await echoTarget(t.net);
  const { agent, lines } = testAgent(t.net, rec.addr, "office", {
    link,
    ...(linkLastId ? { linkLastId } : {}),
  });
  agent.start();
  await agent.connected();
  return {
    t,
    rec,
    echo,
    agent,
    lines,
    async close() {
      await agent.stop();
      rec.close();
      echo.close();
      await t.close();
    },
  };
}

test(`${rt}: the pool is stream ids the agent grants on one link: it rests at pool_max, 40 streams, no new connection`, async () => {
  const s = await setup(true);
  try {
    // pool max is 32 (helpers.ts): granted ids cost nothing, so the session keeps all of them.
    assert.ok(await until(() => s.agent.poolSize === 32), `the pool filled: ${s.agent.poolSize}`);
    // The agent counts an id once its GRANT is queued; the server once the GRANT is read.
    const idle32 = /^burrow_pool_idle\{agent="office"\} 32$/m;
    assert.ok(
      await until(() => idle32.test(s.t.server.metrics.render())),
      s.t.server.metrics.render(),
    );
    assert.equal(s.rec.links.length, 2, "control connection and link only");
    const texts = Array.from({ length: 40 }, (_, i) => `stream ${i} `.repeat(i + 1));
    const got = await Promise.all(texts.map((x) => echoed(s.t, s.echo.addr.port, x)));
    assert.deepEqual(got, texts);
    assert.equal(s.rec.links.length, 2, "the streams and the pool's refill used the link");
    assert.equal(s.t.server.agents.links("office"), 1, "the server counts the link");
    assert.match(
      s.t.server.metrics.render(),
      /^burrow_agent_links\{agent="office"\} 1$/m,
      "and shows it in /metrics",
    );
    assert.ok(s.lines.some((l) => /connected.*protocol=1/.test(l)), s.lines.join("\n"));
    assert.ok(await until(() => s.agent.poolSize === 32), "granted again after the streams");
  } finally {
    await s.close();
  }
});

test(`${rt}: with link: false every pool connection is a connection of its own`, async () => {
  const s = await setup(false);
  try {
    assert.ok(await until(() => s.agent.poolSize >= 2), "the pool filled");
    const before = s.rec.links.length;
    assert.ok(before >= 3, `control + ≥ 2 pool connections, got ${before}`);
    assert.equal(s.t.server.agents.links("office"), 0);
    assert.equal(await echoed(s.t, s.echo.addr.port, "plain pool"), "plain pool");
    assert.ok(await until(() => s.rec.links.length > before), "the pool was refilled by a dial");
  } finally {
    await s.close();
  }
});

test(`${rt}: a lost link leaves the session working on dialed pool connections`, async () => {
  const s = await setup(true);
  try {
    assert.ok(await until(() => s.agent.poolSize >= 2 && s.rec.links.length >= 2), "link up");
    const [a, b] = s.rec.links[1]!;
    a.close();
    b.close();
    assert.ok(
      await until(() => s.lines.some((l) => l.includes("link lost"))),
      "the agent noticed",
    );
    const texts = Array.from({ length: 10 }, (_, i) => `after ${i}`);
    const got = await Promise.all(texts.map((x) => echoed(s.t, s.echo.addr.port, x)));
    assert.deepEqual(got, texts);
    assert.ok(s.rec.links.length > 2, "pool connections were dialed");
    assert.equal(s.agent.sessions, 1, "the session went on");
  } finally {
    await s.close();
  }
});

test(`${rt}: a link that used its last stream id hands over to a new link`, async () => {
  const s = await setup(true, 6);
  try {
    const texts = Array.from({ length: 20 }, (_, i) => `id ${i}`);
    for (const x of texts) assert.equal(await echoed(s.t, s.echo.addr.port, x), x);
    assert.ok(s.rec.links.length >= 4, `control + ≥ 3 links, got ${s.rec.links.length}`);
    assert.ok(s.lines.some((l) => l.includes("last stream id")), s.lines.join("\n"));
    assert.ok(s.t.server.agents.links("office") <= 4, "old links drained and closed");
    assert.equal(s.agent.sessions, 1, "one session throughout");
  } finally {
    await s.close();
  }
});

test(`${rt}: a stream on a link outlives its session; the link closes after it`, async () => {
  const s = await setup(true);
  try {
    assert.ok(await until(() => s.agent.poolSize >= 2 && s.rec.links.length >= 2), "link up");
    const open = await socksTo(s.t, s.echo.addr.port);
    assert.equal(open.reply, 0);
    await open.conn.write(enc.encode("before "));
    assert.equal(dec.decode((await open.conn.read())!), "before ");
    const [linkA] = s.rec.links[1]!;
    assert.ok(s.t.server.agents.disconnect("office"), "the session ended");
    await open.conn.write(enc.encode("after"));
    await open.conn.end();
    assert.equal(dec.decode(await readAll(open.conn)), "after", "the stream went on");
    open.conn.close();
    let closed = false;
    void linkA.closed.then(() => closed = true);
    assert.ok(await until(() => closed), "the old link closed once its last stream ended");
  } finally {
    await s.close();
  }
});

test(`${rt}: a link the server refuses: the agent dials its pool connections`, async () => {
  const t = await tunnel({ startAgent: false });
  const fake = await t.net.listen({ host: "127.0.0.1", port: 0 });
  const { agent, lines } = testAgent(t.net, fake.addr, "office");
  const conns: Wire[] = [];
  try {
    agent.start();
    const control = await acceptAgent(fake, 5000);
    conns.push(control);
    await control.send({ type: "POOL_REQUEST", requestId: 1, count: 2 });
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const w = new Wire((await fake.accept())!);
      conns.push(w);
      const hello = await w.expect("POOL_HELLO", "LINK_HELLO");
      kinds.push(hello.type);
      if (hello.type === "LINK_HELLO") await w.fail("limit_exceeded", "no links here");
    }
    kinds.sort();
    assert.deepEqual(kinds, ["LINK_HELLO", "POOL_HELLO", "POOL_HELLO"]);
    const confirm = await control.expect("POOL_CONFIRM");
    assert.equal(confirm.count, 2);
    assert.ok(
      await until(() => lines.some((l) => /link lost.*no links here/.test(l))),
      lines.join("\n"),
    );
  } finally {
    await agent.stop();
    for (const w of conns) w.conn.close();
    fake.close();
    await t.close();
  }
});

test(`${rt}: on its link the agent grants stream ids and opens none`, async () => {
  const t = await tunnel({ startAgent: false });
  const fake = await t.net.listen({ host: "127.0.0.1", port: 0 });
  const { agent } = testAgent(t.net, fake.addr, "office");
  const conns: Wire[] = [];
  try {
    agent.start();
    const control = await acceptAgent(fake, 5000);
    conns.push(control);
    const link = new Wire((await fake.accept())!);
    conns.push(link);
    const hello = await link.expect("LINK_HELLO");
    assert.equal(hello.version, 1);
    await control.send({ type: "POOL_REQUEST", requestId: 1, count: 3 });
    const confirm = await control.expect("POOL_CONFIRM");
    assert.equal(confirm.count, 3);
    // The link frames the agent sent for the request.
    const framer = new LinkFramer();
    framer.push(link.rest());
    const frames: LinkFrame[] = [];
    for (let i = 0; i < 20 && frames.length < 1; i++) {
      let f: LinkFrame | null;
      while ((f = framer.next()) !== null) frames.push(f);
      if (frames.length >= 1) break;
      const chunk = await link.conn.read();
      if (chunk === null) break;
      framer.push(chunk);
    }
    assert.deepEqual(frames, [{ type: "GRANT", stream: 3 }]);
    assert.equal(agent.poolSize, 3);
  } finally {
    await agent.stop();
    for (const w of conns) w.conn.close();
    fake.close();
    await t.close();
  }
});

test(`${rt}: a GRANT of every stream id at once costs the server no more than its pool_max entries`, async () => {
  const s = await setup(true);
  try {
    assert.ok(await until(() => s.agent.poolSize === 32 && s.rec.links.length >= 2), "link up");
    // Injected on the way to the server, as a hostile agent would send it.
    const [, toServer] = s.rec.links[1]!;
    await toServer.write(encodeLinkFrame({ type: "GRANT", stream: 0xffffffff }));
    // The pool was full: the grant adds nothing, and the server goes on at once.
    assert.equal(await echoed(s.t, s.echo.addr.port, "still here"), "still here");
    assert.equal(await echoed(s.t, s.echo.addr.port, "and here"), "and here");
    const idle = Number(
      /^burrow_pool_idle\{agent="office"\} (\d+)$/m.exec(
        s.t.server.metrics.render(),
      )?.[1],
    );
    assert.ok(idle <= 32, `idle pool entries: ${idle}`);
  } finally {
    await s.close();
  }
});
