/**
 * The HTTPS port's and the HTTP app's hardening (issue "Hardening, second
 * round"): WebSocket fragment floods, slow request bodies, malformed Host and
 * targets, reason phrases, the admin API's throttle per source, /metrics on
 * a listener that is not loopback-only, and the Host guard on listen.http.
 * Each test failed before its fix. Real server on 127.0.0.1, raw sockets.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Host } from "../src/cli/mod.ts";
import { httpApp, type HttpPeer } from "../src/http/mod.ts";
import { NetError } from "../src/errors.ts";
import type { Addr, Conn, Net } from "../src/net.ts";
import { ADMIN_TOKEN, runtime, type Tunnel, tunnel, until } from "./helpers.ts";

const rt = runtime;
const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

/** A tunnel with an HTTPS port on 127.0.0.1 (TLS, self-signed; `pin` verifies it). */
function httpsTunnel(config: Record<string, unknown> = {}): Promise<Tunnel> {
  return tunnel({
    tls: true,
    startAgent: false,
    config: {
      listen: {
        agents: "127.0.0.1:0",
        socks: "127.0.0.1:0",
        clients: "127.0.0.1:0",
        http: "",
        https: "127.0.0.1:0",
      },
      ...config,
    },
  });
}

/** Everything `conn` sends until it closes (or resets); throws if it is still open after `ms`. */
async function untilClosed(conn: Conn, ms = 5000): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
  });
  try {
    for (;;) {
      const read = conn.read().catch((e) => {
        if (e instanceof NetError) return null;
        throw e;
      });
      const c = await Promise.race([read, timeout]);
      if (c === null) break;
      parts.push(c);
    }
  } finally {
    clearTimeout(timer);
    conn.close();
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Send `raw` (an HTTP request) to the HTTPS port; the answer as text. */
async function raw(t: Tunnel, raw: string): Promise<string> {
  const c = await t.net.dial({ ...t.server.addrs.https!, tls: t.pin! });
  await c.write(enc.encode(raw));
  return dec.decode(await untilClosed(c));
}

const UPGRADE = "GET /burrow/agent HTTP/1.1\r\nHost: burrow\r\nUpgrade: websocket\r\n" +
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: burrow\r\n\r\n";

/** The close code of the first Close frame after the 101 head in `bytes`, or null. */
function closeCode(bytes: Uint8Array): number | null {
  const text = dec.decode(bytes);
  assert.match(text, /^HTTP\/1\.1 101 /);
  let at = text.indexOf("\r\n\r\n") + 4;
  while (at + 2 <= bytes.length) {
    const op = bytes[at]! & 0x0f;
    const len = bytes[at + 1]! & 0x7f; // server frames here are short and unmasked
    if (op === 8) return len >= 2 ? (bytes[at + 2]! << 8) | bytes[at + 3]! : null;
    at += 2 + len;
  }
  return null;
}

test(`${rt}: https: a flood of empty WebSocket fragments is cut at the fragment cap (1009); a 1-byte Close is refused (1002)`, async () => {
  const t = await httpsTunnel();
  try {
    const c = await t.net.dial({ ...t.server.addrs.https!, tls: t.pin! });
    await c.write(enc.encode(UPGRADE));
    // A non-final empty binary frame, then empty non-final continuations (masked, key 0).
    const frames = [0x02, 0x80, 0, 0, 0, 0];
    for (let i = 0; i < 200; i++) frames.push(0x00, 0x80, 0, 0, 0, 0);
    await c.write(Uint8Array.from(frames)).catch(() => {});
    const got = await untilClosed(c);
    assert.equal(closeCode(got), 1009, "closed with 1009 (message too big)");
    assert.equal(t.server.metrics.get("burrow_limit_hits_total", { limit: "ws_fragments" }), 1);
    assert.ok(t.logs.some((l) => l.includes("limit=ws_fragments")), "logged with limit=");
    // RFC 6455 §5.5.1: a Close body is empty or at least a 2-byte code.
    const d = await t.net.dial({ ...t.server.addrs.https!, tls: t.pin! });
    await d.write(enc.encode(UPGRADE));
    await d.write(Uint8Array.from([0x88, 0x81, 0, 0, 0, 0, 3])).catch(() => {});
    assert.equal(closeCode(await untilClosed(d)), 1002, "a 1-byte Close body is a protocol error");
  } finally {
    await t.close();
  }
});

test(`${rt}: https: a slow request body stays a pending handshake and ends at the handshake timeout`, async () => {
  const t = await httpsTunnel({ handshake_timeout: "400ms" });
  try {
    const c = await t.net.dial({ ...t.server.addrs.https!, tls: t.pin! });
    await c.write(
      enc.encode("POST /healthz HTTP/1.1\r\nHost: burrow\r\nContent-Length: 1000\r\n\r\nx"),
    );
    assert.ok(await until(() => t.server.admission.pending("https") === 1), "counted as pending");
    await untilClosed(c); // throws if the server kept it open
    assert.ok(await until(() => t.server.admission.pending("https") === 0));
    assert.ok(t.server.metrics.get("burrow_limit_hits_total", { limit: "handshake_timeout" }) >= 1);
    // A body over the limit is refused from its Content-Length, before it is read.
    const big = await raw(
      t,
      "POST /healthz HTTP/1.1\r\nHost: burrow\r\nContent-Length: 1048576\r\n\r\n",
    );
    assert.match(big, /^HTTP\/1\.1 413 Content Too Large\r\n/);
    assert.match(big, /\r\n\r\nrequest body over 65536 bytes\n$/);
    assert.equal(t.server.metrics.get("burrow_limit_hits_total", { limit: "http_body_bytes" }), 1);
  } finally {
    await t.close();
  }
});

test(`${rt}: https: head limits, malformed Host and targets get 400 with one line; reason phrases`, async () => {
  const t = await httpsTunnel();
  t.server.useHttpApp(httpApp(t.server).fetch);
  try {
    for (const host of ["[", "x:99999", "user@evil", "a/b", "[1.2.3.4]"]) {
      const r = await raw(t, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.match(r, /^HTTP\/1\.1 400 Bad Request\r\n/, host);
      assert.match(r, /\r\n\r\nbad Host header "[^\n]*": [^\n]+\n$/, host);
    }
    assert.match(await raw(t, "GET /healthz HTTP/1.1\r\n\r\n"), /\r\n\r\nno Host header\n$/);
    const upgrade = await raw(t, UPGRADE.replace("GET /burrow/agent", "GET burrow/agent"));
    assert.match(upgrade, /^HTTP\/1\.1 400 Bad Request\r\n[^]*is not a path \(origin-form\)\n$/);
    const target = await raw(t, "GET a/b?c#d HTTP/1.1\r\nHost: burrow\r\n\r\n");
    assert.match(target, /^HTTP\/1\.1 400 Bad Request\r\n[^]*is not a path \(origin-form\)\n$/);
    assert.match(
      await raw(t, "GET /nope HTTP/1.1\r\nHost: burrow\r\n\r\n"),
      /^HTTP\/1\.1 404 Not Found\r\n/,
    );
    assert.match(
      await raw(t, "GET /healthz HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"),
      /^HTTP\/1\.1 200 OK\r\n/,
    );
    const many = Array.from({ length: 101 }, (_, i) => `x-${i}: 1\r\n`).join("");
    assert.match(
      await raw(t, `GET /healthz HTTP/1.1\r\nHost: burrow\r\n${many}\r\n`),
      /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/,
    );
    // Exactly the limit and no end of head: the server reads it all, so nothing is left unread.
    const start = "GET /healthz HTTP/1.1\r\nHost: burrow\r\nx: ";
    const long = start + "a".repeat(16 * 1024 - start.length);
    assert.match(await raw(t, long), /^HTTP\/1\.1 431 /);
    assert.equal(t.server.metrics.get("burrow_limit_hits_total", { limit: "http_headers" }), 1);
    assert.equal(t.server.metrics.get("burrow_limit_hits_total", { limit: "http_head_bytes" }), 1);
    assert.ok(!t.logs.some((l) => /level=error|TypeError/.test(l)), "no error-level line");
  } finally {
    await t.close();
  }
});

test(`${rt}: admin API on the HTTPS port: wrong tokens are logged per source and throttled (429)`, async () => {
  const t = await httpsTunnel({
    admin: { token: ADMIN_TOKEN },
    limits: { auth_failures_per_minute: 5, auth_block: "60s" },
  });
  t.server.useHttpApp(httpApp(t.server).fetch);
  const get = (token: string) =>
    raw(t, `GET /api/v1/agents HTTP/1.1\r\nHost: burrow\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  try {
    assert.match(await get(ADMIN_TOKEN), /^HTTP\/1\.1 200 OK\r\n/);
    // /metrics names clients and agents: not without the token on the HTTPS port.
    const metrics = await raw(t, "GET /metrics HTTP/1.1\r\nHost: burrow\r\n\r\n");
    assert.match(metrics, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.doesNotMatch(metrics, /burrow_/);
    for (let i = 0; i < 4; i++) {
      assert.match(await get("wrong-token-0123456789"), /^HTTP\/1\.1 401 /);
    }
    const blocked = await get(ADMIN_TOKEN);
    assert.match(
      blocked,
      /^HTTP\/1\.1 429 Too Many Requests\r\n/,
      "blocked even with the right token",
    );
    assert.match(blocked, /\r\nretry-after: \d+\r\n/);
    const failed = t.logs.filter((l) => l.includes("admin authentication failed"));
    assert.equal(failed.length, 5, "the /metrics request without a token counts too");
    assert.match(failed[0]!, / remote=127\.0\.0\.1:\d+ listener=https reason="no token"/);
    assert.match(failed[1]!, / remote=127\.0\.0\.1:\d+ listener=https reason="wrong token"/);
    assert.ok(t.logs.some((l) => /limit=auth_failures port=admin source=127\.0\.0\.1/.test(l)));
  } finally {
    await t.close();
  }
});

test(`${rt}: /metrics needs the admin token on listen.https and on a listen.http that is not loopback-only`, async () => {
  const peer = (listener: "http" | "https", host: string): HttpPeer => ({
    remote: { host: "192.0.2.7", port: 5555 },
    listener,
    bound: { host, port: 443 },
  });
  const status = async (app: ReturnType<typeof httpApp>, p: HttpPeer, token?: string) =>
    (await app.fetch(
      new Request("https://127.0.0.1/metrics", {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      }),
      p,
    )).status;
  for (
    const [admin, listener, bound, want] of [
      [undefined, "http", "0.0.0.0", 403],
      [undefined, "http", "127.0.0.1", 200],
      [undefined, "https", "127.0.0.1", 403],
      [{ token: ADMIN_TOKEN }, "http", "0.0.0.0", 401],
      [{ token: ADMIN_TOKEN }, "http", "::", 401],
      [{ token: ADMIN_TOKEN }, "http", "::1", 200],
      [{ token: ADMIN_TOKEN }, "https", "::1", 401],
      [{ token: ADMIN_TOKEN, metrics_auth: false }, "https", "0.0.0.0", 200],
      [{ token: ADMIN_TOKEN, metrics_auth: true }, "http", "127.0.0.1", 401],
    ] as const
  ) {
    const t = await tunnel({ startAgent: false, config: admin ? { admin } : {} });
    try {
      const app = httpApp(t.server);
      const p = peer(listener, bound);
      assert.equal(await status(app, p), want, `${JSON.stringify(admin)} on ${listener} ${bound}`);
      if (admin) assert.equal(await status(app, p, ADMIN_TOKEN), 200);
    } finally {
      await t.close();
    }
  }
});

/** A request to `addr` with `host` as Host; the status line. */
async function statusLine(
  net: Net,
  addr: Addr,
  path: string,
  host: string,
  auth = "",
): Promise<string> {
  const c = await net.dial(addr);
  await c.write(
    enc.encode(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`),
  );
  return dec.decode(await untilClosed(c)).split("\r\n")[0]!;
}

test(`${rt}: listen.http (the runtime's server): Host guard against DNS rebinding; the source reaches the admin throttle`, async () => {
  const { host } = await import(`../runtimes/${rt}/main.ts`) as { host: Host };
  const t = await tunnel({
    startAgent: false,
    config: {
      admin: { token: ADMIN_TOKEN },
      tls: { names: ["burrow.example"] },
      limits: { auth_failures_per_minute: 3 },
    },
  });
  const http = await host.serveHttp({ host: "127.0.0.1", port: 0 }, httpApp(t.server).fetch);
  const a = http.addr;
  try {
    for (
      const h of [
        `127.0.0.1:${a.port}`,
        "localhost",
        "[::1]:80",
        "burrow.example",
        "BURROW.example:1",
      ]
    ) {
      assert.match(await statusLine(t.net, a, "/healthz", h), /^HTTP\/1\.1 200 /, h);
    }
    for (const h of ["evil.example", "attacker.test:7002"]) {
      assert.match(await statusLine(t.net, a, "/metrics", h), /^HTTP\/1\.1 421 /, h);
    }
    for (const h of ["[", "user@evil", "x:99999"]) {
      assert.match(await statusLine(t.net, a, "/healthz", h), /^HTTP\/1\.1 400 /, h);
    }
    const wrong = "Authorization: Bearer wrong-token-0123456789\r\n";
    for (let i = 0; i < 3; i++) {
      assert.match(
        await statusLine(t.net, a, "/api/v1/server", "127.0.0.1", wrong),
        /^HTTP\/1\.1 401 /,
      );
    }
    assert.match(
      await statusLine(
        t.net,
        a,
        "/api/v1/server",
        "127.0.0.1",
        `Authorization: Bearer ${ADMIN_TOKEN}\r\n`,
      ),
      /^HTTP\/1\.1 429 /,
    );
    assert.ok(
      t.logs.some((l) =>
        /msg="admin authentication failed" role=server remote=127\.0\.0\.1:\d+ listener=http /.test(
          l,
        )
      ),
      t.logs.filter((l) => l.includes("admin")).join("\n"),
    );
  } finally {
    await http.close();
    await t.close();
  }
});
