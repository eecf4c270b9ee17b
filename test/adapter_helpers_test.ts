/**
 * The runtime-free helpers every adapter uses (src/adapter/), without
 * sockets: the error mapping table, the read queue, the drain waiters, the
 * accept queue, and the entry points' secret file and log line.
 *
 *     node --import tsx --test test/adapter_helpers_test.ts
 *     deno test -A test/adapter_helpers_test.ts
 *     bun test test/adapter_helpers_test.ts
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  acceptAll,
  AcceptQueue,
  checkPin,
  closedError,
  dirname,
  listenError,
  ReadQueue,
  secretFileReader,
  secretFileWriter,
  timedOut,
  toNetError,
  unhandledRejectionLine,
  unusableCertificate,
  Waiters,
} from "../src/adapter/mod.ts";
import { type Conn } from "../src/net.ts";
import { NetError, type NetErrorCode } from "../src/errors.ts";

const bytes = (...xs: number[]) => new Uint8Array(xs);

/** What `p` has done after the pending callbacks ran (one macrotask). */
async function state(p: Promise<unknown>): Promise<"pending" | "fulfilled" | "rejected"> {
  let s: "pending" | "fulfilled" | "rejected" = "pending";
  p.then(() => (s = "fulfilled"), () => (s = "rejected"));
  await new Promise((r) => setTimeout(r, 0));
  return s;
}

/** An error as a runtime would throw it. */
function runtimeError(fields: { code?: string; name?: string; message?: string }): Error {
  const e = new Error(fields.message ?? "boom") as Error & { code?: string };
  if (fields.name !== undefined) e.name = fields.name;
  if (fields.code !== undefined) e.code = fields.code;
  return e;
}

// ---------------------------------------------------------------- errors

test("adapter errors: runtime codes and names map onto NetError codes", () => {
  const cases: Array<[{ code?: string; name?: string; message?: string }, NetErrorCode]> = [
    // kept as they are
    [{ code: "ECONNREFUSED" }, "ECONNREFUSED"],
    [{ code: "EHOSTUNREACH" }, "EHOSTUNREACH"],
    [{ code: "ENETUNREACH" }, "ENETUNREACH"],
    [{ code: "ENOTFOUND" }, "ENOTFOUND"],
    [{ code: "ETIMEDOUT" }, "ETIMEDOUT"],
    [{ code: "ECONNRESET" }, "ECONNRESET"],
    [{ code: "EPIPE" }, "EPIPE"],
    [{ code: "EADDRINUSE" }, "EADDRINUSE"],
    // aliases (Node, Bun, Deno)
    [{ code: "ECONNABORTED" }, "ECONNRESET"],
    [{ code: "EAI_NONAME" }, "ENOTFOUND"],
    [{ code: "EAI_AGAIN" }, "ENOTFOUND"],
    [{ code: "EAI_NODATA" }, "ENOTFOUND"],
    [{ code: "ERR_STREAM_DESTROYED" }, "ECLOSED"],
    [{ code: "ERR_STREAM_WRITE_AFTER_END" }, "ECLOSED"],
    [{ code: "ERR_SOCKET_CLOSED" }, "ECLOSED"],
    // Bun's DNS_ prefix
    [{ code: "DNS_ENOTFOUND" }, "ENOTFOUND"],
    [{ code: "DNS_ENODATA" }, "ENOTFOUND"],
    // Deno: code and class name, class name alone, words
    [{ code: "ECONNREFUSED", name: "ConnectionRefused" }, "ECONNREFUSED"],
    [{ name: "BadResource" }, "ECLOSED"],
    [{ name: "Interrupted" }, "ECLOSED"],
    [{ name: "NotConnected" }, "ECLOSED"],
    [{ name: "UnexpectedEof" }, "ECONNRESET"],
    [{ message: "failed to lookup address information: Name or service not known" }, "ENOTFOUND"],
    // TLS codes of OpenSSL, BoringSSL and node:tls
    [{ code: "ERR_SSL_WRONG_VERSION_NUMBER" }, "ETLS"],
    [{ code: "ERR_TLS_CERT_ALTNAME_INVALID" }, "ETLS"],
    [{ code: "ERR_OSSL_PEM_NO_START_LINE" }, "ETLS"],
    [{ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }, "ETLS"],
    [{ code: "DEPTH_ZERO_SELF_SIGNED_CERT" }, "ETLS"],
    [{ code: "SELF_SIGNED_CERT_IN_CHAIN" }, "ETLS"],
    [{ code: "CERT_HAS_EXPIRED" }, "ETLS"],
    [{ code: "HOSTNAME_MISMATCH" }, "ETLS"],
    // nothing known
    [{ code: "EWHATEVER" }, "EOTHER"],
    [{}, "EOTHER"],
    [{ name: "InvalidData", message: "received corrupt message" }, "EOTHER"], // not TLS
    // no prototype lookups
    [{ code: "toString" }, "EOTHER"],
    [{ name: "constructor" }, "EOTHER"],
  ];
  for (const [fields, want] of cases) {
    const e = runtimeError(fields);
    const got = toNetError(e);
    assert.ok(got instanceof NetError, JSON.stringify(fields));
    assert.equal(got.code, want, JSON.stringify(fields));
    assert.equal(got.cause, e);
  }
});

