/**
 * The bit of HTTP/1.1 burrow reads itself (src/http1.ts): request heads
 * arriving in pieces of any size, within their limits; Host and target
 * checks; reason phrases.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HttpError } from "../src/errors.ts";
import { HEAD_LIMIT, originForm, parseHost, readRequestHead, reasonPhrase } from "../src/http1.ts";
import type { Conn } from "../src/net.ts";
import { Reader } from "../src/reader.ts";

/** A reader over `bytes` delivered in pieces of `step` bytes (only `read` is used by Reader). */
function pieces(bytes: Uint8Array, step: number): Reader {
  let at = 0;
  const conn = {
    read: () => {
      if (at >= bytes.length) return Promise.resolve(null);
      const c = bytes.slice(at, at + step);
      at += step;
      return Promise.resolve(c);
    },
  } as unknown as Conn;
  return new Reader(conn, HEAD_LIMIT);
}

test("http1: a request head is found in pieces of every size, and what follows is kept", async () => {
  const head = "POST /api/v1/x?y=1 HTTP/1.1\r\nHost: burrow\r\nContent-Length: 3\r\n\r\n";
  const bytes = new TextEncoder().encode(head + "abc");
  for (let step = 1; step <= bytes.length; step++) {
    const rd = pieces(bytes, step);
    const h = await readRequestHead(rd);
    assert.equal(h.method, "POST", `step ${step}`);
    assert.equal(h.target, "/api/v1/x?y=1");
    assert.equal(h.headers.get("content-length"), "3");
    const rest = new TextDecoder().decode(rd.rest());
    assert.ok("abc".startsWith(rest), `step ${step}: rest ${JSON.stringify(rest)}`);
  }
});

test("http1: a head over the byte limit is refused even when it ends within one piece", async () => {
  const head = `GET / HTTP/1.1\r\nHost: burrow\r\nx: ${"a".repeat(HEAD_LIMIT)}\r\n\r\n`;
  for (const step of [1000, head.length]) {
    await assert.rejects(
      readRequestHead(pieces(new TextEncoder().encode(head), step)),
      (e: unknown) => e instanceof HttpError && e.status === 431 && e.limit === "http_head_bytes",
    );
  }
});

test("http1: Host headers and request targets", () => {
  assert.deepEqual(parseHost("Burrow.Example:8443"), {
    host: "burrow.example",
    port: 8443,
    ip: false,
  });
  assert.deepEqual(parseHost("[::1]"), { host: "::1", port: null, ip: true });
  assert.deepEqual(parseHost("127.0.0.1:80"), { host: "127.0.0.1", port: 80, ip: true });
  for (const bad of ["", "[", "x:99999", "user@evil", "a/b", "[1.2.3.4]", "a b", "x:", ":80"]) {
    assert.throws(
      () => parseHost(bad),
      (e: unknown) => e instanceof HttpError && e.status === 400,
      JSON.stringify(bad),
    );
  }
  assert.equal(originForm("/a/b?c"), "/a/b?c");
  for (const bad of ["a/b?c#d", "*", "http://x/", "/a#b"]) {
    assert.throws(() => originForm(bad), /is not a path \(origin-form\)/, bad);
  }
  assert.equal(reasonPhrase(404), "Not Found");
  assert.equal(reasonPhrase(421), "Misdirected Request");
  assert.equal(reasonPhrase(299), "");
});
