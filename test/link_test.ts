/**
 * src/link.ts, the link (SPEC.md §3.2), over real
 * loopback TCP of the runtime these tests run on: streams opened by one side
 * and handed to the other, bytes both ways, many streams at once, large
 * transfers, per-stream flow control (exact window, grants), half-close,
 * RESET, link failure, protocol violations from a raw peer, maxStreams,
 * drain(), the `first` option, and frames split at every byte boundary.
 *
 * Every test closes its links, sockets and listener (finally), and bounds
 * every wait with `deadline` (src/time.ts); loops are bounded by byte counts
 * or EOF. "Still pending" checks use a short wait, never a timing assertion.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NetError, ProtocolError } from "../src/errors.ts";
import { Link, LINK_WINDOW, type LinkOptions } from "../src/link.ts";
import { encodeLinkFrame, LINK_MAX_DATA, type LinkFrame, LinkFramer } from "../src/link_frame.ts";
import type { Conn } from "../src/net.ts";
import { deadline } from "../src/time.ts";
import { concat } from "./arbitraries.ts";
import { readAll, runtime, runtimeNet, until } from "./helpers.ts";

const rt = runtime;
const net = await runtimeNet();
const HOST = "127.0.0.1";
/** The bound on any one wait. */
const WAIT = 15_000;
/** A receiver grants window once its reader consumed this much (src/link.ts). */
const GRANT_AT = LINK_WINDOW / 4;
const MiB = 1 << 20;

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function within<T>(p: Promise<T>, what: string, ms = WAIT): Promise<T> {
  return deadline(p, ms, what);
}

/** True if `p` is still unsettled after `ms` (the timer is always cleared). */
async function stillPending(p: Promise<unknown>, ms = 150): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wait = new Promise<true>((r) => (timer = setTimeout(() => r(true), ms)));
  try {
    return await Promise.race([p.then(() => false, () => false), wait]);
  } finally {
    clearTimeout(timer);
  }
}

function isNetError(code?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof NetError, `expected a NetError, got ${String(e)}`);
    if (code) assert.equal(e.code, code);
    return true;
  };
}

/** `n` random bytes (crypto.getRandomValues fills at most 65 536 at a time). */
function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