test("adapter errors: messages, TLS context, fallback, non-errors", () => {
  const plain = toNetError(runtimeError({ code: "ECONNREFUSED", message: "refused" }));
  assert.equal(plain.message, "refused");
  const tls = toNetError(runtimeError({ code: "ERR_SSL_X", message: "bad record" }));
  assert.equal(tls.message, "TLS: bad record (ERR_SSL_X)");

  // Deno's TLS errors carry no code: words and InvalidData count on a TLS connection
  const invalid = runtimeError({ name: "InvalidData", message: "received corrupt message" });
  assert.equal(toNetError(invalid, { tls: true }).code, "ETLS");
  assert.equal(toNetError(invalid, { tls: true }).message, "TLS: received corrupt message");
  const words = runtimeError({ message: "invalid peer certificate: UnknownIssuer" });
  assert.equal(toNetError(words).code, "EOTHER");
  assert.equal(toNetError(words, { tls: true }).code, "ETLS");
  // a code or name still wins on a TLS connection
  assert.equal(toNetError(runtimeError({ code: "ECONNRESET" }), { tls: true }).code, "ECONNRESET");
  assert.equal(
    toNetError(runtimeError({ name: "UnexpectedEof" }), { tls: true }).code,
    "ECONNRESET",
  );

  // fallback: what nothing classifies
  assert.equal(toNetError(runtimeError({ code: "EWHATEVER" }), { fallback: "ETLS" }).code, "ETLS");
  assert.equal(
    toNetError(runtimeError({ code: "EWHATEVER", message: "m" }), { fallback: "ETLS" }).message,
    "TLS: m (EWHATEVER)",
  );
  assert.equal(toNetError(runtimeError({ code: "EPIPE" }), { fallback: "ETLS" }).code, "EPIPE");

  // a NetError passes as it is; anything else is an error too
  const ne = new NetError("ECLOSED", "x");
  assert.equal(toNetError(ne), ne);
  assert.equal(toNetError(ne, { tls: true, fallback: "ETLS" }), ne);
  for (const v of ["boom", null, undefined, 42, { code: "EPIPE", message: "pipe" }]) {
    const got = toNetError(v);
    assert.ok(got instanceof NetError);
    assert.equal(got.cause, v);
  }
  assert.equal(toNetError("boom").message, "boom");
  assert.equal(toNetError(null).code, "EOTHER");
  assert.equal(toNetError({ code: "EPIPE", message: "pipe" }).code, "EPIPE");
  assert.equal(toNetError({ code: "EPIPE", message: "pipe" }).message, "pipe");
});

test("adapter errors: the adapters' own errors", () => {
  assert.equal(closedError().code, "ECLOSED");
  assert.equal(closedError().message, "connection closed");
  assert.notEqual(closedError(), closedError()); // a fresh stack each time

  const t = timedOut("127.0.0.1", 7000, 250);
  assert.equal(t.code, "ETIMEDOUT");
  assert.equal(t.message, "connect to 127.0.0.1:7000 timed out after 250 ms");
  assert.equal(
    timedOut("::1", 1, 2, "TLS connect").message,
    "TLS connect to ::1:1 timed out after 2 ms",
  );

  const bad = new Error("no start line");
  const u = unusableCertificate(bad);
  assert.equal(u.code, "ETLS");
  assert.equal(u.message, "TLS certificate or key not usable: no start line");
  assert.equal(u.cause, bad);

  // listen(): an unclassified error of a TLS listener is the certificate or key
  assert.equal(listenError(bad, true).code, "ETLS");
  assert.equal(listenError(bad, true).message, "TLS certificate or key not usable: no start line");
  assert.equal(listenError(bad, false).code, "EOTHER");
  const inUse = runtimeError({ code: "EADDRINUSE", message: "in use" });
  assert.equal(listenError(inUse, true).code, "EADDRINUSE");
  assert.equal(listenError(inUse, false).code, "EADDRINUSE");
});

