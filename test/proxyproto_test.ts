/**
 * The PROXY protocol header (src/proxyproto.ts) and trusted proxies
 * (src/server/trusted.ts): the parser on every version and family, split at
 * every byte (the fuzz properties are in scripts/fuzz.ts, run by
 * test/fuzz_test.ts); a real server taking the real source from headers
 * the test writes, refusing what comes without one; IPv6 prefix budgets
 * (admission.ts) seen through such headers.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServerConfig } from "../src/config/mod.ts";
import { ProxyHeaderError } from "../src/errors.ts";
import { targetOf } from "../src/ip.ts";
import type { Addr, Conn, Net } from "../src/net.ts";
import { parseProxyHeader, V1_MAX, V2_MAX_LENGTH } from "../src/proxyproto.ts";
import { forwardedFor } from "../src/server/trusted.ts";
import { tokenCredential } from "../src/auth.ts";
import { proxyV1, proxyV2 } from "./arbitraries.ts";
import { nginx, proxyProtocolProxy } from "./daemons.ts";
import { parseServer } from "../src/config/mod.ts";
import { wsNet } from "../src/transport.ts";
import { pump } from "../src/adapter/loopback_tls.ts";
import {
  ALICE_TOKEN,
  echoTarget,
  readAll,
  runtime,
  socks,
  testAgent,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;
const enc = new TextEncoder();
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function parsed(bytes: Uint8Array) {
  const r = parseProxyHeader(bytes);
  assert.ok(r, "a whole header parses");
  return r;
}

test("proxyproto: version 1 and 2 headers give the source; LOCAL, UNKNOWN, UNSPEC and UNIX none", () => {
  assert.deepEqual(parsed(proxyV1("203.0.113.7", 4242)).value, {
    version: 1,
    source: { host: "203.0.113.7", port: 4242 },
  });
  assert.deepEqual(parsed(proxyV1("2001:db8:0:0::1", 65535)).value.source, {
    host: "2001:db8::1",
    port: 65535,
  });
  assert.deepEqual(parsed(enc.encode("PROXY UNKNOWN 1 2 3\r\n")).value, {
    version: 1,
    source: null,
  });
  assert.deepEqual(parsed(enc.encode("PROXY UNKNOWN\r\n")).value, { version: 1, source: null });
  assert.deepEqual(parsed(proxyV2("198.51.100.1", 80)).value, {
    version: 2,
    source: { host: "198.51.100.1", port: 80 },
  });
  assert.deepEqual(parsed(proxyV2("2001:db8::9", 443, { tlv: [0x04, 0, 1, 0] })), {
    value: { version: 2, source: { host: "2001:db8::9", port: 443 } },
    size: 16 + 36 + 4,
  });
  assert.equal(parsed(proxyV2("198.51.100.1", 80, { local: true })).value.source, null);
  assert.equal(parsed(proxyV2("198.51.100.1", 80, { family: 0x00 })).value.source, null);
  assert.equal(parsed(proxyV2("198.51.100.1", 80, { family: 0x12 })).value.source, null, "UDP");
  const unix = Uint8Array.from([...SIG, 0x21, 0x31, 0, 216, ...new Array<number>(216).fill(0x61)]);
  assert.deepEqual(parsed(unix), { value: { version: 2, source: null }, size: 232 });
});

test("proxyproto: a header split at every byte needs more until it is whole; the bytes after it stay", () => {
  for (
    const h of [
      proxyV1("203.0.113.7", 4242),
      proxyV1("2001:db8::1", 1),
      proxyV2("2001:db8::9", 443, { tlv: [1, 0, 0] }),
    ]
  ) {
    const buf = Uint8Array.from([...h, 5, 1, 0]);
    for (let i = 0; i < h.length; i++) {
      assert.equal(parseProxyHeader(buf.subarray(0, i)), null, `split at ${i} of ${h.length}`);
    }
    for (let i = h.length; i <= buf.length; i++) {
      assert.equal(parseProxyHeader(buf.subarray(0, i))!.size, h.length);
    }
  }
});

test("proxyproto: bad headers are typed errors, limits checked before waiting for more", () => {
  const bad = (bytes: Uint8Array | string, re: RegExp, limit?: string) => {
    const b = typeof bytes === "string" ? enc.encode(bytes) : bytes;
    assert.throws(() => parseProxyHeader(b), (e) => {
      assert.ok(e instanceof ProxyHeaderError);
      assert.match(e.message, /^Cannot parse PROXY header: /);
      assert.match(e.message, re);
      assert.equal(e.limit, limit);
      return true;
    });
  };
  bad("GET / HTTP/1.1\r\n", /signature/);
  bad(Uint8Array.from([5, 1, 0]), /signature/);
  bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /CRLF/);
  bad("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", /protocol "TCP5"/);
  bad("PROXY TCP4 ::1 ::1 1 2\r\n", /not an ipv4 address/);
  bad("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", /not an ipv6 address/);
  bad("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /port "65536"/);
  bad("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", /port "01"/);
  bad("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", /two addresses/);
  bad("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", /control character/);
  bad("PROXY UNKNOWN \r x\r\n", /control character/);
  // 107 bytes without a line end: refused without waiting for the rest.
  bad(`PROXY UNKNOWN ${"x".repeat(V1_MAX - 14)}`, /longer than 107/, "proxy_header_size");
  const h = proxyV2("1.2.3.4", 1);
  bad(Uint8Array.from([...h.subarray(0, 12), 0x11, ...h.subarray(13)]), /version 1 is not/);
  bad(Uint8Array.from([...h.subarray(0, 12), 0x22, ...h.subarray(13)]), /command 2/);
  bad(Uint8Array.from([...h.subarray(0, 13), 0x41, ...h.subarray(14)]), /family 0x41/);
  bad(Uint8Array.from([...h.subarray(0, 14), 0, 11]), /length 11 is too short/);
  // Only the 16 fixed bytes: a length over the limit is refused before the rest comes.
  const len = V2_MAX_LENGTH + 1;
  bad(
    Uint8Array.from([...h.subarray(0, 14), len >> 8, len & 0xff]),
    /length 1025 exceeds 1024/,
    "proxy_header_size",
  );
});

test("proxyproto: X-Forwarded-For gives the rightmost untrusted address, only from a trusted proxy", () => {
  const cfg = parseServerConfig(
    JSON.stringify({ trusted_proxies: ["127.0.0.1", "10.0.0.0/8", "fd00::/8"] }),
    "(test)",
  );
  const proxy = { host: "127.0.0.1", port: 5000 };
  const xff = (v: string | null) => forwardedFor(cfg, proxy, v).host;
  assert.equal(xff(null), "127.0.0.1");
  assert.equal(xff("203.0.113.7"), "203.0.113.7");
  assert.equal(
    xff("198.51.100.1, 203.0.113.7, 10.1.2.3"),
    "203.0.113.7",
    "the forged left part is ignored",
  );
  assert.equal(xff("10.9.9.9, fd00::1"), "10.9.9.9", "all trusted: the leftmost");
  assert.equal(xff("203.0.113.7, junk"), "127.0.0.1", "garbage at the right: the proxy itself");
  assert.equal(xff(" 2001:DB8::1 "), "2001:db8::1");
  assert.equal(forwardedFor(cfg, { host: "192.0.2.1", port: 1 }, "203.0.113.7").host, "192.0.2.1");
});

/** `net` whose every dial first sends `header` (what a proxy in front does). */
function through(net: Net, header: Uint8Array): Net {
  return {
    runtime: net.runtime,
    dial: async (o) => {
      const c = await net.dial(o);
      await c.write(header);
      return c;
    },
    listen: (o) => net.listen(o),
    lookup: (h) => net.lookup(h),
    bindUdp: (o) => net.bindUdp(o),
  };
}