/** Byte equality with a short message (assert.deepEqual on MiBs is slow and unreadable). */
function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${what}: first difference at byte ${i} of ${expected.length}`);
    }
  }
}

/** Odd write sizes: below, at and above a DATA frame, and not multiples of anything. */
const ODD = [1, 7, 4093, LINK_MAX_DATA, LINK_MAX_DATA + 1, 65536, 100_003, 262_147, 3, 524_287];

/** Write `data` in pieces of the {@link ODD} sizes (starting at `start`). */
async function writeOdd(s: Conn, data: Uint8Array, start = 0): Promise<void> {
  for (let o = 0, i = start; o < data.length; i++) {
    const n = ODD[i % ODD.length]!;
    await s.write(data.subarray(o, o + n));
    o += n;
  }
}

/** Exactly `n` bytes from `s` (fails on EOF before them, or on more in one chunk). */
async function readExactly(s: Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const c = await s.read();
    assert.ok(c !== null, `EOF after ${off} of ${n} bytes`);
    assert.ok(off + c.length <= n, `${off + c.length} bytes, more than the ${n} expected`);
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Echo a stream until EOF, then end it. */
async function echo(s: Conn): Promise<void> {
  try {
    for (let c = await s.read(); c !== null; c = await s.read()) await s.write(c);
    await s.end();
  } catch {
    s.close();
  }
}

/** A Conn delegating to `conn`, with some methods replaced. */
function wrap(conn: Conn, over: Partial<Pick<Conn, "read" | "write">>): Conn {
  return {
    get local() {
      return conn.local;
    },
    get remote() {
      return conn.remote;
    },
    read: over.read ?? (() => conn.read()),
    write: over.write ?? ((c) => conn.write(c)),
    end: () => conn.end(),
    close: () => conn.close(),
    closed: conn.closed,
    setNoDelay: (on) => conn.setNoDelay(on),
  };
}

/**
 * `conn`, recording every link frame written on it as "TYPE id" (`sent`),
 * and how many frames each write() carried (`writes`).
 */
function spy(conn: Conn): { conn: Conn; sent: string[]; writes: number[] } {
  const framer = new LinkFramer();
  const sent: string[] = [];
  const writes: number[] = [];
  return {
    sent,
    writes,
    conn: wrap(conn, {
      write(c) {
        framer.push(c.slice());
        let n = 0;
        for (let f = framer.next(); f !== null; f = framer.next()) {
          n++;
          sent.push(`${f.type} ${f.stream}`);
        }
        writes.push(n);
        return conn.write(c);
      },
    }),
  };
}

/** `conn`, but every read() gives one byte: the link sees every frame split at every boundary. */
function trickle(conn: Conn): Conn {
  let rest: Uint8Array = new Uint8Array(0);
  return wrap(conn, {
    async read() {
      while (rest.length === 0) {
        const c = await conn.read();
        if (c === null) return null;
        rest = c;
      }
      const one = rest.slice(0, 1);
      rest = rest.subarray(1);
      return one;
    },
  });
}

/** A connected pair of real loopback TCP connections; the listener is closed again. */
async function tcpPair(): Promise<{ dialed: Conn; accepted: Conn }> {
  const listener = await net.listen({ host: HOST, port: 0 });
  try {
    const [dialed, accepted] = await within(
      Promise.all([net.dial({ host: HOST, port: listener.addr.port }), listener.accept()]),
      "dial/accept",
    );
    assert.ok(accepted !== null);
    return { dialed, accepted };
  } finally {
    listener.close();
  }
}

/** Streams handed to `onStream`, in order. */
class Accepted {
  readonly all: Conn[] = [];
  #waiters: Array<(s: Conn) => void> = [];
  push = (s: Conn): void => {
    const w = this.#waiters.shift();
    if (w) w(s);
    else this.all.push(s);
  };
  /** The next stream not yet taken. */
  next(): Promise<Conn> {
    const s = this.all.shift();
    if (s) return Promise.resolve(s);
    return within(new Promise<Conn>((r) => this.#waiters.push(r)), "onStream");
  }
}

/** The reason a link's onClose got, once it is called. */
function closeReason(): { onClose: (why: Error | null) => void; reason: Promise<Error | null> } {
  let onClose!: (why: Error | null) => void;
  const reason = new Promise<Error | null>((r) => (onClose = r));
  return { onClose, reason };
}

interface Pair {
  agent: Link;
  server: Link;
  dialed: Conn;
  accepted: Conn;
  /** The server's streams, when the test gave no `onStream` of its own. */
  streams: Accepted;
  agentClosed: Promise<Error | null>;
  serverClosed: Promise<Error | null>;
  close(): void;
}

/** What a test sets of each side's options (the side's own callbacks are the pair's). */
type Common = Omit<LinkOptions, "onClose" | "onStream" | "onGrant">;

/** Stream ids the accepting side of {@link linkPair} and {@link rawPeer} grants at the start. */
const GRANTED = 100_000;

interface PairOptions {
  server?: Common & { onStream?: (s: Conn) => void };
  agent?: Common;
  /** Wrap the connections before the links get them. */
  wrapAgent?: (c: Conn) => Conn;
  wrapServer?: (c: Conn) => Conn;
}

/**
 * Two links over one TCP connection: the dialing side opens streams (as
 * burrow's server does), the accepting side grants {@link GRANTED} ids at
 * the start and gets the streams (as the agent does).
 */
async function linkPair(opts: PairOptions = {}): Promise<Pair> {
  const { dialed, accepted } = await tcpPair();
  const streams = new Accepted();
  const a = closeReason();
  const s = closeReason();
  const server = new Link((opts.wrapServer ?? ((c) => c))(accepted), {
    onStream: streams.push,
    ...opts.server,
    onClose: s.onClose,
  });
  const agent = new Link((opts.wrapAgent ?? ((c) => c))(dialed), {
    ...opts.agent,
    onGrant: () => {},
    onClose: a.onClose,
  });
  server.grant(GRANTED);
  assert.ok(await until(() => agent.credit > 0), "the GRANT arrived");
  return {
    agent,
    server,
    dialed,
    accepted,
    streams,
    agentClosed: a.reason,
    serverClosed: s.reason,
    close() {
      agent.close();
      server.close();
      dialed.close();
      accepted.close();
    },
  };
}

/** A frame-level peer on a raw connection (no Link): sends encoded frames, parses what arrives. */
class Raw {
  readonly #framer = new LinkFramer();
  constructor(readonly conn: Conn) {}

  send(...frames: LinkFrame[]): Promise<void> {
    return this.conn.write(concat(frames.map(encodeLinkFrame)));
  }

  sendBytes(...parts: Uint8Array[]): Promise<void> {
    return this.conn.write(concat(parts));
  }

  /** The next frame, or null at EOF; a PING is answered (PONG), not returned. */
  async next(): Promise<LinkFrame | null> {
    for (;;) {
      const f = this.#framer.next();
      if (f?.type === "PING") {
        await this.send({ type: "PONG", stream: f.stream });
        continue;
      }
      if (f !== null) return f;
      const c = await this.conn.read();
      if (c === null) return null;
      this.#framer.push(c);
    }
  }

  /** Resolves once the connection ends (EOF or an error); the frames read on the way. */
  async toEnd(limit = 10_000): Promise<LinkFrame[]> {
    const got: LinkFrame[] = [];
    try {
      for (let f = await this.next(); f !== null && got.length < limit; f = await this.next()) {
        got.push(f);
      }
    } catch {
      // a reset is an end too
    }
    return got;
  }
}

/** DATA frames carrying `n` bytes of `fill` for `stream`, each at most LINK_MAX_DATA. */
function dataFrames(stream: number, n: number, fill = 0x61): LinkFrame[] {
  const out: LinkFrame[] = [];
  for (let left = n; left > 0; left -= LINK_MAX_DATA) {
    out.push({
      type: "DATA",
      stream,
      data: new Uint8Array(Math.min(left, LINK_MAX_DATA)).fill(fill),
    });
  }
  return out;
}

/**
 * A Link on one end of a TCP connection, a {@link Raw} peer on the other.
 * On the accepting side ("server") the link has granted {@link GRANTED}
 * ids (the GRANT is read here); on the opening side the raw peer has.
 */
async function rawPeer(
  linkSide: "server" | "agent",
  opts: Common & { onGrant?: (n: number) => void; grant?: number } = {},
): Promise<{
  link: Link;
  raw: Raw;
  streams: Accepted;
  reason: Promise<Error | null>;
  close(): void;
}> {
  const { dialed, accepted } = await tcpPair();
  const streams = new Accepted();
  const c = closeReason();
  const mine = linkSide === "server" ? accepted : dialed;
  const { onGrant, grant = GRANTED, ...common } = opts;
  const link = new Link(
    mine,
    linkSide === "server"
      ? { ...common, onStream: streams.push, onClose: c.onClose }
      : { ...common, onGrant: onGrant ?? (() => {}), onClose: c.onClose },
  );
  const raw = new Raw(linkSide === "server" ? dialed : accepted);
  if (grant > 0 && linkSide === "server") {
    link.grant(grant);
    assert.deepEqual(await within(raw.next(), "GRANT"), { type: "GRANT", stream: grant });
  } else if (grant > 0) {
    await raw.send({ type: "GRANT", stream: grant });
    assert.ok(await until(() => link.credit > 0), "the GRANT arrived");
  }
  return {
    link,
    raw,
    streams,
    reason: c.reason,
    close() {
      link.close();
      dialed.close();
      accepted.close();
    },
  };
}

// --- 1. streams, bytes both ways, many streams ------------------------------------------

test(`${rt}: open() hands the peer a stream; bytes go both ways`, async () => {
  const p = await linkPair();
  try {
    assert.equal(p.agent.streams, 0);
    const a = p.agent.open();
    assert.equal(p.agent.streams, 1);
    await within(a.write(enc("ping")), "write ping");
    const b = await p.streams.next();
    assert.equal(p.server.streams, 1);
    assert.equal(dec((await within(b.read(), "read ping"))!), "ping");
    await within(b.write(enc("pong")), "write pong");
    assert.equal(dec((await within(a.read(), "read pong"))!), "pong");
    // A stream's addresses are those of the link's connection.
    assert.deepEqual(a.remote, p.dialed.remote);
    assert.deepEqual(b.remote, p.accepted.remote);
    assert.deepEqual(a.local, p.dialed.local);
    assert.ok(p.agent.usable && p.server.usable);
  } finally {
    p.close();
  }
});

test(`${rt}: 50 streams in parallel each echo their own payload`, async () => {
  const p = await linkPair({ server: { onStream: (s) => void echo(s) } });
  try {
    const payloads = Array.from(
      { length: 50 },
      (_, i) => concat([enc(`stream ${i}:`), randomBytes(1 + ((i * 7919) % 150_000))]),
    );
    const results = await within(
      Promise.all(payloads.map(async (data, i) => {
        const s = p.agent.open();
        const reading = readAll(s, 1 << 20);
        await writeOdd(s, data, i);
        await s.end();
        const back = await reading;
        await s.closed;
        return back;
      })),
      "50 echoes",
      60_000,
    );
    results.forEach((back, i) => assertSame(back, payloads[i]!, `stream ${i}`));
    // Every stream finished cleanly on both sides: none is left.
    assert.ok(
      await until(() => p.agent.streams === 0 && p.server.streams === 0),
      `streams left: ${p.agent.streams} opening, ${p.server.streams} accepting`,
    );
    assert.ok(p.agent.usable && p.server.usable);
  } finally {
    p.close();
  }
});

test(`${rt}: frames of one turn go out 8 to a write, the rest after the turn, in order`, async () => {
  let agentSpy!: ReturnType<typeof spy>;
  const p = await linkPair({ wrapAgent: (c) => (agentSpy = spy(c)).conn });
  const { writes, sent } = agentSpy;
  try {
    const opened = Array.from({ length: 20 }, () => p.agent.open());
    // Before the turn ends: two full batches are written, 4 frames wait.
    assert.deepEqual(writes, [8, 8]);
    const accepted = await within(Promise.all(opened.map(() => p.streams.next())), "20 streams");
    assert.deepEqual(writes, [8, 8, 4]);
    assert.deepEqual(sent, opened.map((_, i) => `OPEN ${i + 1}`));
    // The peer got them in order, and each stream works.
    await opened[19]!.write(enc("last"));
    assert.deepEqual(await readExactly(accepted[19]!, 4), enc("last"));
  } finally {
    p.close();
  }
});

test(`${rt}: on a connection that keeps Nagle's algorithm a turn's frames are one write`, async () => {
  let agentSpy!: ReturnType<typeof spy>;
  const p = await linkPair({ wrapAgent: (c) => ({ ...(agentSpy = spy(c)).conn, nagle: true }) });
  const { writes } = agentSpy;
  try {
    const opened = Array.from({ length: 20 }, () => p.agent.open());
    assert.deepEqual(writes, []);
    await within(Promise.all(opened.map(() => p.streams.next())), "20 streams");
    assert.deepEqual(writes, [20]);
  } finally {
    p.close();
  }
});

// --- 2. large transfers -----------------------------------------------------------------

test(`${rt}: 8 MiB of random bytes in odd-sized writes arrive intact`, async () => {
  const p = await linkPair();
  try {
    const data = randomBytes(8 * MiB);
    const a = p.agent.open();
    const writing = (async () => {
      await writeOdd(a, data);
      await a.end();
    })();
    writing.catch(() => {}); // awaited below; a failed read must not leave it unhandled
    const b = await p.streams.next();
    const got = await within(readAll(b, 9 * MiB), "read 8 MiB", 60_000);
    await within(writing, "write 8 MiB");
    assertSame(got, data, "agent → server");
  } finally {
    p.close();
  }
});

test(`${rt}: 8 MiB both ways at once on one stream, and on a second stream`, async () => {
  const up = [randomBytes(8 * MiB), randomBytes(3 * MiB + 17)];
  const down = [randomBytes(8 * MiB + 1), randomBytes(2 * MiB - 5)];
  const serverGot: Promise<Uint8Array>[] = [];
  const p = await linkPair({
    server: {
      onStream(s) {
        const i = serverGot.length;
        const reading = readAll(s, 9 * MiB);
        reading.catch(() => {});
        serverGot.push(reading);
        void (async () => {
          await writeOdd(s, down[i]!, 3);
          await s.end();
        })().catch(() => {});
      },
    },
  });
  try {
    const agentGot = await within(
      Promise.all(up.map(async (data, i) => {
        const s = p.agent.open();
        const reading = readAll(s, 9 * MiB);
        await writeOdd(s, data, 5 * i);
        await s.end();
        return reading;
      })),
      "both ways",
      60_000,
    );
    const got = await within(Promise.all(serverGot), "server reads", 60_000);
    for (let i = 0; i < 2; i++) {
      assertSame(got[i]!, up[i]!, `stream ${i + 1} agent → server`);
      assertSame(agentGot[i]!, down[i]!, `stream ${i + 1} server → agent`);
    }
    assert.ok(await until(() => p.agent.streams === 0 && p.server.streams === 0));
  } finally {
    p.close();
  }
});

// --- 3. flow control --------------------------------------------------------------------

test(`${rt}: a reader that does not read holds its sender at exactly the window`, async () => {
  const p = await linkPair();
  try {
    const data = randomBytes(3 * MiB);
    const a = p.agent.open();
    const writing = a.write(data);
    writing.catch(() => {});
    const b = await p.streams.next();
    const buffered = () => (b as unknown as { buffered: number }).buffered;
    assert.ok(await until(() => buffered() >= LINK_WINDOW), `buffered ${buffered()}`);
    assert.ok(await stillPending(writing, 300), "the 3 MiB write resolved without window");
    assert.equal(buffered(), LINK_WINDOW, "the receiver buffered more than its window");

    // Another stream on the same link is not held up by the stalled one.
    const a2 = p.agent.open();
    await within(a2.write(enc("other")), "write on stream 2");
    const b2 = await p.streams.next();
    assert.equal(dec((await within(b2.read(), "read on stream 2"))!), "other");

    // The reader catches up: the grants release the rest, in order.
    const got = await within(readExactly(b, data.length), "read 3 MiB");
    await within(writing, "the 3 MiB write");
    assertSame(got, data, "3 MiB");
    assert.equal(buffered(), 0);
  } finally {
    p.close();
  }
});

test(`${rt}: the sender sends exactly the window it was granted, then what WINDOW adds`, async () => {
  const r = await rawPeer("agent");
  try {
    const a = r.link.open();
    assert.deepEqual(await within(r.raw.next(), "OPEN"), { type: "OPEN", stream: 1 });
    const writing = a.write(randomBytes(3 * MiB));
    writing.catch(() => {});
    let got = 0;
    while (got < LINK_WINDOW) {
      const f = await within(r.raw.next(), "DATA");
      assert.ok(f?.type === "DATA" && f.stream === 1, `got ${JSON.stringify(f?.type)}`);
      got += f.data.length;
    }
    assert.equal(got, LINK_WINDOW);
    const more = r.raw.next();
    assert.ok(await stillPending(more, 300), "sent beyond the window");
    await r.raw.send({ type: "WINDOW", stream: 1, increment: 100 });
    const f = await within(more, "DATA after WINDOW");
    assert.ok(f?.type === "DATA");
    assert.equal(f.data.length, 100);
    assert.ok(await stillPending(writing, 100));
    assert.ok(r.link.usable);
  } finally {
    r.close();
  }
});

test(`${rt}: exactly the window (and then exactly each grant) is accepted, one byte more fails`, async () => {
  const r = await rawPeer("server");
  try {
    await r.raw.send({ type: "OPEN", stream: 1 });
    const b = await r.streams.next();
    const buffered = () => (b as unknown as { buffered: number }).buffered;
    // 16 × 65 535 + 16 = 1 MiB, all without a grant: allowed.
    await r.raw.send(...dataFrames(1, LINK_WINDOW));
    assert.ok(await until(() => buffered() === LINK_WINDOW), `buffered ${buffered()}`);
    assert.ok(r.link.usable);
    // The reader consumes it all: the link grants all but less than GRANT_AT of it.
    await within(readExactly(b, LINK_WINDOW), "read 1 MiB");
    let granted = 0;
    while (granted <= LINK_WINDOW - GRANT_AT) {
      const f = await within(r.raw.next(), "WINDOW");
      assert.ok(f?.type === "WINDOW" && f.stream === 1, `got ${JSON.stringify(f?.type)}`);
      assert.ok(f.increment >= GRANT_AT, `a grant of ${f.increment} < ${GRANT_AT}`);
      granted += f.increment;
    }
    assert.ok(granted <= LINK_WINDOW);
    // Exactly what was granted may come now, unread…
    await r.raw.send(...dataFrames(1, granted, 0x62));
    assert.ok(await until(() => buffered() === granted), `buffered ${buffered()}`);
    assert.ok(r.link.usable);
    // …and one byte more breaks the window.
    await r.raw.send({ type: "DATA", stream: 1, data: Uint8Array.of(1) });
    const why = await within(r.reason, "onClose");
    assert.ok(why instanceof ProtocolError, String(why));
    assert.match(why.message, /window/);
    await within(r.link.closed, "link closed");
    await assert.rejects(b.read(), isNetError("ECONNRESET"));
  } finally {
    r.close();
  }
});

// --- 4. half-close ----------------------------------------------------------------------

test(`${rt}: half-close: FIN one way, data the other way, then FIN: done without RESET`, async () => {
  let agentSpy!: { conn: Conn; sent: string[] };
  let serverSpy!: { conn: Conn; sent: string[] };
  const p = await linkPair({
    wrapAgent: (c) => (agentSpy = spy(c)).conn,
    wrapServer: (c) => (serverSpy = spy(c)).conn,
  });
  try {
    const a = p.agent.open();
    await within(a.write(enc("request")), "write");
    await within(a.end(), "A end");
    await assert.rejects(a.write(enc("late")), isNetError("ECLOSED"));
    const b = await p.streams.next();
    assert.equal(dec(await within(readAll(b), "B reads to EOF")), "request");
    assert.equal(await b.read(), null, "EOF stays EOF");
    // B can still write, and more than a window (grants still flow to B).
    const reply = randomBytes(2 * MiB + 3);
    const reading = readExactly(a, reply.length);
    reading.catch(() => {});
    await within(writeOdd(b, reply), "B writes after A's FIN");
    assertSame(await within(reading, "A reads"), reply, "reply");
    assert.ok(await stillPending(a.closed, 50), "A closed before B's FIN");
    await within(b.end(), "B end");
    assert.equal(await within(a.read(), "A reads EOF"), null);
    await within(Promise.all([a.closed, b.closed]), "closed");
    assert.ok(await until(() => p.agent.streams === 0 && p.server.streams === 0));
    // Done, not reset: reads give EOF (a reset stream rejects), no RESET went either way.
    assert.equal(await a.read(), null);
    assert.equal(await b.read(), null);
    assert.ok(agentSpy.sent.includes("FIN 1") && serverSpy.sent.includes("FIN 1"));
    assert.deepEqual(agentSpy.sent.filter((f) => f.startsWith("RESET")), []);
    assert.deepEqual(serverSpy.sent.filter((f) => f.startsWith("RESET")), []);
    assert.ok(p.agent.usable && p.server.usable);
  } finally {
    p.close();
  }
});

test(`${rt}: a stream is done once its last buffered byte is read after both FINs`, async () => {
  const p = await linkPair();
  try {
    const a = p.agent.open();
    await within(a.write(enc("abc")), "write");
    await within(a.end(), "A end");
    const b = await p.streams.next();
    await within(b.end(), "B end");
    await within(a.closed, "A closed"); // A sent FIN and got B's: A has nothing left to read
    assert.ok(await until(() => p.agent.streams === 0));
    // B has both FINs but "abc" unread: not done until it is read.
    assert.ok(await stillPending(b.closed, 100), "B done with unread bytes");
    assert.equal(p.server.streams, 1);
    assert.equal(dec((await b.read())!), "abc");
    assert.equal(await b.read(), null);
    await within(b.closed, "B closed");
    assert.equal(p.server.streams, 0);
  } finally {
    p.close();
  }
});

// --- 5. stream close() = RESET ----------------------------------------------------------

test(`${rt}: close() on one side resets the stream: the peer's read rejects ECONNRESET`, async () => {
  const p = await linkPair();
  try {
    const a = p.agent.open();
    await within(a.write(enc("x")), "write");
    const b = await p.streams.next();
    assert.equal(dec((await within(b.read(), "read"))!), "x");
    const pending = b.read();
    a.close();
    await assert.rejects(within(pending, "B's pending read"), isNetError("ECONNRESET"));
    await assert.rejects(b.write(enc("y")), isNetError("ECONNRESET"));
    // The closed side: writes and end reject, reads give EOF.
    await assert.rejects(a.write(enc("z")), isNetError("ECLOSED"));
    await assert.rejects(a.end(), isNetError("ECLOSED"));
    assert.equal(await a.read(), null);
    await within(Promise.all([a.closed, b.closed]), "closed");
    assert.ok(await until(() => p.agent.streams === 0 && p.server.streams === 0));
    // Only that stream: the link goes on.
    assert.ok(p.agent.usable && p.server.usable);
    const a2 = p.agent.open();
    await within(a2.write(enc("again")), "write 2");
    const b2 = await p.streams.next();
    assert.equal(dec((await within(b2.read(), "read 2"))!), "again");
  } finally {
    p.close();
  }
});

