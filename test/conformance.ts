/**
 * Conformance suite for a {@link Net} adapter: the behaviour the core relies
 * on, the same on every runtime. test/adapter_test.ts runs it with the
 * adapter of the runtime it runs on.
 *
 * Every test closes what it opened (try/finally) and bounds every wait with
 * {@link within}; loops are bounded by byte counts. Only 127.0.0.1 is used.
 *
 * @module
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import process from "node:process";
import { type Conn, type Listener, type Net } from "../src/net.ts";
import { NetError } from "../src/errors.ts";

const HOST = "127.0.0.1";
const KiB = 1024;
const MiB = 1024 * KiB;

/** Rejects if `p` does not settle within `ms`; the timer is always cleared. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True if `p` fulfils within `ms`, false if still pending; rethrows a rejection. */
async function fulfilsWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true), pending]);
  } finally {
    clearTimeout(timer);
  }
}

/** Deterministic pseudo-random bytes (xorshift32). */
function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return out;
}

/** Reads until EOF; returns the byte count. `onChunk` sees every chunk. */
async function readToEnd(conn: Conn, onChunk?: (c: Uint8Array) => void): Promise<number> {
  let n = 0;
  for (let c = await conn.read(); c !== null; c = await conn.read()) {
    assert.ok(c.byteLength > 0, "read() returned an empty chunk");
    n += c.byteLength;
    onChunk?.(c);
  }
  return n;
}

