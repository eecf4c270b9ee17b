/**
 * Conformance suite for the UDP side of a {@link Net} adapter
 * (`bindUdp`, src/net.ts): the same behaviour on every runtime.
 * test/adapter_test.ts runs it with the adapter of the runtime it runs on.
 *
 * Every test closes the sockets it bound (try/finally) and bounds every
 * wait with {@link within}; loops are bounded by counts. Only 127.0.0.1
 * and ::1 are used. Bursts stay far below the kernel's receive buffer (64
 * KiB on Deno), so that every drop is the adapter's own and counted.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { setImmediate } from "node:timers";
import { type Datagram, type DatagramSocket, type Net, UDP_MAX_PAYLOAD } from "../src/net.ts";
import { fulfilsWithin, isNetError, pattern, within } from "./conformance.ts";

const MiB = 1024 * 1024;

/** Resolves once `cond()` holds, polling every 10 ms; rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not true after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * RSS, after a full collection on Bun: its collector lets the garbage of a
 * flood (each received datagram is a fresh buffer, dropped ones too) pile
 * up past 64 MiB under load, which is not memory the socket keeps.
 */
function rssAfterGc(): number {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
  return process.memoryUsage().rss;
}

/** Binds the sockets `hosts` name, runs `body` with them, closes them all. */
async function withSockets(
  net: Net,
  hosts: { host: string; queue?: number; queueBytes?: number }[],
  body: (socks: DatagramSocket[]) => Promise<void>,
): Promise<void> {
  const socks: DatagramSocket[] = [];
  try {
    for (const h of hosts) socks.push(await net.bindUdp(h));
    await body(socks);
  } finally {
    for (const s of socks) s.close();
    await within(Promise.all(socks.map((s) => s.closed)), 5_000, "sockets closed");
  }
}

const receive = (s: DatagramSocket, what = "receive"): Promise<Datagram> =>
  within(s.receive(), 5_000, what).then((d) => {
    assert.ok(d !== null, `${what}: socket closed`);
    return d;
  });

/** A 4-byte big-endian sequence number, then `size - 4` bytes of pattern. */
function numbered(seq: number, size: number): Uint8Array {
  const d = pattern(size, seq + 1);
  new DataView(d.buffer).setUint32(0, seq);
  return d;
}
const seqOf = (d: Datagram) => new DataView(d.data.buffer, d.data.byteOffset).getUint32(0);