test(`${rt}: close() by the accepting side fails the opener's read and a write waiting for window`, async () => {
  const p = await linkPair();
  try {
    const a = p.agent.open();
    const writing = a.write(randomBytes(2 * MiB)); // more than the window: it waits
    writing.catch(() => {});
    const reading = a.read();
    reading.catch(() => {});
    const b = await p.streams.next();
    const buffered = () => (b as unknown as { buffered: number }).buffered;
    assert.ok(await until(() => buffered() === LINK_WINDOW));
    assert.ok(await stillPending(writing, 100));
    b.close();
    await assert.rejects(within(writing, "A's write"), isNetError("ECONNRESET"));
    await assert.rejects(within(reading, "A's read"), isNetError("ECONNRESET"));
    await assert.rejects(a.write(enc("more")), isNetError("ECONNRESET"));
    assert.equal(await b.read(), null, "the closing side reads EOF");
    await within(a.closed, "A closed");
    assert.ok(await until(() => p.agent.streams === 0 && p.server.streams === 0));
    assert.ok(p.agent.usable && p.server.usable);
  } finally {
    p.close();
  }
});

// --- 6. the link fails: every stream fails ---------------------------------------------

for (const how of ["agent link close()", "server link close()", "socket close()"] as const) {
  test(`${rt}: ${how} fails every open stream on both sides and resolves closed`, async () => {
    const p = await linkPair();
    try {
      const as = [p.agent.open(), p.agent.open(), p.agent.open()];
      for (const a of as) await within(a.write(enc("hi")), "write");
      const bs = [await p.streams.next(), await p.streams.next(), await p.streams.next()];
      for (const b of bs) assert.equal(dec((await within(b.read(), "read"))!), "hi");
      const reads = [...as, ...bs].map((s) => s.read());
      for (const r of reads) r.catch(() => {});
      assert.ok(await stillPending(Promise.race(reads), 50));
      if (how === "agent link close()") p.agent.close();
      else if (how === "server link close()") p.server.close();
      else p.dialed.close();
      for (const [i, r] of reads.entries()) {
        await assert.rejects(within(r, `read ${i}`), isNetError("ECONNRESET"));
      }
      await within(Promise.all([p.agent.closed, p.server.closed]), "links closed");
      await within(Promise.all([...as, ...bs].map((s) => s.closed)), "streams closed");
      const [agentWhy, serverWhy] = await within(
        Promise.all([p.agentClosed, p.serverClosed]),
        "onClose",
      );
      // close() reports null; the other side (or a dead socket) reports a NetError.
      if (how === "agent link close()") assert.equal(agentWhy, null);
      else assert.ok(agentWhy instanceof NetError, String(agentWhy));
      if (how === "server link close()") assert.equal(serverWhy, null);
      else assert.ok(serverWhy instanceof NetError, String(serverWhy));
      assert.equal(p.agent.streams, 0);
      assert.equal(p.server.streams, 0);
      assert.ok(!p.agent.usable && !p.server.usable);
      assert.throws(() => p.agent.open(), isNetError("ECLOSED"));
      for (const s of [...as, ...bs]) await assert.rejects(s.write(enc("late")), isNetError());
    } finally {
      p.close();
    }
  });
}

