/**
 * The Reader under every unframed handshake (src/reader.ts): the SOCKS5
 * server side (socks5_server.ts) and the answers of outbound proxies
 * (proxy.ts), fed split at every byte, and past their limits. The input
 * comes from an in-memory Conn that hands out exactly the given chunks, so
 * each split is the one the test means (TCP would merge them at will).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EofError, ProxyError } from "../src/errors.ts";
import type { Conn } from "../src/net.ts";
import { parseProxyUrl, proxyHandshake } from "../src/proxy.ts";
import { Reader } from "../src/reader.ts";
import { acceptSocks } from "../src/socks5_server.ts";
import { parseGreeting } from "../src/socks5_decode.ts";

const enc = new TextEncoder();
const bytes = (...parts: Array<string | number[]>) =>
  Uint8Array.from(parts.flatMap((p) => typeof p === "string" ? [...enc.encode(p)] : p));

/** A Conn whose reads return `chunks` in order, then EOF; writes are kept. */
function chunked(chunks: Uint8Array[]): Conn & { written: Uint8Array[]; reads: number } {
  let i = 0;
  const c = {
    written: [] as Uint8Array[],
    reads: 0,
    local: { host: "127.0.0.1", port: 1 },
    remote: { host: "127.0.0.1", port: 2 },
    read: () => {
      c.reads++;
      return Promise.resolve(i < chunks.length ? chunks[i++]! : null);
    },
    write: (b: Uint8Array) => {
      c.written.push(b);
      return Promise.resolve();
    },
    end: () => Promise.resolve(),
    close: () => {},
    closed: Promise.resolve(),
    setNoDelay: () => {},
  };
  return c;
}

/** `all` in one chunk, cut in two at every byte, and a byte at a time. */
function splits(all: Uint8Array): Uint8Array[][] {
  const cuts = Array.from(
    { length: all.length },
    (_, k) => k === 0 ? [all] : [all.subarray(0, k), all.subarray(k)],
  );
  return [...cuts, [...all].map((b) => Uint8Array.of(b))];
}

/** What a Conn still holds after a handshake: `rest` plus its remaining reads. */
async function remaining(conn: Conn, rest: Uint8Array): Promise<string> {
  let out = new TextDecoder().decode(rest);
  for (let i = 0; i < 4; i++) {
    const b = await conn.read();
    if (b === null) break;
    out += new TextDecoder().decode(b);
  }
  return out;
}

test("reader: a chunk over the limit is refused unless the message ends within it", async () => {
  // A greeting with data behind it in one big chunk: the greeting is taken, the rest kept.
  const big = bytes([5, 1, 0], "x".repeat(100_000));
  const rd = new Reader(chunked([big]), 1024);
  assert.deepEqual(await rd.parse(parseGreeting, "greeting"), { methods: [0] });
  assert.equal(rd.rest().length, 100_000);
  // No message within the first `limit` bytes: refused, whatever follows.
  const never = (b: Uint8Array) => (b.length > 2000 ? { value: 1, size: 2000 } : null);
  await assert.rejects(
    new Reader(chunked([new Uint8Array(1_000_000)]), 1024).parse(never, "thing"),
    (e: unknown) => e instanceof EofError && /thing longer than 1024 bytes/.test(e.message),
  );
  // A byte at a time: refused at the limit, after reading no more than it.
  const slow = chunked(Array.from({ length: 5000 }, () => Uint8Array.of(0)));
  await assert.rejects(new Reader(slow, 1024).parse(never, "thing"), /longer than 1024/);
  assert.equal(slow.reads, 1024);
});

test("socks5 server: the handshake split at every byte gives the same result", async () => {
  const user = "alice@office";
  const all = bytes(
    [5, 2, 0, 2],
    [1, user.length],
    user,
    [3],
    "pw!",
    [5, 1, 0, 3, 9],
    "db.corp.x",
    [0, 80],
    "DATA",
  );
  const want = {
    ok: true,
    value: {
      username: user,
      command: "connect",
      target: { type: "domain", host: "db.corp.x", port: 80 },
    },
  };
  for (const chunks of splits(all)) {
    const conn = chunked(chunks);
    const rd = new Reader(conn, 1024);
    const a = await acceptSocks(conn, rd, {
      noAuth: false,
      checkUser: (u, p) => u === user && p === "pw!",
    });
    assert.deepEqual(a, want, `${chunks.length} chunks`);
    assert.equal(await remaining(conn, rd.rest()), "DATA");
  }
});

for (
  const [kind, url, answer] of [
    ["an HTTP CONNECT", "http://127.0.0.1:3128", [
      "HTTP/1.1 200 Connection established\r\nVia: 1.1 p\r\n\r\n",
    ]],
    ["a SOCKS5", "socks5h://alice:pw@127.0.0.1:1080", [[5, 2], [1, 0], [
      5,
      0,
      0,
      1,
      10,
      0,
      0,
      1,
      0x1b,
      0x59,
    ]]],
  ] as const
) {
  test(`proxy: ${kind} answer split at every byte gives the same tunnel`, async () => {
    const all = bytes(...answer.map((a) => typeof a === "string" ? a : [...a]), "BRRW");
    const p = parseProxyUrl(url);
    for (const chunks of splits(all)) {
      const conn = chunked(chunks);
      const rest = await proxyHandshake(conn, p, "server.example", 7001, () => Promise.resolve([]));
      assert.equal(await remaining(conn, rest), "BRRW", `${chunks.length} chunks`);
    }
  });
}

test("proxy: an answer over its limit is refused before more is kept, in one chunk or many", async () => {
  const p = parseProxyUrl("http://127.0.0.1:3128");
  const endless = bytes("HTTP/1.1 200 OK\r\n", "X: " + "y".repeat(100_000));
  for (const chunks of [[endless], [...endless.subarray(0, 20_000)].map((b) => Uint8Array.of(b))]) {
    const conn = chunked(chunks);
    await assert.rejects(
      proxyHandshake(conn, p, "server.example", 7001, () => Promise.resolve([])),
      (e: unknown) => e instanceof ProxyError && /longer than 16384 bytes/.test(e.message),
    );
    assert.ok(conn.reads <= 16384, `${conn.reads} reads`);
  }
  // SOCKS5: a reply with an unknown address type fails on its first bad byte.
  const bad = chunked([Uint8Array.of(5, 0), Uint8Array.of(5, 0, 0, 9), new Uint8Array(100_000)]);
  await assert.rejects(
    proxyHandshake(bad, parseProxyUrl("socks5h://127.0.0.1:1"), "s", 1, () => Promise.resolve([])),
    (e: unknown) => e instanceof ProxyError && /unknown address type 9/.test(e.message),
  );
  assert.equal(bad.reads, 2);
});