const PROXIED = { tls: "off", trusted_proxies: ["127.0.0.1"], proxy_protocol: ["socks"] };

test(`${rt}: on a proxy_protocol port, failed logins block the header's source, not the proxy`, async () => {
  const t = await tunnel({
    config: { ...PROXIED, limits: { auth_failures_per_minute: 3, auth_block: "60s" } },
  });
  const echo = await echoTarget(t.net);
  const target = targetOf("127.0.0.1", echo.addr.port);
  try {
    const mallory = through(t.net, proxyV1("203.0.113.66", 40000));
    for (let i = 0; i < 3; i++) {
      const s = await socks(mallory, t.socks, "alice", "wrong-password", target);
      s.conn.close();
      assert.equal(s.auth, 1);
    }
    assert.ok(
      t.logs.some((l) => l.includes("limit=auth_failures") && l.includes("source=203.0.113.66")),
    );
    const blocked = await socks(mallory, t.socks, "alice", ALICE_TOKEN, target);
    blocked.conn.close();
    assert.equal(blocked.auth, null, "203.0.113.66 is blocked");
    // Through the same proxy (127.0.0.1), another real source logs in, header v2 this time.
    const alice = await socks(
      through(t.net, proxyV2("2001:db8::7", 50000)),
      t.socks,
      "alice",
      ALICE_TOKEN,
      target,
    );
    try {
      assert.equal(alice.reply, 0);
      await alice.conn.write(enc.encode("ping"));
      assert.deepEqual([...(await alice.conn.read())!], [...enc.encode("ping")]);
    } finally {
      alice.conn.close();
    }
    // The audit line names the real source.
    assert.ok(
      await until(() =>
        t.logs.some((l) => l.includes("stream ended") && l.includes("remote=[2001:db8::7]:50000"))
      ),
    );
  } finally {
    echo.close();
    await t.close();
  }
});