// --- 7. protocol violations -------------------------------------------------------------

interface Violation {
  name: string;
  /** Which side runs the Link; the raw peer is the other. */
  side: "server" | "agent";
  /** Frames (or raw bytes) that are fine: the link has an open stream after them. */
  before: LinkFrame[];
  bad: Uint8Array;
  code: string;
  message: RegExp;
}

const frame = (f: LinkFrame) => encodeLinkFrame(f);
const VIOLATIONS: Violation[] = [
  {
    name: "DATA beyond the window (17 × 65 535 bytes, never read)",
    side: "server",
    before: [{ type: "OPEN", stream: 1 }, ...dataFrames(1, 16 * LINK_MAX_DATA)],
    bad: frame({ type: "DATA", stream: 1, data: new Uint8Array(LINK_MAX_DATA) }),
    code: "invalid_message",
    message: /exceed the window/,
  },
  {
    name: "DATA for a stream never opened",
    side: "server",
    before: [{ type: "OPEN", stream: 1 }],
    bad: frame({ type: "DATA", stream: 2, data: enc("x") }),
    code: "invalid_message",
    message: /never opened/,
  },
  {
    name: "WINDOW for a stream never opened (to the opener)",
    side: "agent",
    before: [],
    bad: frame({ type: "WINDOW", stream: 2, increment: 5 }),
    code: "invalid_message",
    message: /never opened/,
  },
  {
    name: "OPEN with the same id again",
    side: "server",
    before: [{ type: "OPEN", stream: 1 }],
    bad: frame({ type: "OPEN", stream: 1 }),
    code: "invalid_message",
    message: /not above/,
  },
  {
    name: "OPEN with a lower id",
    side: "server",
    before: [{ type: "OPEN", stream: 5 }],
    bad: frame({ type: "OPEN", stream: 4 }),
    code: "invalid_message",
    message: /not above/,
  },
  {
    name: "OPEN sent to the side that opens streams (no onStream)",
    side: "agent",
    before: [],
    bad: frame({ type: "OPEN", stream: 1 }),
    code: "unexpected_message",
    message: /this side opens them/,
  },
  {
    name: "DATA after FIN",
    side: "server",
    before: [
      { type: "OPEN", stream: 1 },
      { type: "DATA", stream: 1, data: enc("x") },
      { type: "FIN", stream: 1 },
    ],
    bad: frame({ type: "DATA", stream: 1, data: enc("y") }),
    code: "invalid_message",
    message: /DATA after FIN/,
  },
  {
    name: "an unknown frame type",
    side: "server",
    before: [{ type: "OPEN", stream: 1 }],
    bad: Uint8Array.of(9, 0, 0, 0, 1, 0, 0),
    code: "invalid_message",
    message: /unknown type 9/,
  },
  {
    name: "a frame on stream 0",
    side: "server",
    before: [{ type: "OPEN", stream: 1 }],
    bad: Uint8Array.of(3, 0, 0, 0, 0, 0, 0),
    code: "invalid_message",
    message: /stream 0/,
  },
  {
    name: "PONG answering no PING",
    side: "server",
    before: [{ type: "OPEN", stream: 1 }],
    bad: frame({ type: "PONG", stream: 7 }),
    code: "invalid_message",
    message: /answers no PING/,
  },
  {
    name: "FIN with a body",
    side: "agent",
    before: [],
    bad: Uint8Array.of(3, 0, 0, 0, 1, 0, 1, 0),
    code: "invalid_message",
    message: /body of 1 bytes/,
  },
];