/** Reads exactly `n` bytes (fails on EOF before). */
async function readExactly(conn: Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const c = await conn.read();
    assert.ok(c !== null, `EOF after ${off} of ${n} bytes`);
    assert.ok(off + c.byteLength <= n, "peer sent more than expected");
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/** Writes `total` bytes as `piece`-sized views of `block` (repeated). */
async function writeBlock(
  conn: Conn,
  block: Uint8Array,
  total: number,
  piece: number,
  onChunk?: (c: Uint8Array) => void,
): Promise<void> {
  for (let sent = 0; sent < total;) {
    const off = sent % block.byteLength;
    const c = block.subarray(off, Math.min(off + piece, block.byteLength, off + total - sent));
    onChunk?.(c);
    await conn.write(c);
    sent += c.byteLength;
  }
}

/** Reads until EOF or an error; never throws. For peers of aborted conns. */
async function drainQuietly(conn: Conn): Promise<void> {
  try {
    while ((await conn.read()) !== null);
  } catch {
    // an error is an acceptable outcome
  }
}

function isNetError(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof NetError, `expected NetError ${code}, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  };
}

const rss = () => process.memoryUsage().rss;

interface Pair {
  listener: Listener;
  client: Conn;
  server: Conn;
}

async function pair(net: Net): Promise<Pair> {
  const listener = await net.listen({ host: HOST, port: 0 });
  try {
    const [client, server] = await within(
      Promise.all([net.dial({ host: HOST, port: listener.addr.port }), listener.accept()]),
      10_000,
      "dial/accept",
    );
    assert.ok(server !== null);
    return { listener, client, server };
  } catch (e) {
    listener.close();
    throw e;
  }
}

async function closePair({ listener, client, server }: Pair): Promise<void> {
  client.close();
  server.close();
  listener.close();
  await within(Promise.all([client.closed, server.closed]), 10_000, "closed");
}

/**
 * Wraps `inner` to record every connection and listener the tests open, so
 * the last test can check that each was closed.
 */
function tracked(inner: Net) {
  const conns: Conn[] = [];
  const listeners = new Set<Listener>();
  const conn = (c: Conn) => (conns.push(c), c);
  const net: Net = {
    runtime: inner.runtime,
    lookup: (host) => inner.lookup(host),
    bindUdp: (opts) => inner.bindUdp(opts),
    dial: async (opts) => conn(await inner.dial(opts)),
    listen: async (opts) => {
      const l = await inner.listen(opts);
      const w: Listener = {
        addr: l.addr,
        accept: async () => {
          const c = await l.accept();
          return c && conn(c);
        },
        close: () => {
          listeners.delete(w);
          l.close();
        },
        async *[Symbol.asyncIterator]() {
          for await (const c of l) yield conn(c);
        },
      };
      listeners.add(w);
      return w;
    },
  };
  return { net, conns, listeners };
}

/**
 * Registers the conformance tests for `net`, whose runtime is `name`; test
 * names are prefixed with `label` (default `name`).
 */
export function conformance(adapter: Net, name: string, label: string = name): void {
  const { net, conns, listeners } = tracked(adapter);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  const runtimeName = name;
  name = label;

  before(() => void process.on("unhandledRejection", onUnhandled));
  after(() => void process.off("unhandledRejection", onUnhandled));

  test(`${name}: runtime name`, () => {
    assert.equal(adapter.runtime, runtimeName);
  });

  test(`${name}: listen on port 0 reports the real port and addresses`, async () => {
    const p = await pair(net);
    try {
      const port = p.listener.addr.port;
      assert.equal(p.listener.addr.host, HOST);
      assert.ok(port > 0 && port < 65536, `port ${port}`);
      assert.deepEqual(p.client.remote, { host: HOST, port });
      assert.deepEqual(p.server.local, { host: HOST, port });
      assert.deepEqual(p.server.remote, p.client.local);
      p.client.setNoDelay(false);
      p.client.setNoDelay(true);
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: listener accept() gives null after close, iterator ends, EADDRINUSE`, async () => {
    const l = await net.listen({ host: HOST, port: 0 });
    try {
      await assert.rejects(net.listen({ host: HOST, port: l.addr.port }), isNetError("EADDRINUSE"));
      const pending = l.accept();
      const c = await net.dial({ host: HOST, port: l.addr.port, timeoutMs: 5_000 });
      const s = await within(pending, 5_000, "accept");
      assert.ok(s !== null);
      c.close();
      s.close();
      const iterated: Conn[] = [];
      const iterating = (async () => {
        for await (const x of l) iterated.push(x);
      })();
      const waiting = l.accept();
      l.close();
      assert.equal(await within(waiting, 5_000, "accept after close"), null);
      await within(iterating, 5_000, "iterator end");
      assert.equal(iterated.length, 0);
      assert.equal(await l.accept(), null);
    } finally {
      l.close();
    }
  });

  test(`${name}: echo 64 MiB with checksum`, async () => {
    const p = await pair(net);
    try {
      const secs = await echoChecked(p.client, p.server, 64 * MiB, 45_000);
      console.log(
        `${name}: echo 64 MiB in ${secs.toFixed(2)} s, ${(64 / secs).toFixed(0)} MiB/s each way`,
      );
      await within(
        Promise.all([p.client.closed, p.server.closed]),
        10_000,
        "closed after both ends",
      );
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: write blocks when the peer does not read; memory stays bounded`, async () => {
    const p = await pair(net);
    try {
      const chunk = pattern(MiB, 7);
      const rss0 = rss();
      let peak = rss0;
      let accepted = 0;
      let blocked: Promise<void> | null = null;
      for (let i = 0; i < 256 && blocked === null; i++) {
        const w = p.client.write(chunk);
        if (await fulfilsWithin(w, 500)) accepted += chunk.byteLength;
        else blocked = w;
        peak = Math.max(peak, rss());
      }
      assert.ok(blocked !== null, `256 MiB written to a peer that does not read`);
      assert.ok(accepted <= 64 * MiB, `${accepted / MiB} MiB accepted before blocking`);
      const grown = (peak - rss0) / MiB;
      assert.ok(grown < 128, `rss grew by ${grown.toFixed(0)} MiB`);
      console.log(
        `${name}: blocked after ${(accepted / MiB).toFixed(0)} MiB, rss +${grown.toFixed(0)} MiB`,
      );
      // once the peer reads, the blocked write completes and every byte arrives
      const reading = readToEnd(p.server);
      await within(blocked, 10_000, "blocked write");
      await p.client.end();
      assert.equal(await within(reading, 10_000, "drain"), accepted + chunk.byteLength);
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: half-close, client ends first, server still sends 1 MiB`, async () => {
    const p = await pair(net);
    try {
      const data = pattern(MiB, 3);
      await p.client.write(new TextEncoder().encode("ping"));
      await p.client.end();
      await assert.rejects(p.client.write(data), isNetError("ECLOSED"));
      const server = async () => {
        const got = await readExactly(p.server, 4);
        assert.equal(new TextDecoder().decode(got), "ping");
        assert.equal(await p.server.read(), null);
        assert.equal(await p.server.read(), null, "EOF is sticky");
        await writeBlock(p.server, data, data.byteLength, 64 * KiB);
        await p.server.end();
      };
      const hash = createHash("sha256");
      const [, n] = await within(
        Promise.all([server(), readToEnd(p.client, (c) => hash.update(c))]),
        10_000,
        "half-close",
      );
      assert.equal(n, data.byteLength);
      assert.equal(hash.digest("hex"), createHash("sha256").update(data).digest("hex"));
      await within(
        Promise.all([p.client.closed, p.server.closed]),
        10_000,
        "closed after both ends",
      );
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: half-close, server ends first, client still sends 1 MiB`, async () => {
    const p = await pair(net);
    try {
      const data = pattern(MiB, 5);
      const server = async () => {
        await writeBlock(p.server, data, data.byteLength, 256 * KiB);
        await p.server.end();
        return readToEnd(p.server);
      };
      const client = async () => {
        assert.equal(await readToEnd(p.client), data.byteLength);
        await writeBlock(p.client, data, data.byteLength, 100_000);
        await p.client.end();
      };
      const [n] = await within(Promise.all([server(), client()]), 10_000, "half-close");
      assert.equal(n, data.byteLength);
      await within(
        Promise.all([p.client.closed, p.server.closed]),
        10_000,
        "closed after both ends",
      );
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: dial a closed port gives ECONNREFUSED`, async () => {
    const l = await net.listen({ host: HOST, port: 0 });
    const port = l.addr.port;
    l.close();
    // With an accept pending (the Deno TLS listener always has one), Deno
    // releases the socket one event-loop turn after close(); a dial within
    // that turn is reset instead of refused.
    await new Promise((r) => setTimeout(r, 0));
    await assert.rejects(
      within(net.dial({ host: HOST, port, timeoutMs: 5_000 }), 10_000, "dial"),
      isNetError("ECONNREFUSED"),
    );
  });

  test(`${name}: 1000 concurrent connections`, async () => {
    const count = 1000;
    const l = await net.listen({ host: HOST, port: 0 });
    const conns: Conn[] = [];
    try {
      const handlers: Promise<void>[] = [];
      const serve = async (s: Conn) => {
        await s.write(await readExactly(s, 8));
        assert.equal(await s.read(), null);
        await s.end();
      };
      const acceptAll = async () => {
        for (let i = 0; i < count; i++) {
          const s = await l.accept();
          assert.ok(s !== null);
          conns.push(s);
          handlers.push(serve(s));
        }
      };
      const client = async (i: number) => {
        const c = await net.dial({ host: HOST, port: l.addr.port });
        conns.push(c);
        const msg = new Uint8Array(8);
        new DataView(msg.buffer).setFloat64(0, i);
        await c.write(msg);
        assert.deepEqual(await readExactly(c, 8), msg);
        await c.end();
        assert.equal(await c.read(), null);
      };
      const clients = Array.from({ length: count }, (_, i) => client(i));
      await within(Promise.all([acceptAll(), ...clients]), 30_000, "1000 connections");
      await within(Promise.all(handlers), 10_000, "server handlers");
      await within(Promise.all(conns.map((c) => c.closed)), 10_000, "all closed");
    } finally {
      for (const c of conns) c.close();
      l.close();
    }
  });

  test(`${name}: close() during a pending big write`, async () => {
    const p = await pair(net);
    try {
      const big = new Uint8Array(32 * MiB);
      const settled = (x: Promise<void>) => x.then(() => "fulfilled", (e: unknown) => e);
      const w = settled(p.client.write(big));
      const e = settled(p.client.end()); // pending too: it waits for the write
      p.client.close();
      p.client.close(); // idempotent
      for (
        const [what, outcome] of [["write", await within(w, 10_000, "write")], [
          "end",
          await within(e, 10_000, "end"),
        ]]
      ) {
        if (outcome !== "fulfilled") {
          assert.ok(outcome instanceof NetError, `${what} rejected with ${String(outcome)}`);
        }
      }
      await within(drainQuietly(p.server), 10_000, "peer read");
      await within(p.client.closed, 10_000, "closed");
      await assert.rejects(p.client.write(big), (e) => e instanceof NetError);
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: close() during a pending read; write and end after close reject`, async () => {
    const p = await pair(net);
    try {
      const r = p.client.read();
      p.client.close();
      assert.equal(await within(r, 5_000, "read after close"), null);
      assert.equal(await p.client.read(), null);
      await assert.rejects(p.client.write(new Uint8Array(1)), isNetError("ECLOSED"));
      await assert.rejects(p.client.end(), isNetError("ECLOSED"));
      await within(p.client.closed, 5_000, "closed");
      await within(drainQuietly(p.server), 5_000, "peer read");
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: lookup("localhost") and IP literals`, async () => {
    const ips = await net.lookup("localhost");
    assert.ok(ips.includes("127.0.0.1") || ips.includes("::1"), `localhost -> ${ips.join(", ")}`);
    assert.deepEqual(await net.lookup("127.0.0.1"), ["127.0.0.1"]);
    assert.deepEqual(await net.lookup("::1"), ["::1"]);
  });

  test(`${name}: data and FIN sent before accept() are delivered`, async () => {
    const l = await net.listen({ host: HOST, port: 0 });
    let c: Conn | undefined, s: Conn | null = null;
    try {
      c = await net.dial({ host: HOST, port: l.addr.port });
      const data = pattern(100 * KiB, 11);
      await c.write(data);
      await c.end();
      s = await within(l.accept(), 5_000, "accept");
      assert.ok(s !== null);
      assert.deepEqual(await within(readExactly(s, data.byteLength), 5_000, "read"), data);
      assert.equal(await s.read(), null);
    } finally {
      c?.close();
      s?.close();
      l.close();
    }
  });

  test(`${name}: concurrent writes keep their order`, async () => {
    const p = await pair(net);
    try {
      const block = pattern(4 * MiB, 13);
      const writes: Promise<void>[] = [];
      const want = createHash("sha256");
      for (let off = 0; off < block.byteLength; off += 32 * KiB + 5) {
        const c = block.subarray(off, off + 32 * KiB + 5);
        want.update(c);
        writes.push(p.client.write(c)); // not awaited one by one
      }
      const ending = Promise.all(writes).then(() => p.client.end());
      const got = createHash("sha256");
      const [n] = await within(
        Promise.all([readToEnd(p.server, (c) => got.update(c)), ending]),
        10_000,
        "writes",
      );
      assert.equal(n, block.byteLength);
      assert.equal(got.digest("hex"), want.digest("hex"));
    } finally {
      await closePair(p);
    }
  });

  test(`${name}: every connection and listener was closed`, async () => {
    assert.equal(listeners.size, 0, "listeners left open");
    await within(
      Promise.all(conns.map((c) => c.closed)),
      5_000,
      `${conns.length} connections closed`,
    );
  });

  test(`${name}: no unhandled rejections`, () => {
    assert.deepEqual(unhandled, []);
  });
}

/**
 * `client` sends `total` bytes (a pattern whose blocks straddle chunk
 * boundaries) and ends; `server` echoes and ends; both directions are
 * checked by SHA-256. Resolves with the seconds it took.
 */
async function echoChecked(
  client: Conn,
  server: Conn,
  total: number,
  timeoutMs: number,
): Promise<number> {
  const block = pattern(MiB + 4 * 13, 42); // not a power of two: chunks straddle
  const sent = createHash("sha256");
  const got = createHash("sha256");
  const echo = async () => {
    for (let c = await server.read(); c !== null; c = await server.read()) await server.write(c);
    await server.end();
  };
  const send = async () => {
    await writeBlock(client, block, total, 64 * KiB, (c) => sent.update(c));
    await client.end();
  };
  const t0 = performance.now();
  const [, , n] = await within(
    Promise.all([echo(), send(), readToEnd(client, (c) => got.update(c))]),
    timeoutMs,
    "echo",
  );
  assert.equal(n, total);
  assert.equal(got.digest("hex"), sent.digest("hex"));
  return (performance.now() - t0) / 1000;
}

// Helpers shared with test/tls_test.ts.
export {
  drainQuietly,
  echoChecked,
  fulfilsWithin,
  isNetError,
  pattern,
  readExactly,
  readToEnd,
  tracked,
  within,
  writeBlock,
};
