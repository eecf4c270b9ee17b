/**
 * The WebSocket transport (src/ws.ts, SPEC.md §3.1): frames split at every
 * byte boundary, limits before allocation, control frames, and a real
 * loopback link: handshake, data both ways, half-close, close.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseAddr } from "../src/config/walker.ts";
import { NetError } from "../src/errors.ts";
import { headParser } from "../src/http1.ts";
import type { Addr, Conn, Net } from "../src/net.ts";
import { Reader } from "../src/reader.ts";
import {
  CloseCode,
  encodeFrame,
  FrameDecoder,
  MAX_FRAME,
  Opcode,
  readRequestHead,
  wsAccept,
  wsConnect,
  WsError,
} from "../src/ws.ts";
import { burrow, readAll, runtime, runtimeNet, writeServerYaml } from "./helpers.ts";

const rt = runtime;

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return b;
}

test("ws: frames of every length class decode, split at every byte boundary, masked and not", () => {
  for (const n of [0, 1, 125, 126, 300, 65535, 65536, 70000]) {
    for (const mask of [true, false]) {
      const payload = bytes(n, n + 1);
      const wire = encodeFrame(Opcode.binary, payload, mask);
      const cuts = n < 400
        ? Array.from({ length: wire.length + 1 }, (_, i) => i)
        : [0, 1, 2, 5, 9, 13, wire.length - 1];
      for (const cut of cuts) {
        const d = new FrameDecoder(mask);
        d.push(wire.subarray(0, cut));
        const early = d.next();
        if (cut < wire.length) assert.equal(early, null, `len ${n} cut ${cut}`);
        d.push(wire.subarray(cut));
        const f = early ?? d.next();
        assert.ok(f, `len ${n} cut ${cut}`);
        assert.equal(f.opcode, Opcode.binary);
        assert.equal(f.fin, true);
        assert.deepEqual(f.payload, payload);
        assert.equal(d.next(), null);
      }
    }
  }
});

test("ws: nextPart gives a data frame's payload as it arrives, unmasked at every offset", () => {
  for (const n of [0, 1, 5, 125, 126, 300, 70000]) {
    for (const mask of [true, false]) {
      const payload = bytes(n, n + 7);
      const wire = encodeFrame(Opcode.binary, payload, mask, false);
      const step = n < 400 ? 1 : 997;
      const d = new FrameDecoder(mask);
      const got: number[] = [];
      let starts = 0;
      let ends = 0;
      for (let at = 0; at < wire.length; at += step) {
        d.push(wire.subarray(at, at + step));
        for (let p = d.nextPart(); p !== null; p = d.nextPart()) {
          assert.equal(p.opcode, Opcode.binary);
          assert.equal(p.fin, false);
          if (p.start) (starts++, assert.equal(p.length, n));
          if (p.end) ends++;
          got.push(...p.payload);
        }
      }
      assert.equal(starts, 1, `len ${n}`);
      assert.equal(ends, 1, `len ${n}`);
      assert.deepEqual(Uint8Array.from(got), payload, `len ${n} mask ${mask}`);
      assert.equal(d.inFrame, false);
    }
  }
  // A ping between two pieces of a data frame's payload is not possible (frames
  // do not nest), but between fragments of a message it is: whole, in order.
  const d = new FrameDecoder(true);
  d.push(encodeFrame(Opcode.ping, Uint8Array.of(9), true));
  const ping = d.nextPart()!;
  assert.deepEqual([ping.opcode, ping.start, ping.end, [...ping.payload]], [
    Opcode.ping,
    true,
    true,
    [9],
  ]);
});

test("ws: violations fail before allocating, with the RFC's close codes", () => {
  const code = (frame: number[], masked = true) => {
    const d = new FrameDecoder(masked);
    d.push(Uint8Array.from(frame));
    try {
      d.next();
      return null;
    } catch (e) {
      assert.ok(e instanceof WsError);
      return e.closeCode;
    }
  };
  assert.equal(code([0x82, 0x00], true), CloseCode.protocolError, "client frame not masked");
  assert.equal(
    code([0x82, 0x80, 0, 0, 0, 0], false),
    CloseCode.protocolError,
    "server frame masked",
  );
  assert.equal(
    code([0xc2, 0x80, 0, 0, 0, 0]),
    CloseCode.protocolError,
    "RSV1 without an extension",
  );
  assert.equal(code([0x83, 0x80, 0, 0, 0, 0]), CloseCode.protocolError, "opcode 3");
  assert.equal(code([0x09, 0x80, 0, 0, 0, 0]), CloseCode.protocolError, "fragmented ping");
  assert.equal(
    code([0x89, 0xfe, 0, 200, 0, 0, 0, 0]),
    CloseCode.protocolError,
    "ping over 125 bytes",
  );
  // A 64-bit length over the limit: refused from the header alone.
  const big = MAX_FRAME + 1;
  assert.equal(
    code([
      0x82,
      0xff,
      0,
      0,
      0,
      0,
      (big >>> 24) & 255,
      (big >>> 16) & 255,
      (big >>> 8) & 255,
      big & 255,
    ]),
    CloseCode.tooBig,
  );
  assert.equal(
    code([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    CloseCode.tooBig,
    "length with the top bit set",
  );
});

/** A client and a server WebSocket Conn over one loopback TCP connection. */
async function pair(net: Net): Promise<{ client: Conn; server: Conn; close(): void }> {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    const c = (await l.accept())!;
    const rd = new Reader(c, 16 * 1024);
    return await wsAccept(c, rd, await readRequestHead(rd));
  })();
  const raw = await net.dial(l.addr);
  const client = await wsConnect(raw, `127.0.0.1:${l.addr.port}`, "/burrow/agent");
  const server = await accepted;
  return {
    client,
    server,
    close() {
      client.close();
      server.close();
      l.close();
    },
  };
}

