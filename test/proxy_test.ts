/**
 * Outbound proxies (src/proxy.ts): URL and environment handling as curl does
 * it, and tunnels through real proxies: Debian's tinyproxy (HTTP CONNECT with
 * Basic auth) and microsocks (SOCKS5 with user/password).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, NetError, ProxyError } from "../src/errors.ts";
import type { Net } from "../src/net.ts";
import { freePort, microsocks, tinyproxy } from "./daemons.ts";
import {
  noProxyMatches,
  parseProxyUrl,
  proxiedNet,
  type Proxy,
  proxyFor,
  proxyHandshake,
  redactProxy,
} from "../src/proxy.ts";
import {
  ALICE_TOKEN,
  echoTarget,
  runtime,
  runtimeNet,
  testAgent,
  tunnel,
  until,
} from "./helpers.ts";
import { tokenCredential } from "../src/auth.ts";
import { connectThrough } from "../src/client.ts";
import { targetOf } from "../src/ip.ts";

const rt = runtime;

test("proxy: URLs parse, credentials are redacted", () => {
  assert.deepEqual(parseProxyUrl("http://proxy.corp:8080"), {
    kind: "http",
    host: "proxy.corp",
    port: 8080,
  });
  assert.deepEqual(parseProxyUrl("proxy.corp"), { kind: "http", host: "proxy.corp", port: 3128 });
  assert.deepEqual(parseProxyUrl("socks5h://al%40ice:p%3Ass@[::1]:1081"), {
    kind: "socks5h",
    host: "::1",
    port: 1081,
    user: "al@ice",
    password: "p:ss",
  });
  // The whole user info goes: a user name alone can be the secret.
  assert.equal(redactProxy(parseProxyUrl("http://alice:secret@p:3128")), "http://***@p:3128");
  assert.equal(redactProxy(parseProxyUrl("http://S3cretPW@p:3128")), "http://***@p:3128");
  assert.equal(redactProxy(parseProxyUrl("http://:pw@p:3128")), "http://***@p:3128");
  assert.deepEqual(parseProxyUrl("http://:pw@p"), {
    kind: "http",
    host: "p",
    port: 3128,
    password: "pw",
  });
  for (const bad of ["ftp://S3cretPW@p", "http://S3cretPW@p/x", "socks5://:S3cretPW@p"]) {
    assert.throws(
      () => parseProxyUrl(bad),
      (e: unknown) => e instanceof ConfigError && !e.message.includes("S3cretPW"),
      bad,
    );
  }
  for (const bad of ["ftp://p:21", "http://p:3128/path", "http://", "http://p:99999"]) {
    assert.throws(() => parseProxyUrl(bad), ConfigError, bad);
  }
  try {
    parseProxyUrl("ftp://alice:secret@p");
  } catch (e) {
    assert.ok(!(e as Error).message.includes("secret"), "no password in the error");
  }
});

test("proxy: no_proxy as curl reads it", () => {
  assert.ok(noProxyMatches("*", "anything"));
  assert.ok(noProxyMatches("corp", "burrow.corp"));
  assert.ok(noProxyMatches(".corp", "burrow.corp"));
  assert.ok(noProxyMatches("burrow.corp", "BURROW.CORP."));
  assert.ok(!noProxyMatches("corp", "evilcorp"));
  assert.ok(noProxyMatches("localhost, 10.0.0.0/8", "10.1.2.3"));
  assert.ok(noProxyMatches("127.0.0.1", "127.0.0.1"));
  assert.ok(noProxyMatches("[::1]", "::1"));
  assert.ok(noProxyMatches("burrow.corp:7000", "burrow.corp"), "ports are ignored");
  assert.ok(!noProxyMatches("10.0.0.0/8", "11.0.0.1"));
  assert.ok(!noProxyMatches("", "x"));
});

test("proxy: which proxy, from flag or environment", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const any = { useEnv: true };
  assert.equal(proxyFor("s.corp", { ...any, env: env({}) }), null);
  assert.equal(proxyFor("s.corp", { ...any, env: env({ HTTPS_PROXY: "http://a:1" }) })?.host, "a");
  assert.equal(
    proxyFor("s.corp", {
      ...any,
      env: env({ https_proxy: "http://low:1", HTTPS_PROXY: "http://up:1" }),
    })?.host,
    "low",
    "lower case first, as curl",
  );
  assert.equal(
    proxyFor("s.corp", { ...any, env: env({ ALL_PROXY: "socks5h://s:1" }) })?.kind,
    "socks5h",
  );
  assert.equal(
    proxyFor("s.corp", { ...any, env: env({ HTTPS_PROXY: "http://a:1", NO_PROXY: "corp" }) }),
    null,
  );
  assert.equal(
    proxyFor("s.corp", { useEnv: false, env: env({ HTTPS_PROXY: "http://a:1" }) }),
    null,
    "--no-proxy",
  );
  assert.equal(
    proxyFor("s.corp", {
      explicit: "http://flag:2",
      useEnv: true,
      env: env({ HTTPS_PROXY: "http://a:1" }),
    })?.host,
    "flag",
  );
  assert.equal(
    proxyFor("s.corp", { ...any, env: env({ HTTPS_PROXY: "  " }) }),
    null,
    "empty is unset",
  );
});

/** Dial `proxy`, tunnel to the echo target, check an echo; returns the error if any. */
async function through(net: Net, proxy: Proxy, host: string, port: number): Promise<unknown> {
  const conn = await net.dial({ host: proxy.host, port: proxy.port });
  try {
    const rest = await proxyHandshake(conn, proxy, host, port, (h) => net.lookup(h));
    assert.equal(rest.length, 0);
    await conn.write(new TextEncoder().encode("hello through the proxy"));
    assert.equal(new TextDecoder().decode((await conn.read())!), "hello through the proxy");
    return null;
  } catch (e) {
    return e;
  } finally {
    conn.close();
  }
}

