/**
 * The WebSocket transport end to end (SPEC.md §3.1): agents and client
 * proxies on the server's HTTPS port, and behind a real nginx that
 * terminates TLS and passes WebSocket upgrades on to burrow's plain port.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { nginx } from "./daemons.ts";
import { test } from "node:test";
import { tokenCredential } from "../src/auth.ts";
import { connectThrough } from "../src/client.ts";
import { targetOf } from "../src/ip.ts";
import type { Addr, Net } from "../src/net.ts";
import { parseServer } from "../src/config/mod.ts";
import { wsNet } from "../src/transport.ts";
import { ALICE_TOKEN, echoTarget, readAll, runtime, testAgent, tunnel, until } from "./helpers.ts";

const rt = runtime;

/** Run a command without blocking this process (the server under test runs in it). */
function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    child.on("error", reject);
    child.on("close", () => resolve({ stdout, stderr })); // after stdout and stderr are drained
  });
}

/** GET `path` over `conn`-producing `dial`; returns status line and body. */
async function get(
  net: Net,
  addr: Addr,
  path: string,
  tls?: { fingerprint: string },
): Promise<string> {
  const c = await net.dial({ ...addr, ...(tls ? { tls } : {}) });
  try {
    await c.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: burrow\r\n\r\n`));
    return new TextDecoder().decode(await readAll(c));
  } finally {
    c.close();
  }
}

/** An echo through `net` (a WebSocket Net) to the client port, as a client proxy does. */
async function clientEcho(
  net: Net,
  server: Addr,
  tls: { fingerprint: string } | undefined,
  port: number,
) {
  const r = await connectThrough(
    net,
    {
      server: { ...server, ...(tls ? { tls } : {}) },
      name: "alice",
      credential: tokenCredential(ALICE_TOKEN),
    },
    "office",
    targetOf("127.0.0.1", port),
  );
  assert.ok(r.ok, r.ok ? "" : r.error.message);
  await r.value.conn.write(new TextEncoder().encode("over websocket"));
  assert.equal(new TextDecoder().decode((await r.value.conn.read())!), "over websocket");
  r.value.conn.close();
}

test("transport: --server takes host:port or a WebSocket URL", () => {
  assert.deepEqual(parseServer("burrow.example.com:7000"), {
    addr: { host: "burrow.example.com", port: 7000 },
  });
  assert.deepEqual(parseServer("wss://burrow.example.com/burrow/"), {
    addr: { host: "burrow.example.com", port: 443 },
    ws: { prefix: "/burrow", secure: true, host: "burrow.example.com" },
  });
  assert.deepEqual(parseServer("ws://[::1]:8080"), {
    addr: { host: "::1", port: 8080 },
    ws: { prefix: "", secure: false, host: "[::1]:8080" },
  });
  assert.throws(() => parseServer("wss://user:pw@host/"), /no credentials/);
});

test(`${rt}: websocket: agent and client proxy on the HTTPS port, with the HTTP app beside them`, async () => {
  const t = await tunnel({ tls: true, startAgent: false, config: { listen: httpsListen() } });
  const echo = await echoTarget(t.net);
  t.server.useHttpApp(() => new Response("app\n"));
  const https = t.server.addrs.https!;
  const { agent } = testAgent(t.net, https, "office", {
    tls: t.pin!,
    transport: wsNet(t.net, `127.0.0.1:${https.port}`, "/burrow/agent"),
  });
  try {
    agent.start();
    await agent.connected();
    assert.ok(
      await until(() => (t.server.agents.sessions.get("office")?.idle ?? 0) >= 2),
      "pool over WebSocket",
    );
    await clientEcho(wsNet(t.net, "x", "/burrow/client"), https, t.pin, echo.addr.port);
    const page = await get(t.net, https, "/healthz", t.pin);
    assert.match(page, /^HTTP\/1.1 200/);
    assert.match(page, /\r\n\r\n4\r\napp\n\r\n0\r\n\r\n$/, "chunked, as its length is not known");
  } finally {
    await agent.stop();
    echo.close();
    await t.close();
  }
});

/** The listen section of a tunnel with an HTTPS port (the tunnel helper merges it over its own). */
function httpsListen() {
  return {
    agents: "127.0.0.1:0",
    socks: "127.0.0.1:0",
    clients: "127.0.0.1:0",
    http: "",
    https: "127.0.0.1:0",
  };
}

test(`${rt}: websocket: through nginx terminating TLS; curl reaches a target`, async () => {
  // burrow's HTTPS port without TLS, on loopback, behind nginx.
  const t = await tunnel({ startAgent: false, config: { listen: httpsListen() } });
  const front = await nginx(t.net, t.server.addrs.https!);
  const target = await t.net.listen({ host: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of target) {
      void (async () => {
        await c.read();
        await c.write(
          new TextEncoder().encode(
            "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\nhello via nginx\n",
          ),
        );
        await c.end();
      })().catch(() => {}).finally(() => c.close());
    }
  })();
  const echo = await echoTarget(t.net);
  const pin = { fingerprint: front.pin };
  const wss = parseServer(`wss://127.0.0.1:${front.addr.port}/burrow`);
  const { agent } = testAgent(t.net, wss.addr, "office", {
    tls: pin,
    transport: wsNet(t.net, wss.ws!.host, `${wss.ws!.prefix}/agent`),
  });
  try {
    agent.start();
    await agent.connected();
    const curl = await run("curl", [
      "-s",
      "--max-time",
      "10",
      "--socks5-hostname",
      `127.0.0.1:${t.socks.port}`,
      "--proxy-user",
      `alice:${ALICE_TOKEN}`,
      `http://127.0.0.1:${target.addr.port}/`,
    ]);
    assert.equal(curl.stdout, "hello via nginx\n", curl.stderr);
    await clientEcho(
      wsNet(t.net, wss.ws!.host, `${wss.ws!.prefix}/client`),
      wss.addr,
      pin,
      echo.addr.port,
    );
  } finally {
    await agent.stop();
    echo.close();
    target.close();
    await serving;
    await front.stop();
    await t.close();
  }
});