for (const v of VIOLATIONS) {
  test(`${rt}: protocol violation fails the link: ${v.name}`, async () => {
    const r = await rawPeer(v.side);
    try {
      // The link has one open stream with a read pending when the bad frame comes.
      let s: Conn;
      if (v.side === "agent") {
        s = r.link.open();
        assert.deepEqual(await within(r.raw.next(), "OPEN"), { type: "OPEN", stream: 1 });
      } else {
        await r.raw.send(...v.before.slice(0, 1));
        s = await r.streams.next();
      }
      const rest = v.side === "agent" ? v.before : v.before.slice(1);
      if (rest.length > 0) await r.raw.send(...rest);
      // The frames before are fine: the link is still up.
      assert.ok(await stillPending(r.link.closed, 100), "failed before the bad frame");
      assert.ok(r.link.usable);
      const pending = rest.length === 0 ? s.read() : null;
      pending?.catch(() => {});
      await r.raw.sendBytes(v.bad);
      const why = await within(r.reason, "onClose");
      assert.ok(why instanceof ProtocolError, `onClose got ${String(why)}`);
      assert.equal(why.code, v.code);
      assert.match(why.message, v.message);
      await within(r.link.closed, "link closed");
      assert.ok(!r.link.usable);
      assert.equal(r.link.streams, 0);
      if (pending) await assert.rejects(within(pending, "pending read"), isNetError("ECONNRESET"));
      await assert.rejects(s.read(), isNetError("ECONNRESET"));
      await within(s.closed, "stream closed");
      // The link closed its connection: the raw peer sees the end.
      await within(r.raw.toEnd(), "raw peer sees EOF");
    } finally {
      r.close();
    }
  });
}