/** Registers the UDP conformance tests for `net`, names prefixed with `name`. */
export function udpConformance(net: Net, name: string): void {
  for (const host of ["127.0.0.1", "::1"]) {
    test(`${name}: UDP on ${host}: echo, with the sender's address`, async () => {
      await withSockets(net, [{ host }, { host }], async ([server, client]) => {
        assert.ok(server && client);
        assert.equal(server.addr.host, host);
        assert.ok(server.addr.port > 0 && server.addr.port !== client.addr.port);
        const echo = (async () => {
          for (let i = 0; i < 3; i++) {
            const d = await receive(server, "server receive");
            await server.send(d.data, d.from);
          }
        })();
        for (let i = 0; i < 3; i++) {
          const sent = numbered(i, 100 + i);
          await client.send(sent, server.addr);
          const back = await receive(client, "client receive");
          assert.deepEqual(back.from, server.addr);
          assert.deepEqual(back.data, sent);
        }
        await within(echo, 5_000, "echo");
      });
    });
  }

  test(`${name}: UDP datagrams of 0 to ${UDP_MAX_PAYLOAD} bytes arrive whole`, async () => {
    await withSockets(net, [{ host: "127.0.0.1" }, { host: "127.0.0.1" }], async ([a, b]) => {
      assert.ok(a && b);
      for (const size of [0, 1, 1472, 9000, UDP_MAX_PAYLOAD]) {
        const sent = pattern(size, size + 7);
        await b.send(sent, a.addr);
        const got = await receive(a, `receive ${size} bytes`);
        assert.equal(got.data.byteLength, size);
        assert.deepEqual(got.data, sent);
        assert.deepEqual(got.from, b.addr);
      }
    });
  });

  test(`${name}: UDP burst over the receive queue: the first are kept, the rest counted`, async () => {
    const queue = 8;
    const burst = 40;
    await withSockets(
      net,
      [{ host: "127.0.0.1", queue }, { host: "127.0.0.1" }],
      async ([a, b]) => {
        assert.ok(a && b);
        for (let i = 0; i < burst; i++) await b.send(numbered(i, 64), a.addr);
        await until(() => a.dropped === burst - queue, 5_000, `${burst - queue} dropped`);
        for (let i = 0; i < queue; i++) assert.equal(seqOf(await receive(a)), i);
        const next = a.receive(); // the queue is empty: nothing more came
        assert.equal(await fulfilsWithin(next, 100), false, "a datagram beyond the queue");
        await b.send(numbered(1000, 64), a.addr); // and the socket still works
        const d = await within(next, 5_000, "receive after the burst");
        assert.ok(d !== null);
        assert.equal(seqOf(d), 1000);
        assert.equal(a.dropped, burst - queue);
      },
    );
  });

  test(`${name}: UDP receive queue bounded by bytes`, async () => {
    const opts = { host: "127.0.0.1", queue: 1000, queueBytes: 4000 };
    await withSockets(net, [opts, { host: "127.0.0.1" }], async ([a, b]) => {
      assert.ok(a && b);
      for (let i = 0; i < 20; i++) await b.send(numbered(i, 1000), a.addr);
      await until(() => a.dropped === 16, 5_000, "16 dropped");
      for (let i = 0; i < 4; i++) assert.equal(seqOf(await receive(a)), i);
    });
  });

  test(`${name}: UDP flood of a reader that never reads: memory stays bounded`, async () => {
    await withSockets(net, [{ host: "127.0.0.1" }, { host: "127.0.0.1" }], async ([a, b]) => {
      assert.ok(a && b);
      const block = pattern(8000, 3);
      const rss0 = rssAfterGc();
      let peak = rss0;
      for (let i = 0; i < 20_000; i++) { // 160 MB sent, at most 1 MiB of it kept
        await b.send(block, a.addr);
        // Let the runtime read its kernel buffer (a send's callback does not).
        if (i % 4 === 3) await new Promise((r) => setImmediate(r));
        if (i % 500 === 0) peak = Math.max(peak, rssAfterGc());
      }
      await until(() => a.dropped > 0, 5_000, "drops counted");
      peak = Math.max(peak, rssAfterGc());
      assert.ok(peak - rss0 < 64 * MiB, `rss grew by ${((peak - rss0) / MiB).toFixed(1)} MiB`);
      let kept = 0;
      while (await fulfilsWithin(a.receive().then(() => kept++), 50));
      // The queue's 1 MiB, and what the kernel's buffer (at most 208 KiB on
      // loopback) still held when the drain made room.
      const most = MiB + 256 * 1024;
      assert.ok(kept > 0 && kept * block.byteLength <= most, `${kept} datagrams kept`);
    });
  });

  test(`${name}: UDP close releases the port; receive and send after it`, async () => {
    const a = await net.bindUdp({ host: "127.0.0.1" });
    const port = a.addr.port;
    const pending = a.receive();
    a.close();
    a.close(); // idempotent
    assert.equal(await within(pending, 5_000, "pending receive"), null);
    await within(a.closed, 5_000, "closed");
    assert.equal(await a.receive(), null);
    await assert.rejects(
      a.send(new Uint8Array(1), { host: "127.0.0.1", port: 9 }),
      isNetError("ECLOSED"),
    );
    const again = await net.bindUdp({ host: "127.0.0.1", port });
    assert.equal(again.addr.port, port);
    again.close();
    await within(again.closed, 5_000, "closed");
  });

  test(`${name}: UDP errors are NetErrors: port in use, bad addresses, too big`, async () => {
    await withSockets(net, [{ host: "127.0.0.1" }, { host: "::1" }], async ([a, a6]) => {
      assert.ok(a && a6);
      await assert.rejects(
        net.bindUdp({ host: "127.0.0.1", port: a.addr.port }),
        isNetError("EADDRINUSE"),
      );
      await assert.rejects(net.bindUdp({ host: "localhost" }), isNetError("EINVAL"));
      await assert.rejects(net.bindUdp({ host: "127.0.0.1", port: 70000 }), isNetError("EINVAL"));
      const one = new Uint8Array(1);
      const bad: [DatagramSocket, string, number][] = [
        [a, "example.com", 53], // no name resolution
        [a, "127.0.0.1", 0],
        [a, "127.0.0.1", 65536],
        [a, "::1", a6.addr.port], // the other family
        [a6, "127.0.0.1", a.addr.port],
      ];
      for (const [s, host, port] of bad) {
        await assert.rejects(s.send(one, { host, port }), isNetError("EINVAL"), `${host}:${port}`);
      }
      const big = new Uint8Array(UDP_MAX_PAYLOAD + 1);
      await assert.rejects(a.send(big, a.addr), isNetError("EINVAL"));
      // Nothing of it was sent, and the socket still works.
      await a.send(one, a.addr);
      const d = await receive(a);
      assert.equal(d.data.byteLength, 1);
      assert.equal(a.dropped, 0);
    });
  });
}