test("adapter errors: checkPin", () => {
  const digest = new Uint8Array(32).fill(0xab);
  const pin = Array(32).fill("ab").join(":");
  let hashed: Uint8Array | null = null;
  const sha256 = (d: Uint8Array) => {
    hashed = d;
    return digest;
  };
  const der = bytes(1, 2, 3);
  assert.equal(checkPin(pin, der, sha256), null);
  assert.equal(hashed, der);
  assert.equal(checkPin(pin.replaceAll(":", "").toUpperCase(), der, sha256), null);

  const other = "cd".repeat(32);
  const mismatch = checkPin(other, der, sha256);
  assert.equal(mismatch?.code, "ETLS");
  assert.match(mismatch?.message ?? "", /fingerprint mismatch: expected CD:CD:.*, got AB:AB:/);

  for (const none of [undefined, new Uint8Array(0)]) {
    const e = checkPin(pin, none, () => assert.fail("nothing to hash"));
    assert.equal(e?.code, "ETLS");
    assert.match(e?.message ?? "", /no certificate/);
  }
});

// ---------------------------------------------------------------- ReadQueue

/** A ReadQueue with a small high-water mark and a log of pause/resume calls. */
function readQueue(hwm = 10) {
  const flow: string[] = [];
  const q = new ReadQueue(
    { pause: () => flow.push("pause"), resume: () => flow.push("resume") },
    hwm,
  );
  return { q, flow };
}

test("ReadQueue: chunks in order, to a pending read first", async () => {
  const { q } = readQueue();
  q.push(bytes(1));
  q.push(bytes(2));
  assert.equal(q.queued, 2);
  assert.deepEqual(await q.read(), bytes(1));
  assert.deepEqual(await q.read(), bytes(2));
  const pending = q.read();
  assert.equal(await state(pending), "pending");
  const c = bytes(3, 4);
  q.push(c);
  assert.equal(await pending, c); // handed over as it is
  assert.equal(q.queued, 0);
});

test("ReadQueue: pauses at the high-water mark, resumes once empty", async () => {
  const { q, flow } = readQueue(10);
  q.push(new Uint8Array(4));
  q.push(new Uint8Array(4));
  assert.deepEqual(flow, []);
  q.push(new Uint8Array(4)); // 12 >= 10
  assert.deepEqual(flow, ["pause"]);
  q.push(new Uint8Array(4)); // the socket may still deliver: queued, no second pause
  assert.deepEqual(flow, ["pause"]);
  assert.equal(q.queued, 16);
  for (let i = 0; i < 3; i++) await q.read();
  assert.deepEqual(flow, ["pause"], "not resumed while bytes are queued");
  await q.read();
  assert.deepEqual(flow, ["pause", "resume"], "resumed when the queue is empty");
  const pending = q.read(); // not paused: no resume
  assert.deepEqual(flow, ["pause", "resume"]);
  q.push(bytes(9));
  assert.deepEqual(await pending, bytes(9));
});

test("ReadQueue: EOF after the queued chunks, and from then on", async () => {
  const { q } = readQueue();
  const pending = q.read();
  q.end();
  assert.equal(await pending, null);
  const { q: q2 } = readQueue();
  q2.push(bytes(1));
  q2.end();
  assert.equal(q2.eof, true);
  assert.deepEqual(await q2.read(), bytes(1));
  assert.equal(await q2.read(), null);
  assert.equal(await q2.read(), null);
});

test("ReadQueue: a failure rejects the pending read, after the queued chunks", async () => {
  const { q } = readQueue();
  const pending = q.read();
  const e = new NetError("ECONNRESET", "reset");
  q.fail(e);
  await assert.rejects(pending, (x) => x === e);
  await assert.rejects(q.read(), (x) => x === e);

  const { q: q2 } = readQueue();
  q2.push(bytes(1));
  q2.fail(e);
  q2.fail(new NetError("EPIPE", "second")); // the first error counts
  assert.deepEqual(await q2.read(), bytes(1));
  await assert.rejects(q2.read(), (x) => x === e);
  q2.close();
  await assert.rejects(q2.read(), (x) => x === e);
});

test("ReadQueue: close keeps or discards the queued chunks", async () => {
  // the socket closed: what came is still read, then null
  const { q, flow } = readQueue(2);
  q.push(bytes(1, 2));
  q.push(bytes(3));
  assert.deepEqual(flow, ["pause"]);
  q.close();
  assert.deepEqual(await q.read(), bytes(1, 2));
  assert.deepEqual(await q.read(), bytes(3));
  assert.equal(await q.read(), null);
  assert.deepEqual(flow, ["pause"], "a closed socket is not resumed");

  // the owner's close(): queued chunks are dropped, a pending read gets null
  const { q: q2 } = readQueue();
  q2.push(bytes(1));
  q2.close(true);
  assert.equal(q2.queued, 0);
  assert.equal(await q2.read(), null);
  const { q: q3 } = readQueue();
  const pending = q3.read();
  q3.close(true);
  assert.equal(await pending, null);
  q3.push(bytes(7)); // nothing is queued after close
  assert.equal(q3.queued, 0);
  assert.equal(await q3.read(), null);
});