test(`${rt}: each PING is answered with a PONG of its number, in order, on either side`, async () => {
  for (const side of ["server", "agent"] as const) {
    const r = await rawPeer(side);
    try {
      await r.raw.send({ type: "PING", stream: 7 }, { type: "PING", stream: 0xffffffff });
      assert.deepEqual(await within(r.raw.next(), "PONG"), { type: "PONG", stream: 7 });
      assert.deepEqual(await within(r.raw.next(), "PONG"), { type: "PONG", stream: 0xffffffff });
      assert.ok(r.link.usable);
    } finally {
      r.close();
    }
  }
});

test(`${rt}: a link keeps at most its cap in flight until the peer answers its PINGs`, async () => {
  const r = await rawPeer("agent");
  try {
    const a = r.link.open();
    const writing = a.write(randomBytes(LINK_WINDOW)); // within the window: not held by it
    writing.catch(() => {});
    // Read raw frames without answering the PINGs: DATA stops at the cap.
    const framer = new LinkFramer();
    let data = 0;
    const pings: number[] = [];
    const cap = r.link.inflight.cap;
    while (data < cap) {
      const c = await within(r.raw.conn.read(), "frames up to the cap");
      assert.ok(c !== null);
      framer.push(c);
      for (let f = framer.next(); f !== null; f = framer.next()) {
        if (f.type === "DATA") data += f.data.length + 7;
        if (f.type === "PING") pings.push(f.stream);
      }
    }
    assert.ok(await stillPending(writing), "everything left while no PING was answered");
    assert.ok(data <= cap + LINK_MAX_DATA + 7, `${data} bytes in flight, cap ${cap}`);
    assert.equal(r.link.inflight.now, data);
    assert.ok(pings.length > 0);
    // The PONGs let the rest go.
    await r.raw.send(...pings.map((stream) => ({ type: "PONG" as const, stream })));
    let got = data;
    while (got < LINK_WINDOW + 7 * 17) {
      const f = await within(r.raw.next(), "the rest");
      if (f?.type === "DATA") got += f.data.length + 7;
    }
    await within(writing, "the write");
  } finally {
    r.close();
  }
});

test(`${rt}: frames for a stream already reset here are dropped, not a violation`, async () => {
  const r = await rawPeer("server");
  try {
    await r.raw.send({ type: "OPEN", stream: 1 });
    const b = await r.streams.next();
    b.close();
    assert.deepEqual(await within(r.raw.next(), "RESET"), { type: "RESET", stream: 1 });
    // What the peer sent before it saw our RESET crosses it.
    await r.raw.send({ type: "DATA", stream: 1, data: enc("late") }, { type: "FIN", stream: 1 }, {
      type: "OPEN",
      stream: 2,
    });
    const b2 = await r.streams.next();
    await r.raw.send({ type: "DATA", stream: 2, data: enc("ok") });
    assert.equal(dec((await within(b2.read(), "read"))!), "ok");
    assert.ok(r.link.usable);
    assert.equal(r.link.streams, 1);
  } finally {
    r.close();
  }
});

// --- 8. maxStreams ----------------------------------------------------------------------

test(`${rt}: maxStreams 2: a third stream is RESET, the first two work`, async () => {
  const p = await linkPair({ server: { onStream: (s) => void echo(s), maxStreams: 2 } });
  try {
    const [a1, a2, a3] = [p.agent.open(), p.agent.open(), p.agent.open()];
    await assert.rejects(within(a3.read(), "third read"), isNetError("ECONNRESET"));
    await assert.rejects(a3.write(enc("no")), isNetError("ECONNRESET"));
    assert.equal(p.server.streams, 2);
    assert.equal(p.server.opened, 3, "a RESET stream still used its id");
    for (const [i, a] of [a1, a2].entries()) {
      await within(a.write(enc(`echo ${i}`)), "write");
      assert.equal(dec((await within(a.read(), "echo"))!), `echo ${i}`);
    }
    // The limit is on streams open at once: when one is done, another may open.
    await within(a1.end(), "end");
    assert.equal(await within(a1.read(), "EOF"), null);
    await within(a1.closed, "closed");
    assert.ok(await until(() => p.server.streams === 1));
    const a4 = p.agent.open();
    await within(a4.write(enc("fourth")), "write 4");
    assert.equal(dec((await within(a4.read(), "echo 4"))!), "fourth");
    assert.ok(p.agent.usable && p.server.usable);
  } finally {
    p.close();
  }
});

// --- 9. drain() -------------------------------------------------------------------------

test(`${rt}: drain() keeps the link until its open stream is done, then closes it`, async () => {
  const p = await linkPair();
  try {
    const a = p.agent.open();
    await within(a.write(enc("before drain")), "write");
    const b = await p.streams.next();
    p.agent.drain();
    assert.ok(!p.agent.usable);
    assert.throws(() => p.agent.open(), isNetError("ECLOSED"));
    // The open stream goes on, both ways.
    const up = randomBytes(2 * MiB);
    const serverReading = readAll(b, 3 * MiB);
    serverReading.catch(() => {});
    await within(writeOdd(a, up), "write after drain");
    await within(a.end(), "A end");
    const got = await within(serverReading, "B reads");
    assertSame(got, concat([enc("before drain"), up]), "agent → server");
    assert.ok(await stillPending(p.agent.closed, 100), "closed before the stream was done");
    const down = randomBytes(MiB + 1);
    const reading = readAll(a, 2 * MiB);
    reading.catch(() => {});
    await within(writeOdd(b, down), "B writes");
    await within(b.end(), "B end");
    assertSame(await within(reading, "A reads"), down, "server → agent");
    // Both FINs are in and read: the stream is done, so is the link.
    await within(p.agent.closed, "agent link closed");
    assert.equal(await within(p.agentClosed, "agent onClose"), null);
    await within(p.server.closed, "server link closed");
    await within(Promise.all([a.closed, b.closed]), "streams closed");
  } finally {
    p.close();
  }
});

test(`${rt}: drain() on the accepting side RESETs new streams and closes after the open one`, async () => {
  const p = await linkPair();
  try {
    const a = p.agent.open();
    await within(a.write(enc("one")), "write");
    const b = await p.streams.next();
    p.server.drain();
    assert.ok(!p.server.usable);
    const late = p.agent.open();
    await assert.rejects(within(late.read(), "late stream"), isNetError("ECONNRESET"));
    assert.equal(p.server.streams, 1);
    assert.equal(dec((await within(b.read(), "read"))!), "one");
    await within(b.write(enc("two")), "write back");
    assert.equal(dec((await within(a.read(), "read back"))!), "two");
    assert.ok(await stillPending(p.server.closed, 100));
    await within(a.end(), "A end");
    assert.equal(await within(b.read(), "B EOF"), null);
    await within(b.end(), "B end");
    await within(p.server.closed, "server link closed");
    await within(p.agent.closed, "agent link closed");
    assert.equal(await within(a.read(), "A EOF"), null);
  } finally {
    p.close();
  }
});