test(`${rt}: a proxy_protocol port closes connections without a header, from untrusted sources, or late`, async () => {
  const t = await tunnel({ config: { ...PROXIED, handshake_timeout: "300ms" } });
  try {
    // No header: the SOCKS5 greeting is not one.
    assert.equal(await answer(t.net, t.socks, Uint8Array.of(5, 1, 2)), 0);
    assert.ok(
      await until(() => t.logs.some((l) => l.includes("reason=bad") && l.includes("signature"))),
    );
    // A header that never ends: closed at handshake_timeout.
    assert.equal(await answer(t.net, t.socks, enc.encode("PROXY TCP4 ")), 0);
    assert.ok(
      t.logs.some((l) => l.includes("limit=proxy_header_timeout") && l.includes("port=socks")),
    );
    // Too long: refused at 107 bytes.
    assert.equal(await answer(t.net, t.socks, enc.encode(`PROXY UNKNOWN ${"x".repeat(200)}`)), 0);
    assert.ok(t.logs.some((l) => l.includes("limit=proxy_header_size")));
    // The header byte by byte, then the greeting: served.
    const h = proxyV1("192.0.2.44", 1234);
    const c = await t.net.dial(t.socks);
    for (const b of h) await c.write(Uint8Array.of(b));
    await c.write(Uint8Array.of(5, 1, 0));
    assert.deepEqual(
      [...(await c.read())!],
      [5, 0xff],
      "no acceptable method: a SOCKS5 answer",
    );
    c.close();
    // LOCAL (a proxy's health check): served as the connection itself.
    const local = await t.net.dial(t.socks);
    await local.write(Uint8Array.from([...proxyV2("192.0.2.45", 1, { local: true }), 5, 1, 0]));
    assert.deepEqual([...(await local.read())!], [5, 0xff]);
    local.close();
    assert.ok(t.logs.some((l) => l.includes("remote=192.0.2.44:1234")), "the header's source");
    assert.ok(!t.logs.some((l) => l.includes("192.0.2.45")), "LOCAL's addresses are not used");
    // A source that is not a trusted proxy: closed, even with a header.
    const cfg = parseServerConfig(
      JSON.stringify({
        ...PROXIED,
        trusted_proxies: ["10.0.0.0/8"],
        listen: { socks: "127.0.0.1:0" },
      }),
      "(test)",
    );
    t.server.reload({ ...t.server.config, trustedProxies: cfg.trustedProxies });
    assert.equal(await answer(t.net, t.socks, Uint8Array.from([...h, 5, 1, 2])), 0);
    assert.ok(t.logs.some((l) => l.includes("reason=untrusted") && l.includes("remote=127.0.0.1")));
  } finally {
    await t.close();
  }
});