// ---------------------------------------------------------------- Waiters

test("Waiters: settled all at once, then empty", async () => {
  const w = new Waiters();
  const a = w.wait(), b = w.wait();
  assert.equal(w.size, 2);
  w.resolve();
  assert.equal(w.size, 0);
  assert.equal(await a, undefined);
  assert.equal(await b, undefined);

  const c = w.wait(), d = w.wait();
  const e = new NetError("EPIPE", "pipe");
  w.reject(e);
  await assert.rejects(c, (x) => x === e);
  await assert.rejects(d, (x) => x === e);
  w.resolve(); // nobody waits: nothing happens
  w.reject(e);
  assert.equal(w.size, 0);
});

// ---------------------------------------------------------------- AcceptQueue

/** A Conn that only counts its close() calls. */
function fakeConn(id: number): Conn & { id: number; closes: number } {
  const c = {
    id,
    closes: 0,
    local: { host: "127.0.0.1", port: 1 },
    remote: { host: "127.0.0.1", port: 2 },
    read: () => Promise.resolve(null),
    write: () => Promise.resolve(),
    end: () => Promise.resolve(),
    close() {
      c.closes++;
    },
    closed: Promise.resolve(),
    setNoDelay() {},
  };
  return c;
}

function acceptQueue() {
  let stops = 0;
  const q = new AcceptQueue({ host: "127.0.0.1", port: 7000 }, () => void stops++);
  return { q, stops: () => stops };
}

test("AcceptQueue: conns in order, waiting accepts served in order", async () => {
  const { q } = acceptQueue();
  assert.deepEqual(q.addr, { host: "127.0.0.1", port: 7000 });
  const [a, b, c, d] = [fakeConn(1), fakeConn(2), fakeConn(3), fakeConn(4)];
  q.push(a);
  q.push(b);
  assert.equal(q.size, 2);
  assert.equal(await q.accept(), a);
  assert.equal(await q.accept(), b);
  const first = q.accept(), second = q.accept();
  assert.equal(await state(first), "pending");
  q.push(c);
  q.push(d);
  assert.equal(await first, c);
  assert.equal(await second, d);
  assert.equal(q.size, 0);
  q.close();
});

test("AcceptQueue: an accept error goes to the next accept()", async () => {
  const { q } = acceptQueue();
  const e = new NetError("EOTHER", "EMFILE");
  const a = fakeConn(1);
  q.push(e);
  q.push(a);
  await assert.rejects(q.accept(), (x) => x === e);
  assert.equal(await q.accept(), a);
  const waiting = q.accept();
  q.push(e);
  await assert.rejects(waiting, (x) => x === e);
  q.close();
});

test("AcceptQueue: close stops the socket, ends accepts, closes what was not taken", async () => {
  const { q, stops } = acceptQueue();
  const [a, b, late] = [fakeConn(1), fakeConn(2), fakeConn(3)];
  q.push(a);
  q.push(new NetError("EOTHER", "dropped"));
  q.push(b);
  assert.equal(await q.accept(), a);
  q.close();
  q.close(); // idempotent
  assert.equal(stops(), 1);
  assert.equal(q.closed, true);
  assert.equal(a.closes, 0, "a taken Conn belongs to its taker");
  assert.equal(b.closes, 1);
  assert.equal(q.size, 0);
  assert.equal(await q.accept(), null);
  q.push(late);
  assert.equal(late.closes, 1, "pushed after close: closed at once");
  assert.equal(await q.accept(), null);

  const { q: q2 } = acceptQueue();
  const waiting = [q2.accept(), q2.accept()];
  q2.close();
  assert.deepEqual(await Promise.all(waiting), [null, null]);
});

test("AcceptQueue: the async iterator yields in order and ends at close", async () => {
  const { q } = acceptQueue();
  const conns = [fakeConn(1), fakeConn(2), fakeConn(3)];
  for (const c of conns) q.push(c);
  const seen: number[] = [];
  for await (const c of q) {
    seen.push((c as ReturnType<typeof fakeConn>).id);
    if (seen.length === conns.length) q.close();
    if (seen.length > conns.length) break; // bounded
  }
  assert.deepEqual(seen, [1, 2, 3]);

  // acceptAll works on any accept()
  const items = [fakeConn(7), null];
  const got: Conn[] = [];
  for await (const c of acceptAll({ accept: () => Promise.resolve(items.shift() ?? null) })) {
    got.push(c);
  }
  assert.equal(got.length, 1);
});