test(`${rt}: proxy: HTTP CONNECT through tinyproxy with Basic auth; 407 and 403 are clear`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const open = await tinyproxy(net);
  const narrow = await tinyproxy(net, [443]);
  try {
    const p = (cred: string, d = open) => parseProxyUrl(`http://${cred}127.0.0.1:${d.addr.port}`);
    assert.equal(await through(net, p("alice:s3cret@"), "127.0.0.1", echo.addr.port), null);
    assert.equal(await through(net, p("alice:s3cret@"), "localhost", echo.addr.port), null);
    const none = await through(net, p(""), "127.0.0.1", echo.addr.port);
    assert.ok(none instanceof ProxyError && none.status === 407, String(none));
    assert.match((none as Error).message, /requires authentication/);
    const wrong = await through(net, p("alice:wrong@"), "127.0.0.1", echo.addr.port);
    // tinyproxy answers wrong credentials with 401, missing ones with 407.
    assert.ok(wrong instanceof ProxyError && [401, 407].includes(wrong.status ?? 0), String(wrong));
    assert.match((wrong as Error).message, /rejected the credentials/);
    assert.ok(!(wrong as Error).message.includes("wrong"), "no password in the message");
    const forbidden = await through(net, p("alice:s3cret@", narrow), "127.0.0.1", echo.addr.port);
    assert.ok(forbidden instanceof ProxyError && forbidden.status === 403, String(forbidden));
  } finally {
    echo.close();
    await open.stop();
    await narrow.stop();
  }
});

test(`${rt}: proxy: SOCKS5 through microsocks with user/password, names resolved there or here`, async () => {
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  const socks = await microsocks(net);
  try {
    const url = (scheme: string, cred: string) =>
      parseProxyUrl(`${scheme}://${cred}127.0.0.1:${socks.addr.port}`);
    assert.equal(
      await through(net, url("socks5h", "alice:s3cret@"), "localhost", echo.addr.port),
      null,
    );
    assert.equal(
      await through(net, url("socks5", "alice:s3cret@"), "localhost", echo.addr.port),
      null,
    );
    assert.equal(
      await through(net, url("socks5", "alice:s3cret@"), "127.0.0.1", echo.addr.port),
      null,
    );
    const wrong = await through(net, url("socks5", "alice:wrong@"), "127.0.0.1", echo.addr.port);
    assert.ok(wrong instanceof ProxyError, String(wrong));
    const none = await through(net, url("socks5", ""), "127.0.0.1", echo.addr.port);
    assert.ok(none instanceof ProxyError, String(none));
    assert.match((none as Error).message, /requires authentication/);
  } finally {
    echo.close();
    await socks.stop();
  }
});

