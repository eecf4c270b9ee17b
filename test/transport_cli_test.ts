/**
 * `burrow agent` and `burrow client` as processes out of a closed network:
 * through a real HTTP proxy (tinyproxy with Basic auth) named by
 * `--proxy-file` or by `HTTPS_PROXY`, and over WebSocket (`wss://`) to the
 * server's HTTPS port; curl reaches a target through each.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Listener, Net } from "../src/net.ts";
import { tinyproxy } from "./daemons.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  type Proc,
  runtime,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

/** curl through a SOCKS5 proxy, without blocking this process (the server runs in it). */
function curl(socks: string, user: string | null, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = ["-s", "--max-time", "10", "--socks5-hostname", socks, url];
    if (user) args.push("--proxy-user", user);
    const child = spawn("curl", args, { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    child.on("error", reject);
    child.on("close", () => resolve(out)); // "close": after stdout is drained ("exit" may come first)
  });
}

/** An HTTP target that answers every request with `text`. */
async function httpTarget(net: Net, text: string): Promise<Listener> {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  void (async () => {
    for await (const c of l) {
      void (async () => {
        await c.read();
        const body = new TextEncoder().encode(text);
        await c.write(
          new TextEncoder().encode(
            `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
          ),
        );
        await c.write(body);
        await c.end();
      })().catch(() => {}).finally(() => c.close());
    }
  })();
  return l;
}

interface Setup {
  t: Tunnel;
  dir: string;
  target: Listener;
  procs: Proc[];
  close(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const t = await tunnel({
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
    },
  });
  const dir = mkdtempSync(join(tmpdir(), "burrow-transport-"));
  writeFileSync(join(dir, "agent.token"), AGENT_TOKEN, { mode: 0o600 });
  writeFileSync(join(dir, "alice.token"), ALICE_TOKEN, { mode: 0o600 });
  const target = await httpTarget(t.net, "hello from the closed network\n");
  const procs: Proc[] = [];
  return {
    t,
    dir,
    target,
    procs,
    async close() {
      for (const p of procs) await p.stop();
      target.close();
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The server has an announced session of office with an idle pool connection. */
function ready(s: Setup): boolean {
  return s.t.server.agents.group("office").some((x) => x.announced && x.idle >= 1);
}

function agentArgs(s: Setup, server: string): string[] {
  return [
    "agent",
    "--server",
    server,
    "--name",
    "office",
    "--token-file",
    join(s.dir, "agent.token"),
    "--fingerprint",
    s.t.pin!.fingerprint,
    "--allow",
    "127.0.0.1:*",
  ];
}

test(`${rt}: cli: an agent behind an HTTP proxy (--proxy-file, then HTTPS_PROXY) serves curl`, async () => {
  const s = await setup();
  const proxy = await tinyproxy(s.t.net);
  try {
    const url = `http://alice:s3cret@127.0.0.1:${proxy.addr.port}`;
    writeFileSync(join(s.dir, "proxy"), `${url}\n`, { mode: 0o600 });
    const server = `127.0.0.1:${s.t.server.addrs.agents!.port}`;
    const a = burrow(rt, [...agentArgs(s, server), "--proxy-file", join(s.dir, "proxy")]);
    s.procs.push(a);
    await a.waitFor(/msg="connected"/);
    assert.ok(await until(() => ready(s)), `the pool stands:\n${a.output()}`);
    assert.match(
      a.output(),
      /proxy=http:\/\/\*\*\*@127\.0\.0\.1/,
      "the proxy is logged, its user info is not",
    );
    assert.ok(!a.output().includes("s3cret") && !a.output().includes("alice"));
    const page = await curl(
      `127.0.0.1:${s.t.socks.port}`,
      `alice:${ALICE_TOKEN}`,
      `http://127.0.0.1:${s.target.addr.port}/`,
    );
    assert.equal(page, "hello from the closed network\n", a.output());
    await a.stop();
    // The environment as curl reads it; NO_PROXY exempts other hosts only.
    const b = burrow(rt, agentArgs(s, server), { HTTPS_PROXY: url, NO_PROXY: "example.com" });
    s.procs.push(b);
    await b.waitFor(/msg="connected"/);
    assert.match(b.output(), /reaching the server through a proxy/);
    await b.stop();
    // Wrong credentials: a clear error, and the agent keeps retrying.
    const c = burrow(rt, agentArgs(s, server), {
      HTTPS_PROXY: `http://alice:wrong@127.0.0.1:${proxy.addr.port}`,
    });
    s.procs.push(c);
    await c.waitFor(/rejected the credentials/);
    assert.ok(!c.output().includes("wrong@"), "no password in the log");
  } finally {
    await proxy.stop();
    await s.close();
  }
});

test(`${rt}: cli: an agent and a client proxy over wss:// to the HTTPS port serve curl`, async () => {
  const s = await setup();
  try {
    const wss = `wss://127.0.0.1:${s.t.server.addrs.https!.port}/burrow`;
    const a = burrow(rt, agentArgs(s, wss));
    s.procs.push(a);
    await a.waitFor(/msg="connected"/);
    assert.ok(
      await until(() => ready(s)),
      "pool over wss",
    );
    const c = burrow(rt, [
      "client",
      "--server",
      wss,
      "--name",
      "alice",
      "--token-file",
      join(s.dir, "alice.token"),
      "--fingerprint",
      s.t.pin!.fingerprint,
      "--agent",
      "office",
      "--listen",
      "127.0.0.1:0",
    ]);
    s.procs.push(c);
    const line = await c.waitFor(/client proxy listening.*socks=127\.0\.0\.1:\d+/);
    const socks = /socks=(127\.0\.0\.1:\d+)/.exec(line)![1]!;
    const page = await curl(socks, null, `http://127.0.0.1:${s.target.addr.port}/`);
    assert.equal(page, "hello from the closed network\n");
    // ws:// with TLS, or wss:// with --plain, are refused at start with one line.
    const bad = burrow(rt, [...agentArgs(s, wss.replace("wss:", "ws:"))]);
    s.procs.push(bad);
    assert.equal(await bad.exited, 2);
    assert.match(bad.output(), /a ws:\/\/ server is plain/);
  } finally {
    await s.close();
  }
});