test("AcceptQueue: room() waits while `limit` items wait", async () => {
  const { q } = acceptQueue();
  await q.room(2); // empty: at once
  q.push(fakeConn(1));
  q.push(fakeConn(2));
  const room = q.room(2);
  assert.equal(await state(room), "pending");
  await q.accept();
  assert.equal(await state(room), "fulfilled");

  q.push(fakeConn(3));
  const closing = q.room(2);
  assert.equal(await state(closing), "pending");
  q.close();
  assert.equal(await state(closing), "fulfilled");
  await q.room(0); // closed: at once
});

// ---------------------------------------------------------------- entry points

test("entry: dirname", () => {
  assert.equal(dirname("state/tls.key"), "state");
  assert.equal(dirname("/var/lib/burrow/tls.key"), "/var/lib/burrow");
  assert.equal(dirname("/tls.key"), "/");
  assert.equal(dirname("tls.key"), ".");
});

test("entry: secretFileWriter: directory 0700, then write 0600, then chmod", async () => {
  const calls: string[] = [];
  const write = secretFileWriter({
    mkdir: (p, o) =>
      Promise.resolve(void calls.push(`mkdir ${p} ${o.mode.toString(8)} ${o.recursive}`)),
    writeTextFile: (p, t, o) =>
      Promise.resolve(void calls.push(`write ${p} ${t} ${o.mode.toString(8)}`)),
    chmod: (p, m) => Promise.resolve(void calls.push(`chmod ${p} ${m.toString(8)}`)),
  });
  await write("d/s.key", "secret");
  assert.deepEqual(calls, ["mkdir d 700 true", "write d/s.key secret 600", "chmod d/s.key 600"]);

  // and on the real file system (node:fs, which every runtime has)
  const root = await mkdtemp(join(tmpdir(), "burrow-adapter-"));
  try {
    const real = secretFileWriter({ mkdir, writeTextFile: writeFile, chmod });
    const path = join(root, "state", "s.key");
    await real(path, "one");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(root, "state"))).mode & 0o777, 0o700);
    const old = join(root, "old.key");
    await writeFile(old, "x", { mode: 0o644 });
    await chmod(old, 0o644);
    await real(old, "two");
    assert.equal((await stat(old)).mode & 0o777, 0o600, "an existing file is made 0600");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("entry: secretFileReader: the trimmed text of a 0600 file; group- or world-readable and empty files refused", async () => {
  const root = await mkdtemp(join(tmpdir(), "burrow-adapter-"));
  try {
    const read = secretFileReader({ stat, readTextFile: (p) => readFile(p, "utf8") });
    const path = join(root, "secret");
    await writeFile(path, "s3cret\n", { mode: 0o600 });
    await chmod(path, 0o600);
    assert.equal(await read(path), "s3cret");
    for (const mode of [0o640, 0o604]) {
      await chmod(path, mode);
      await assert.rejects(
        read(path),
        new RegExp(
          `${path} is readable by group or others \\(mode 0${mode.toString(8)}\\): chmod 600 it`,
        ),
      );
    }
    await chmod(path, 0o400);
    assert.equal(await read(path), "s3cret", "read-only for the owner is fine");
    await writeFile(join(root, "empty"), " \n", { mode: 0o600 });
    await assert.rejects(read(join(root, "empty")), /empty is empty/);
    await assert.rejects(read(join(root, "missing")), /ENOENT|No such file|not found/i);
    // Where the runtime has no permission bits (Deno on Windows), the file is read.
    const noBits = secretFileReader({
      stat: () => Promise.resolve({ mode: null }),
      readTextFile: () => Promise.resolve("x"),
    });
    assert.equal(await noBits("any"), "x");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("entry: the unhandled rejection log line", () => {
  const now = new Date("2024-05-06T07:08:09.010Z");
  assert.equal(
    unhandledRejectionLine(new Error("boom"), now),
    `ts=2024-05-06T07:08:09.010Z level=error msg="unhandled rejection" error="Error: boom"`,
  );
  assert.equal(
    unhandledRejectionLine(undefined, now),
    `ts=2024-05-06T07:08:09.010Z level=error msg="unhandled rejection" error=undefined`,
  );
  assert.match(unhandledRejectionLine('a "quoted"\nline'), / error="a \\"quoted\\"\\nline"$/);
});