/** Bytes that come back after sending `bytes` until the server closes (write errors ignored). */
async function answer(net: Net, addr: Addr, bytes: Uint8Array): Promise<number> {
  const c = await net.dial(addr);
  try {
    await c.write(bytes).catch(() => {});
    return (await readAll(c).catch(() => new Uint8Array(0))).length;
  } finally {
    c.close();
  }
}

/** Dial the SOCKS port as `src` (through a header) and leave the handshake pending. */
async function pendingFrom(
  net: Net,
  t: { socks: { host: string; port: number } },
  src: string,
): Promise<Conn> {
  return await through(net, proxyV2(src, 1000)).dial(t.socks);
}

test(`${rt}: an IPv6 /56 holds at most its share of pending handshakes, a /48 its own`, async () => {
  const t = await tunnel({
    config: {
      ...PROXIED,
      // per /64: 3; per /56: 0.5 × 8 = 4; per /48: 0.75 × 8 = 6
      limits: { pending_handshakes: 8, pending_handshakes_per_source: 3 },
    },
  });
  const held: Conn[] = [];
  const pending = () => t.server.admission.pending("socks");
  const refused = async (src: string) => {
    const c = await pendingFrom(t.net, t, src);
    const bytes = await readAll(c);
    c.close();
    return bytes.length === 0;
  };
  try {
    for (
      const src of [
        "2001:db8:0:100::1",
        "2001:db8:0:100::2",
        "2001:db8:0:100::3",
        "2001:db8:0:1ff::1",
      ]
    ) {
      held.push(await pendingFrom(t.net, t, src));
    }
    assert.ok(await until(() => pending() === 4), "four pending in one /56");
    assert.ok(await refused("2001:db8:0:1a0::1"), "a fifth /64 of that /56 is refused");
    assert.ok(
      t.logs.some((l) =>
        l.includes("limit=pending_handshakes_per_prefix") &&
        l.includes("prefix=2001:db8:0:100::/56")
      ),
    );
    held.push(await pendingFrom(t.net, t, "2001:db8:0:200::1"));
    held.push(await pendingFrom(t.net, t, "2001:db8:0:300::1"));
    assert.ok(await until(() => pending() === 6), "six pending in one /48");
    assert.ok(await refused("2001:db8:0:400::1"), "a third /56 of that /48 is refused");
    assert.ok(t.logs.some((l) => l.includes("prefix=2001:db8::/48")));
    held.push(await pendingFrom(t.net, t, "2001:db8:1::1"));
    assert.ok(await until(() => pending() === 7), "another /48 still gets in");
  } finally {
    for (const c of held) c.close();
    await t.close();
  }
});

test(`${rt}: failed logins across the /64s of one /56 block that /56 at its share of the budget`, async () => {
  const t = await tunnel({
    config: {
      ...PROXIED,
      // per /64: 3 a minute; per /56: 0.5 × 8 = 4; per /48: 0.75 × 8 = 6
      limits: { auth_failures_per_minute: 3, auth_failure_budget: 8, auth_block: "60s" },
    },
  });
  const target = targetOf("127.0.0.1", 9);
  const login = async (src: string, pass: string) => {
    const s = await socks(through(t.net, proxyV2(src, 1000)), t.socks, "alice", pass, target);
    s.conn.close();
    return s.auth;
  };
  try {
    for (
      const src of [
        "2001:db8:0:100::1",
        "2001:db8:0:100::2",
        "2001:db8:0:101::1",
        "2001:db8:0:102::1",
      ]
    ) {
      assert.equal(await login(src, "wrong-password"), 1);
    }
    assert.ok(
      t.logs.some((l) =>
        l.includes("limit=auth_failures_per_prefix") && l.includes("source=2001:db8:0:100::/56")
      ),
    );
    assert.equal(await login("2001:db8:0:1ff::1", ALICE_TOKEN), null, "the whole /56 is blocked");
    assert.equal(await login("2001:db8:0:200::1", ALICE_TOKEN), 0, "another /56 logs in");
  } finally {
    await t.close();
  }
});

/** Whether the server logs, within a few seconds, that `source` is blocked for failed logins. */
function blocked(logs: string[], source: string): Promise<boolean> {
  return until(() =>
    logs.some((l) => l.includes("limit=auth_failures") && l.includes(`source=${source} `))
  );
}