for (const drained of ["agent", "server"] as const) {
  test(`${rt}: the ${drained} drains: the peer still reads what arrived before the link ended`, async () => {
    const p = await linkPair();
    try {
      const a = p.agent.open();
      await within(a.write(enc("hello")), "write");
      const b = await p.streams.next();
      // The draining side's stream finishes first; the other side has ended but not read yet.
      const [mine, theirs] = drained === "agent" ? [a, b] : [b, a];
      if (drained === "server") assert.equal(dec((await within(b.read(), "read"))!), "hello");
      p[drained].drain();
      await within(theirs.end(), "their end");
      assert.equal(await within(mine.read(), drained === "agent" ? "A EOF" : "B EOF"), null);
      await within(mine.write(enc(" world")), "last words");
      await within(mine.end(), "my end");
      await within(p[drained === "agent" ? "server" : "agent"].closed, "the peer's link closed");
      const rest = dec(await within(readAll(theirs), "their reader"));
      assert.equal(rest, drained === "agent" ? "hello world" : " world");
      await assert.rejects(theirs.write(enc("x")), isNetError());
    } finally {
      p.close();
    }
  });
}

test(`${rt}: a link that opened its last stream id is exhausted; its streams go on`, async () => {
  const p = await linkPair({ agent: { lastId: 2 } });
  try {
    const a1 = p.agent.open();
    assert.ok(p.agent.usable && !p.agent.exhausted);
    const a2 = p.agent.open();
    assert.ok(p.agent.exhausted, "id 2 was the last");
    assert.ok(!p.agent.usable);
    assert.throws(() => p.agent.open(), isNetError("ECLOSED"));
    await within(a2.write(enc("two")), "write on the last stream");
    const [b1, b2] = [await p.streams.next(), await p.streams.next()];
    assert.equal(dec((await within(b2.read(), "read"))!), "two");
    await within(b1.write(enc("one")), "write back");
    assert.equal(dec((await within(a1.read(), "read back"))!), "one");
  } finally {
    p.close();
  }
});

test(`${rt}: drain() with no stream open closes the link at once`, async () => {
  const p = await linkPair();
  try {
    p.agent.drain();
    await within(p.agent.closed, "agent closed");
    assert.equal(await within(p.agentClosed, "onClose"), null);
    await within(p.server.closed, "server closed");
    assert.throws(() => p.agent.open(), isNetError("ECLOSED"));
  } finally {
    p.close();
  }
});

// --- 10. the first option ---------------------------------------------------------------

test(`${rt}: first: an Error it returns for the first chunk fails the link via onClose`, async () => {
  const refused = new Error("the server refused the link");
  const seen: number[] = [];
  // As the agent's link reads a server's refusal (the link has granted ids).
  const r = await rawPeer("server", {
    first(chunk) {
      seen.push(chunk[0]!);
      return chunk[0] === 0x42 ? refused : null;
    },
  });
  try {
    await r.raw.sendBytes(Uint8Array.of(0x42, 0, 0, 0, 0, 0, 1, 0x99));
    assert.equal(await within(r.reason, "onClose"), refused);
    await within(r.link.closed, "closed");
    assert.deepEqual(seen, [0x42]);
    assert.equal(r.link.grant(1), 0);
    assert.ok(!r.link.usable);
    await within(r.raw.toEnd(), "raw peer sees EOF");
  } finally {
    r.close();
  }
});

test(`${rt}: first: null lets the link go on; later chunks are not inspected`, async () => {
  const seen: number[] = [];
  const r = await rawPeer("server", {
    first(chunk) {
      seen.push(chunk[0]!);
      return chunk[0] === 0x42 ? new Error("refused") : null;
    },
  });
  try {
    await r.raw.send(
      { type: "OPEN", stream: 1 },
      { type: "DATA", stream: 1, data: Uint8Array.of(0x42, 0x42) },
    );
    const a = await r.streams.next();
    assert.deepEqual([...(await within(a.read(), "read"))!], [0x42, 0x42]);
    await r.raw.send({ type: "DATA", stream: 1, data: enc("B") });
    assert.equal(dec((await within(a.read(), "read 2"))!), "B");
    assert.deepEqual(seen, [1]);
    assert.ok(r.link.usable);
  } finally {
    r.close();
  }
});

test(`${rt}: bytes read before the link (initial) come first, wherever they end`, async () => {
  const bytes = concat([
    encodeLinkFrame({ type: "OPEN", stream: 1 }),
    encodeLinkFrame({ type: "DATA", stream: 1, data: enc("hello") }),
    encodeLinkFrame({ type: "OPEN", stream: 2 }),
    encodeLinkFrame({ type: "DATA", stream: 2, data: enc("world") }),
    encodeLinkFrame({ type: "FIN", stream: 1 }),
  ]);
  for (let k = 0; k <= bytes.length; k++) {
    const { dialed, accepted } = await tcpPair();
    const streams = new Accepted();
    const link = new Link(accepted, { onStream: streams.push }, bytes.slice(0, k));
    link.grant(GRANTED); // before the initial bytes are taken
    try {
      if (k < bytes.length) await within(dialed.write(bytes.slice(k)), "write the rest");
      const [s1, s2] = [await streams.next(), await streams.next()];
      assert.equal(dec(await within(readAll(s1), "stream 1")), "hello", `split at ${k}`);
      assert.equal(dec(await within(readExactly(s2, 5), "stream 2")), "world", `split at ${k}`);
      assert.ok(link.usable, `split at ${k}`);
      assert.equal(link.opened, 2);
    } finally {
      link.close();
      dialed.close();
      accepted.close();
    }
  }
});

// --- 11. frames split at every byte boundary --------------------------------------------