test(`${rt}: proxy: an unreachable proxy is named, not the server, and its secret is not`, async () => {
  const net = await runtimeNet();
  const port = await freePort(net);
  const proxied = proxiedNet(net, parseProxyUrl(`http://S3cretPW@127.0.0.1:${port}`));
  try {
    await assert.rejects(
      proxied.dial({ host: "server.example", port: 7001, timeoutMs: 2000 }),
      (e: unknown) =>
        e instanceof ProxyError && (e.cause as NetError).code === "ECONNREFUSED" &&
        e.message.startsWith(`cannot reach the proxy http://***@127.0.0.1:${port}: `),
    );
    const r = await connectThrough(
      proxied,
      {
        server: { host: "server.example", port: 7001 },
        name: "alice",
        credential: tokenCredential(ALICE_TOKEN),
      },
      "",
      targetOf("127.0.0.1", 80),
    );
    assert.ok(!r.ok);
    const { message } = r.error;
    assert.match(message, /^cannot reach the proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+: /);
    assert.ok(!message.includes("S3cretPW") && !message.includes("server"), message);
  } finally {
    proxied.close();
  }
});

test(`${rt}: proxy: a password without a user name is sent (Basic ":pw")`, async () => {
  const net = await runtimeNet();
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const heads: string[] = [];
  (async () => {
    for await (const c of l) {
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const chunk = await c.read();
        if (chunk === null) break;
        head += new TextDecoder().decode(chunk);
      }
      heads.push(head);
      await c.write(new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
      c.close();
    }
  })();
  try {
    for (const cred of [":pw@", "S3cretPW@", ""]) {
      const conn = await net.dial(l.addr);
      const p = parseProxyUrl(`http://${cred}127.0.0.1:${l.addr.port}`);
      await proxyHandshake(conn, p, "server.example", 7001, (h) => net.lookup(h));
      conn.close();
    }
    assert.equal(heads.length, 3);
    assert.match(heads[0]!, new RegExp(`\r\nProxy-Authorization: Basic ${btoa(":pw")}\r\n`));
    assert.match(heads[1]!, new RegExp(`\r\nProxy-Authorization: Basic ${btoa("S3cretPW:")}\r\n`));
    assert.ok(!heads[2]!.includes("Proxy-Authorization"), heads[2]);
  } finally {
    l.close();
  }
});

test(`${rt}: proxy: an agent and a client proxy reach a TLS server through tinyproxy and microsocks`, async () => {
  const t = await tunnel({ tls: true, startAgent: false });
  const echo = await echoTarget(t.net);
  const http = await tinyproxy(t.net);
  const socks5 = await microsocks(t.net);
  const viaHttp = proxiedNet(
    t.net,
    parseProxyUrl(`http://alice:s3cret@127.0.0.1:${http.addr.port}`),
  );
  const viaSocks = proxiedNet(
    t.net,
    parseProxyUrl(`socks5h://alice:s3cret@127.0.0.1:${socks5.addr.port}`),
  );
  const { agent, lines } = testAgent(t.net, t.server.addrs.agents!, "office", {
    tls: t.pin!,
    transport: viaHttp,
  });
  try {
    agent.start();
    await agent.connected();
    assert.ok(!lines.some((l) => l.includes("session failed")), "connected at the first attempt");
    assert.ok(
      await until(() => (t.server.agents.sessions.get("office")?.idle ?? 0) >= 2),
      "pool through the proxy",
    );
    const r = await connectThrough(
      viaSocks,
      {
        server: { ...t.server.addrs.clients!, tls: t.pin! },
        name: "alice",
        credential: tokenCredential(ALICE_TOKEN),
      },
      "office",
      targetOf("127.0.0.1", echo.addr.port),
    );
    assert.ok(r.ok, r.ok ? "" : r.error.message);
    await r.value.conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode((await r.value.conn.read())!), "ping");
    r.value.conn.close();
  } finally {
    await agent.stop();
    viaHttp.close();
    viaSocks.close();
    echo.close();
    await http.stop();
    await socks5.stop();
    await t.close();
  }
});

test(`${rt}: proxy: wrong proxy credentials give the agent a clear error`, async () => {
  const t = await tunnel({ tls: true, startAgent: false });
  const http = await tinyproxy(t.net);
  const viaHttp = proxiedNet(t.net, parseProxyUrl(`http://alice:nope@127.0.0.1:${http.addr.port}`));
  const { agent, lines } = testAgent(t.net, t.server.addrs.agents!, "office", {
    tls: t.pin!,
    transport: viaHttp,
  });
  try {
    agent.start();
    assert.ok(
      await until(() => lines.some((l) => l.includes("rejected the credentials"))),
      lines.join("\n"),
    );
    assert.ok(!lines.some((l) => l.includes("nope")), "the password is never logged");
  } finally {
    await agent.stop();
    viaHttp.close();
    await http.stop();
    await t.close();
  }
});