for (const tls of [false, true]) {
  for (const kind of ["nginx", "haproxy"] as const) {
    test(`${rt}: behind ${kind} (PROXY v${kind === "nginx" ? 1 : 2}${tls ? ", TLS passed through" : ""}), bad agent logins from one real source do not block another`, async () => {
      const t = await tunnel({
        startAgent: false,
        tls,
        config: {
          ...PROXIED,
          ...(tls ? { tls: "auto" } : {}),
          proxy_protocol: ["agents"],
          limits: { auth_failures_per_minute: 3, auth_block: "60s" },
        },
      });
      const proxy = await proxyProtocolProxy(t.net, kind, t.server.addrs.agents!);
      // With TLS, the agents pin the server's own certificate through the proxy.
      const pin = t.pin ? { tls: t.pin } : {};
      // Through the proxy from ::1, with a wrong token, until the server blocks ::1's /64.
      const bad = testAgent(t.net, { host: "::1", port: proxy.port }, "office", {
        credential: tokenCredential("wrong-token-0123456789"),
        ...pin,
      });
      const good = testAgent(t.net, { host: "127.0.0.1", port: proxy.port }, "lab", pin);
      try {
        bad.agent.start();
        assert.ok(await blocked(t.logs, "::/64"), "::1 is blocked");
        await bad.agent.stop();
        assert.ok(
          t.logs.some((l) => l.includes("remote=[::1]:")),
          "the server logs the real source",
        );
        // The same proxy, another real source (127.0.0.1): it logs in.
        good.agent.start();
        await good.agent.connected();
        const lab = t.server.agentViews().find((a) => a.name === "lab");
        assert.match(lab!.remote, /^127\.0\.0\.1:/);
        assert.notEqual(Number(lab!.remote.split(":")[1]), proxy.port);
      } finally {
        await bad.agent.stop();
        await good.agent.stop();
        await t.close();
        await proxy.stop();
      }
    });
  }
}

/**
 * A relay in front of `upstream` that sends `header` and the client's first
 * bytes (a TLS ClientHello) in one write, then copies both ways.
 */
async function headerRelay(net: Net, upstream: Addr, header: Uint8Array) {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const open: Conn[] = [];
  void (async () => {
    for await (const c of l) {
      open.push(c);
      void (async () => {
        const first = await c.read();
        if (first === null) return c.close();
        const up = await net.dial(upstream);
        open.push(up);
        await up.write(Uint8Array.from([...header, ...first]));
        void pump(c, up);
        void pump(up, c);
      })().catch(() => c.close());
    }
  })();
  return {
    addr: l.addr,
    close() {
      l.close();
      for (const c of open) c.close();
    },
  };
}

test(`${rt}: a PROXY header before TLS: the ClientHello in the same segment is not lost; none, or late, is refused and counted`, async () => {
  const t = await tunnel({
    startAgent: false,
    tls: true,
    config: {
      trusted_proxies: ["127.0.0.1"],
      proxy_protocol: ["agents", "clients"],
      handshake_timeout: "300ms",
    },
  });
  const agents = t.server.addrs.agents!;
  const relay = await headerRelay(t.net, agents, proxyV2("198.51.100.23", 4321));
  const lab = testAgent(t.net, relay.addr, "lab", { tls: t.pin! });
  const refusals = () =>
    t.server.metrics.render().split("\n").filter((l) =>
      l.startsWith("burrow_proxy_header_refusals_total") && l.includes('port="agents"')
    ).join("\n");
  try {
    lab.agent.start();
    await lab.agent.connected();
    assert.equal(t.server.agentViews().find((a) => a.name === "lab")!.remote, "198.51.100.23:4321");
    // A TLS dial without a header: its ClientHello is no header; refused, nothing sent back.
    await assert.rejects(t.net.dial({ ...agents, tls: t.pin!, timeoutMs: 5000 }));
    assert.ok(
      await until(() =>
        t.logs.some((l) =>
          l.includes("PROXY header refused") && l.includes("port=agents") &&
          l.includes("reason=bad")
        )
      ),
    );
    assert.match(refusals(), /reason="bad"\} 1/);
    // A header that never ends: closed at handshake_timeout.
    assert.equal(await answer(t.net, agents, enc.encode("PROXY TCP4 ")), 0);
    assert.ok(
      t.logs.some((l) => l.includes("limit=proxy_header_timeout") && l.includes("port=agents")),
    );
    assert.match(
      t.server.metrics.render(),
      /burrow_limit_hits_total\{limit="proxy_header_timeout"\} 1/,
    );
  } finally {
    await lab.agent.stop();
    relay.close();
    await t.close();
  }
});