test(`${rt}: frames arriving one byte per read give the streams their exact data`, async () => {
  const { dialed, accepted } = await tcpPair();
  const streams = new Accepted();
  const c = closeReason();
  const link = new Link(trickle(accepted), { onStream: streams.push, onClose: c.onClose });
  const raw = new Raw(dialed);
  link.grant(GRANTED);
  try {
    assert.deepEqual(await within(raw.next(), "GRANT"), { type: "GRANT", stream: GRANTED });
    const one = randomBytes(3001);
    const two = randomBytes(LINK_MAX_DATA);
    const three = Uint8Array.of(7);
    const extra = 70_000;
    await raw.send(
      { type: "OPEN", stream: 1 },
      { type: "DATA", stream: 1, data: one },
      { type: "OPEN", stream: 2 },
      { type: "DATA", stream: 2, data: two },
      { type: "WINDOW", stream: 1, increment: extra },
      { type: "DATA", stream: 1, data: three },
      { type: "FIN", stream: 2 },
      { type: "FIN", stream: 1 },
    );
    const [s1, s2] = [await streams.next(), await streams.next()];
    assertSame(await within(readAll(s1), "stream 1", 60_000), concat([one, three]), "stream 1");
    assertSame(await within(readAll(s2), "stream 2", 60_000), two, "stream 2");
    // The WINDOW was read too: stream 1 may send LINK_WINDOW + extra without waiting.
    const back = randomBytes(LINK_WINDOW + extra);
    const receiving = (async () => {
      const got: Uint8Array[] = [];
      let n = 0;
      for (let f = await raw.next(); f?.type !== "FIN"; f = await raw.next()) {
        assert.ok(f?.type === "DATA" && f.stream === 1, `got ${JSON.stringify(f?.type)}`);
        got.push(f.data.slice());
        n += f.data.length;
        assert.ok(n <= back.length, "more than was written");
      }
      return concat(got);
    })();
    await within(s1.write(back), "write the window and the grant");
    await within(s1.end(), "end");
    const got = await within(receiving, "the raw peer reads it");
    assertSame(got, back, "stream 1 back");
    assert.ok(link.usable);
    assert.ok(await stillPending(c.reason, 20), "the link failed");
  } finally {
    link.close();
    dialed.close();
    accepted.close();
  }
});

test(`${rt}: a byte-by-byte sender (one write per byte) is read the same`, async () => {
  const { dialed, accepted } = await tcpPair();
  const streams = new Accepted();
  const link = new Link(accepted, { onStream: streams.push });
  link.grant(GRANTED);
  try {
    const data = enc("split everywhere");
    const bytes = concat([
      encodeLinkFrame({ type: "OPEN", stream: 3 }),
      encodeLinkFrame({ type: "DATA", stream: 3, data }),
      encodeLinkFrame({ type: "WINDOW", stream: 3, increment: 0x01020304 }),
      encodeLinkFrame({ type: "FIN", stream: 3 }),
    ]);
    for (let i = 0; i < bytes.length; i++) {
      await within(dialed.write(bytes.subarray(i, i + 1)), "write a byte");
    }
    const s = await streams.next();
    assertSame(await within(readAll(s), "read"), data, "stream 3");
    assert.ok(link.usable);
  } finally {
    link.close();
    dialed.close();
    accepted.close();
  }
});

// --- 8. grants: the accepting side grants, the other opens within the grants ---------------

test(`${rt}: credit: the opener opens only what was granted; each GRANT raises the limit`, async () => {
  const grants: number[] = [];
  const { dialed, accepted } = await tcpPair();
  const streams: Conn[] = [];
  // The agent (dialing side) grants and accepts; the server opens.
  const agent = new Link(dialed, { onStream: (s) => void streams.push(s) });
  const server = new Link(accepted, { onGrant: (n) => void grants.push(n) });
  try {
    assert.equal(server.credit, 0);
    assert.throws(() => server.open(), isNetError("ECLOSED"), "nothing granted yet");
    assert.equal(agent.grant(3), 3);
    assert.equal(agent.granted, 3);
    assert.ok(await until(() => server.credit === 3), "GRANT arrived");
    assert.equal(agent.grant(2), 2);
    assert.ok(await until(() => server.credit === 5));
    assert.deepEqual(grants, [3, 2]);
    const opened = Array.from({ length: 5 }, () => server.open());
    assert.equal(server.credit, 0);
    assert.throws(() => server.open(), isNetError("ECLOSED"), "the grants are used up");
    await within(opened[4]!.write(enc("last")), "write");
    assert.ok(await until(() => streams.length === 5), "the agent got every stream");
    assert.equal(dec((await within(streams[4]!.read(), "read"))!), "last");
    await within(streams[4]!.write(enc("back")), "write back");
    assert.equal(dec((await within(opened[4]!.read(), "read back"))!), "back");
    // Only the granting side grants, and only on a usable link.
    assert.equal(server.grant(1), 0);
  } finally {
    agent.close();
    server.close();
    dialed.close();
    accepted.close();
  }
});

test(`${rt}: credit: grants stop at the last stream id`, async () => {
  const { dialed, accepted } = await tcpPair();
  const agent = new Link(dialed, { onStream: () => {}, lastId: 4 });
  const server = new Link(accepted, { onGrant: () => {} });
  try {
    assert.equal(agent.grant(3), 3);
    assert.equal(agent.grant(3), 1, "up to id 4 only");
    assert.equal(agent.grant(3), 0);
    assert.ok(await until(() => server.credit === 4));
  } finally {
    agent.close();
    server.close();
    dialed.close();
    accepted.close();
  }
});

const CREDIT_VIOLATIONS: Array<{
  name: string;
  /** The side the Link runs: it grants ("agent") or opens within grants ("server"). */
  side: "agent" | "server";
  setup: LinkFrame[];
  bad: LinkFrame;
  code: string;
  message: RegExp;
}> = [
  {
    name: "OPEN beyond the ids granted",
    side: "agent",
    setup: [{ type: "OPEN", stream: 1 }, { type: "OPEN", stream: 2 }],
    bad: { type: "OPEN", stream: 3 },
    code: "limit_exceeded",
    message: /beyond the 2 granted/,
  },
  {
    name: "GRANT to the side that grants",
    side: "agent",
    setup: [],
    bad: { type: "GRANT", stream: 9 },
    code: "unexpected_message",
    message: /does not open streams within grants/,
  },
  {
    name: "GRANT not above the one before",
    side: "server",
    setup: [{ type: "GRANT", stream: 5 }],
    bad: { type: "GRANT", stream: 5 },
    code: "invalid_message",
    message: /not above 5/,
  },
];

for (const v of CREDIT_VIOLATIONS) {
  test(`${rt}: credit: protocol violation fails the link: ${v.name}`, async () => {
    // The raw peer plays the other side; `rawPeer("server")` runs the Link on the accepting end.
    const r = await rawPeer(v.side === "agent" ? "server" : "agent", { grant: 0 });
    try {
      if (v.side === "agent") {
        assert.equal(r.link.grant(2), 2);
        assert.deepEqual(await within(r.raw.next(), "GRANT"), { type: "GRANT", stream: 2 });
      }
      if (v.setup.length > 0) await r.raw.send(...v.setup);
      assert.ok(await stillPending(r.link.closed, 100), "failed before the bad frame");
      await r.raw.send(v.bad);
      const why = await within(r.reason, "onClose");
      assert.ok(why instanceof ProtocolError, `onClose got ${String(why)}`);
      assert.equal(why.code, v.code);
      assert.match(why.message, v.message);
      await within(r.raw.toEnd(), "raw peer sees EOF");
    } finally {
      r.close();
    }
  });
}