test(`${rt}: ws: a link carries 4 MiB both ways, half-closes, and closes`, async () => {
  const net = await runtimeNet();
  const p = await pair(net);
  try {
    const up = bytes(4 * 1024 * 1024, 3);
    const down = bytes(3 * 1024 * 1024 + 17, 5);
    const serverGot = readAll(p.server);
    const clientGot = readAll(p.client);
    for (let o = 0; o < up.length; o += 65536) await p.client.write(up.subarray(o, o + 65536));
    await p.client.end(); // half-close: the server still sends
    assert.deepEqual(new Uint8Array(await serverGot), up);
    for (let o = 0; o < down.length; o += 100_000) {
      await p.server.write(down.subarray(o, o + 100_000));
    }
    await p.server.end();
    assert.deepEqual(new Uint8Array(await clientGot), down);
    await assert.rejects(p.client.write(new Uint8Array(1)), NetError, "ended");
  } finally {
    p.close();
  }
});

test(`${rt}: ws: the handshake refuses what is not a burrow WebSocket`, async () => {
  const net = await runtimeNet();
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  try {
    // A plain HTTP server answer.
    const serving = (async () => {
      const c = (await l.accept())!;
      const rd = new Reader(c, 16 * 1024);
      await readRequestHead(rd);
      await c.write(
        new TextEncoder().encode("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
      );
      c.close();
    })();
    const raw = await net.dial(l.addr);
    await assert.rejects(
      wsConnect(raw, "x", "/nope"),
      /answered "HTTP\/1.1 404 Not Found" to GET \/nope/,
    );
    raw.close();
    await serving;
    // A request without the subprotocol is answered 400.
    const refusing = (async () => {
      const c = (await l.accept())!;
      const rd = new Reader(c, 16 * 1024);
      await assert.rejects(
        wsAccept(c, rd, await readRequestHead(rd)),
        /subprotocol burrow not offered/,
      );
      c.close();
    })();
    const c = await net.dial(l.addr);
    await c.write(new TextEncoder().encode(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    const answer = new TextDecoder().decode(await readAll(c));
    assert.match(answer, /^HTTP\/1.1 400 Bad Request/);
    c.close();
    await refusing;
  } finally {
    l.close();
  }
});

test(`${rt}: ws: ping is answered, text is refused with 1003`, async () => {
  const net = await runtimeNet();
  const p = await pair(net);
  try {
    // Reach under the client Conn: write raw frames as a client would.
    const inner = (p.client as unknown as { inner: Conn }).inner;
    await inner.write(encodeFrame(Opcode.ping, Uint8Array.of(1, 2, 3), true));
    await inner.write(encodeFrame(Opcode.binary, Uint8Array.of(42), true));
    assert.deepEqual(new Uint8Array((await p.server.read())!), Uint8Array.of(42));
    await inner.write(encodeFrame(Opcode.text, new TextEncoder().encode("hi"), true));
    await assert.rejects(
      p.server.read(),
      (e: unknown) => e instanceof WsError && e.closeCode === CloseCode.unsupportedData,
    );
    // The server sent pong, then close 1003: raw bytes on the client side.
    const raw = await readAll(inner);
    const d = new FrameDecoder(false);
    d.push(raw);
    assert.deepEqual(d.next(), { fin: true, opcode: Opcode.pong, payload: Uint8Array.of(1, 2, 3) });
    const close = d.next()!;
    assert.equal(close.opcode, Opcode.close);
    assert.equal((close.payload[0]! << 8) | close.payload[1]!, CloseCode.unsupportedData);
  } finally {
    p.close();
  }
});

test(`${rt}: ws: a large frame is passed on as it arrives, not held until complete`, async () => {
  const net = await runtimeNet();
  const p = await pair(net);
  try {
    const inner = (p.client as unknown as { inner: Conn }).inner;
    const frame = encodeFrame(Opcode.binary, bytes(MAX_FRAME, 3), true);
    // The header and the first 1000 bytes of a 1 MiB frame: the server reads them now.
    await inner.write(frame.slice(0, 14 + 1000));
    const got = new Uint8Array(MAX_FRAME);
    let n = 0;
    const take = async (until: number) => {
      while (n < until) {
        const c = (await p.server.read())!;
        got.set(c, n);
        n += c.length;
      }
    };
    await take(1000);
    assert.equal(n, 1000, "only what was sent, before the rest of the frame");
    await inner.write(frame.slice(14 + 1000));
    await take(MAX_FRAME);
    assert.deepEqual(got, bytes(MAX_FRAME, 3));
  } finally {
    p.close();
  }
});

/** Resident set size of process `pid` in bytes (Linux /proc). */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

const UPGRADE = "GET /burrow/agent HTTP/1.1\r\nHost: burrow\r\nUpgrade: websocket\r\n" +
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: burrow\r\n\r\n";

/** A raw WebSocket to the server's /agent, past its 101 answer. */
async function upgraded(net: Net, addr: Addr): Promise<Conn> {
  const c = await net.dial(addr);
  await c.write(new TextEncoder().encode(UPGRADE));
  const rd = new Reader(c, 16 * 1024);
  await rd.parse(headParser, "101 answer");
  return c;
}

/** Write `chunk` over and over until `deadline` or until the peer closes; never reads. */
async function flood(net: Net, addr: Addr, chunk: Uint8Array, deadline: number): Promise<number> {
  let conns = 0;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const c = await upgraded(net, addr);
    conns++;
    const end = new Promise<"end">((r) => setTimeout(() => r("end"), deadline - Date.now()));
    try {
      for (let j = 0; j < 10_000_000 && Date.now() < deadline; j++) {
        // A write the server holds back (it does not read) waits here until the deadline.
        if (await Promise.race([c.write(chunk), end]) === "end") break;
      }
    } catch (e) {
      if (!(e instanceof NetError)) throw e; // the server closed it: a new connection
    } finally {
      c.close();
    }
  }
  return conns;
}

test(`${rt}: ws: hostile peers for 30 s (ping floods not reading pongs, empty-fragment floods) cost the server process under 64 MiB`, async () => {
  const net = await runtimeNet();
  const dir = mkdtempSync(join(tmpdir(), "burrow-wsflood-"));
  const cfg = writeServerYaml(dir, {
    listen: {
      agents: "127.0.0.1:0",
      socks: "",
      clients: "",
      http: "127.0.0.1:0",
      https: "127.0.0.1:0",
    },
    handshake_timeout: "60s", // the ping flooders stay in their handshake for the whole test
  });
  const proc = burrow(rt, ["server", "-c", cfg, "--no-watch"]);
  try {
    const https = parseAddr(/https=(\S+)/.exec(await proc.waitFor(/server listening[^\n]*/))![1]!);
    const health = /health=(\S+)/.exec(await proc.waitFor(/http endpoint[^\n]*/))![1]!;
    const base = health.replace(/\/healthz$/, "");
    const pid = proc.child.pid!;
    // Growth is measured from 5 s into the attack (the young generation and
    // the runtime's buffers settle: as in hostile_flood_test), for 30 s.
    let before = rss(pid);
    const warm = Date.now() + 5_000;
    let warmed = false;
    const deadline = warm + 30_000;
    // Masked pings of 125 bytes, 64 KiB at a time: each asks for a pong the flooder never reads.
    const ping = encodeFrame(Opcode.ping, new Uint8Array(125), true);
    const pings = new Uint8Array(ping.length * 500);
    for (let i = 0; i < 500; i++) pings.set(ping, i * ping.length);
    // One empty non-final binary frame, then empty continuations (the finding): ~64 KiB a write.
    const frags = new Uint8Array(6 * 10_000);
    for (let i = 0; i < 10_000; i++) frags.set([i === 0 ? 0x02 : 0x00, 0x80, 0, 0, 0, 0], i * 6);
    let peak = before;
    const sampler = setInterval(() => {
      if (!warmed && Date.now() >= warm) [warmed, before, peak] = [true, rss(pid), rss(pid)];
      else if (warmed) peak = Math.max(peak, rss(pid));
    }, 250);
    let fragConns = 0;
    try {
      const results = await Promise.all([
        ...Array.from({ length: 4 }, () => flood(net, https, pings, deadline)),
        flood(net, https, frags, deadline).then((n) => (fragConns = n)),
      ]);
      assert.equal(results.length, 5);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rss(pid));
    const grew = peak - before;
    assert.ok(grew <= 64 * 1024 * 1024, `RSS grew by ${(grew / 1048576).toFixed(1)} MiB`);
    assert.ok(fragConns > 1, "each fragment flood was cut, so the flooder reconnected");
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? "NaN");
    assert.ok(value(/burrow_limit_hits_total\{limit="ws_fragments"\} (\d+)/) >= 1, metrics);
    const pending = value(/burrow_pending_handshakes\{port="agents"\} (\d+)/);
    assert.ok(pending <= 256, `pending handshakes ${pending} under the per-source cap`);
    assert.equal((await fetch(health)).status, 200, "still serving");
  } finally {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