test(`${rt}: behind nginx over WebSocket, X-Forwarded-For from a trusted proxy names the real source`, async () => {
  const t = await tunnel({
    startAgent: false,
    config: {
      listen: { agents: "127.0.0.1:0", socks: "", clients: "", http: "", https: "127.0.0.1:0" },
      trusted_proxies: ["127.0.0.1"],
      limits: { auth_failures_per_minute: 3, auth_block: "60s" },
    },
  });
  const front = await nginx(t.net, t.server.addrs.https!);
  const via = (host: string, name: string, token?: string) => {
    const wss = parseServer(`wss://${host}:${front.addr.port}/burrow`);
    return testAgent(t.net, wss.addr, name, {
      tls: { fingerprint: front.pin },
      transport: wsNet(t.net, wss.ws!.host, `${wss.ws!.prefix}/agent`),
      ...(token ? { credential: tokenCredential(token) } : {}),
    });
  };
  const bad = via("[::1]", "office", "wrong-token-0123456789");
  const good = via("127.0.0.1", "lab");
  try {
    bad.agent.start();
    assert.ok(await blocked(t.logs, "::/64"), "::1 is blocked, not nginx's 127.0.0.1");
    await bad.agent.stop();
    good.agent.start();
    await good.agent.connected();
    assert.match(t.server.agentViews().find((a) => a.name === "lab")!.remote, /^127\.0\.0\.1:0$/);
  } finally {
    await bad.agent.stop();
    await good.agent.stop();
    await t.close();
    await front.stop();
  }
});

test(`${rt}: proxy_protocol on the HTTPS port: the request after the header is served, from the header's source`, async () => {
  const t = await tunnel({
    startAgent: false,
    config: {
      ...PROXIED,
      proxy_protocol: ["https"],
      listen: { agents: "127.0.0.1:0", socks: "", clients: "", http: "", https: "127.0.0.1:0" },
    },
  });
  const https = t.server.addrs.https!;
  const request = (head: string) =>
    through(t.net, proxyV1("203.0.113.9", 4711)).dial(https).then(async (c) => {
      try {
        await c.write(enc.encode(head));
        return new TextDecoder().decode(await readAll(c));
      } finally {
        c.close();
      }
    });
  try {
    assert.match(await request("GET /x HTTP/1.1\r\nHost: b\r\n\r\n"), /^HTTP\/1\.1 404 /);
    assert.equal(await request("NOT HTTP\r\n\r\n"), "");
    assert.ok(
      await until(() =>
        t.logs.some((l) => l.includes("bad HTTPS request") && l.includes("remote=203.0.113.9:4711"))
      ),
    );
  } finally {
    await t.close();
  }
});

test(`${rt}: proxy_protocol on the HTTPS port with TLS: the header, then TLS, then the request`, async () => {
  const t = await tunnel({
    startAgent: false,
    tls: true,
    config: {
      trusted_proxies: ["127.0.0.1"],
      proxy_protocol: ["https"],
      listen: { agents: "127.0.0.1:0", socks: "", clients: "", http: "", https: "127.0.0.1:0" },
    },
  });
  const relay = await headerRelay(t.net, t.server.addrs.https!, proxyV1("203.0.113.10", 4712));
  try {
    const c = await t.net.dial({ ...relay.addr, tls: t.pin!, timeoutMs: 5000 });
    try {
      await c.write(enc.encode("NOT HTTP\r\n\r\n"));
      assert.equal((await readAll(c).catch(() => new Uint8Array(0))).length, 0);
    } finally {
      c.close();
    }
    assert.ok(
      await until(() =>
        t.logs.some((l) =>
          l.includes("bad HTTPS request") && l.includes("remote=203.0.113.10:4712")
        )
      ),
    );
  } finally {
    relay.close();
    await t.close();
  }
});
