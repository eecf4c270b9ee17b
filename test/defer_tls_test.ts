/**
 * Listeners with `deferTls` (src/net.ts, src/adapter/socket.ts): plain
 * connections that start server TLS with `Conn.startTls()` after a prologue
 * (a PROXY header), on the adapter of the runtime this file runs on (Deno
 * and Bun serve them with their `node:net` and `node:tls`):
 *
 *     node --import tsx --test test/defer_tls_test.ts
 *     deno test -A test/defer_tls_test.ts
 *     bun test test/defer_tls_test.ts
 *
 * The prologue and the ClientHello in one segment: the bytes read past the
 * prologue go to TLS. Then the conformance suite of test/conformance.ts
 * with TLS started at accept on every connection.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Conn, Net } from "../src/net.ts";
import { NetError } from "../src/errors.ts";
import { AcceptQueue } from "../src/adapter/mod.ts";
import { pump as pipe } from "../src/adapter/loopback_tls.ts";
import { generateCA, issueCert } from "../src/tls.ts";
import { conformance, pattern, readExactly, within } from "./conformance.ts";

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
// A computed specifier, so that each type checker sees only its own runtime.
const mod: { net: Net } = await import(`../runtimes/${runtime}/mod.ts`);
const net = mod.net;
const HOST = "127.0.0.1";
const ca = await generateCA();
const leaf = await issueCert(ca, ["localhost", "127.0.0.1"]);
const clientTls = { ca: [ca.cert], serverName: "localhost" };
const PROLOGUE = new TextEncoder().encode("PROLOGUE 0123456789\r\n");

test(`${runtime}: deferTls: bytes after the prologue in the same segment start TLS`, async () => {
  const server = await net.listen({ host: HOST, port: 0, tls: leaf, deferTls: true });
  const front = await net.listen({ host: HOST, port: 0 });
  const open: Conn[] = [];
  try {
    // A relay in front: the client's first bytes (the ClientHello) go to the
    // server in one write with the prologue before them.
    const relayed = (async () => {
      const c = (await front.accept())!;
      const first = (await c.read())!;
      const up = await net.dial(server.addr);
      open.push(c, up);
      await up.write(Uint8Array.from([...PROLOGUE, ...first]));
      void pipe(c, up);
      void pipe(up, c);
    })();
    const served = (async () => {
      const plain = (await server.accept())!;
      assert.equal(typeof plain.startTls, "function");
      let got = new Uint8Array(0);
      while (got.length < PROLOGUE.length) {
        got = Uint8Array.from([...got, ...(await plain.read())!]);
      }
      assert.deepEqual(got.subarray(0, PROLOGUE.length), PROLOGUE);
      assert.ok(got.length > PROLOGUE.length, "the ClientHello came in the same read");
      const conn = await plain.startTls!(got.subarray(PROLOGUE.length));
      open.push(conn);
      assert.deepEqual(conn.remote, plain.remote);
      assert.deepEqual(conn.local, plain.local);
      const data = await readExactly(conn, 100_000);
      await conn.write(data);
      await conn.end();
      return data;
    })();
    const client = await within(
      net.dial({ ...front.addr, tls: clientTls, timeoutMs: 5000 }),
      10_000,
      "TLS dial through the relay",
    );
    open.push(client);
    const sent = pattern(100_000, 7);
    await client.write(sent);
    const back = await within(readExactly(client, sent.length), 10_000, "echo");
    assert.deepEqual(back, sent);
    assert.equal(await within(client.read(), 10_000, "EOF"), null);
    assert.deepEqual(await served, sent);
    await relayed;
  } finally {
    for (const c of open) c.close();
    server.close();
    front.close();
  }
});

test(`${runtime}: deferTls: a listener without it has no working startTls; a bad certificate is ETLS`, async () => {
  const plain = await net.listen({ host: HOST, port: 0 });
  const c = await net.dial(plain.addr);
  const s = (await plain.accept())!;
  try {
    // Node's plain Conns have the method (one class for both) and refuse.
    if (s.startTls) await assert.rejects(s.startTls(new Uint8Array(0)), TypeError);
    await s.write(Uint8Array.of(7));
    assert.deepEqual([...(await c.read())!], [7], "still a working connection");
  } finally {
    c.close();
    s.close();
    plain.close();
  }
  await assert.rejects(
    net.listen({ host: HOST, port: 0, tls: { cert: "x", key: "y" }, deferTls: true }),
    (e) => e instanceof NetError && e.code === "ETLS",
  );
});

/**
 * `inner` with TLS on every dial, and TLS started on every connection its
 * listeners accept, at once (in a loop of their own, as the server does:
 * a TLS dial waits for its handshake, so for an `accept()` too otherwise).
 */
function withDeferredTls(inner: Net): Net {
  return {
    runtime: inner.runtime,
    lookup: (host) => inner.lookup(host),
    bindUdp: (opts) => inner.bindUdp(opts),
    dial: (opts) => inner.dial({ ...opts, tls: clientTls }),
    listen: async (opts) => {
      const l = await inner.listen({ ...opts, tls: leaf, deferTls: true });
      const queue = new AcceptQueue(l.addr, () => l.close());
      void (async () => {
        for await (const c of l) {
          c.startTls!(new Uint8Array(0)).then((t) => queue.push(t), () => c.close());
        }
      })();
      return queue;
    },
  };
}

conformance(withDeferredTls(net), runtime, `${runtime}+deferTls`);
