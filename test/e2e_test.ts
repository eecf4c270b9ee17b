/**
 * End to end through real processes on 127.0.0.1: `burrow server` and
 * `burrow agent` started from the CLI, driven by Debian's curl and ncat and
 * by our SOCKS5 client; mixed runtimes; killed and restarted processes.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { targetOf } from "../src/ip.ts";
import type { Conn, Net } from "../src/net.ts";
import { AGENT_TOKEN, ALICE_TOKEN, burrow, type Proc, runtime, runtimeNet, socks } from "./helpers.ts";

type Rt = "node" | "deno" | "bun";
const rt = runtime;

async function freePort(net: Net): Promise<number> {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

interface Setup {
  dir: string;
  config: string;
  agentPort: number;
  socksPort: number;
  httpPort: number;
  cleanup(): void;
}

async function setup(net: Net): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-e2e-"));
  const [agentPort, socksPort, httpPort] = [await freePort(net), await freePort(net), await freePort(net)];
  const config = join(dir, "server.yaml");
  writeFileSync(
    config,
    `listen:
  agents: 127.0.0.1:${agentPort}
  socks: 127.0.0.1:${socksPort}
  clients: ""
  http: 127.0.0.1:${httpPort}
heartbeat: { interval: 300ms, timeout: 1500ms }
pool: { min: 2, max: 16 }
agents:
  - name: office
    token: ${AGENT_TOKEN}
clients:
  - name: alice
    token: ${ALICE_TOKEN}
grants:
  - client: alice
    agent: office
    targets: ["localhost:*", "127.0.0.1:*"]
`,
  );
  return { dir, config, agentPort, socksPort, httpPort, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function startServer(r: Rt, s: Setup): Proc {
  return burrow(r, ["server", "-c", s.config, "--log-level", "debug"]);
}

function startAgent(r: Rt, s: Setup): Proc {
  return burrow(r, [
    "agent",
    "--server",
    `127.0.0.1:${s.agentPort}`,
    "--name",
    "office",
    "--token",
    AGENT_TOKEN,
    "--allow",
    "localhost:*",
    "--allow",
    "127.0.0.1:*",
  ]);
}

/** A tiny HTTP/1.0 target that answers every request with `body`. */
async function httpTarget(net: Net, body: string) {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const conns = new Set<Conn>();
  (async () => {
    for await (const c of l) {
      conns.add(c);
      (async () => {
        try {
          let head = "";
          while (!head.includes("\r\n\r\n")) {
            const chunk = await c.read();
            if (chunk === null) break;
            head += new TextDecoder().decode(chunk);
          }
          await c.write(new TextEncoder().encode(
            `HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
          ));
          await c.end();
        } catch {
          // client went away
        } finally {
          c.close();
          conns.delete(c);
        }
      })();
    }
  })();
  return { port: l.addr.port, close: () => (l.close(), conns.forEach((c) => c.close())) };
}

function curl(socksPort: number, url: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-sS", "--max-time", "10", "--socks5-hostname", `127.0.0.1:${socksPort}`, "--proxy-user", `alice:${ALICE_TOKEN}`, url],
      (e, out, err) => resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, out: String(out), err: String(err) }),
    );
  });
}

async function curlWorks(s: Setup, port: number, body: string, ms = 10000): Promise<void> {
  let last = { code: -1, out: "", err: "" };
  const ok = await (async () => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      last = await curl(s.socksPort, `http://localhost:${port}/`);
      if (last.code === 0 && last.out === body) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  })();
  assert.ok(ok, `curl failed: exit ${last.code} ${last.err} ${last.out}`);
}

async function withSystem(
  server: Rt,
  agent: Rt,
  fn: (s: Setup, net: Net, procs: { server: Proc; agent: Proc }) => Promise<void>,
): Promise<void> {
  const net = await runtimeNet();
  const s = await setup(net);
  const procs = { server: startServer(server, s), agent: startAgent(agent, s) };
  try {
    await procs.server.waitFor(/server listening/);
    await procs.agent.waitFor(/msg="connected"/);
    await fn(s, net, procs);
  } finally {
    await procs.agent.stop();
    await procs.server.stop();
    s.cleanup();
  }
}

test(`${rt}: curl --socks5-hostname reaches an HTTP target through server and agent processes`, async () => {
  const net = await runtimeNet();
  const target = await httpTarget(net, "hello from inside\n");
  try {
    await withSystem(rt, rt, async (s) => {
      await curlWorks(s, target.port, "hello from inside\n");
      const health = await fetch(`http://127.0.0.1:${s.httpPort}/healthz`).then((r) => r.json()) as { agents: number };
      assert.equal(health.agents, 1);
      const metrics = await fetch(`http://127.0.0.1:${s.httpPort}/metrics`).then((r) => r.text());
      assert.match(metrics, /burrow_streams_total\{agent="office"\} [1-9]/);
    });
  } finally {
    target.close();
  }
});

test(`${rt}: 100 MiB arrive intact in both directions (SHA-256)`, async () => {
  const net = await runtimeNet();
  // The target hashes what it receives and sends back 100 MiB of its own.
  const SIZE = 100 * 1024 * 1024;
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const block = new Uint8Array(1 << 20).map((_, i) => (i * 31 + 7) & 0xff);
  const sentByTarget = createHash("sha256");
  for (let n = 0; n < SIZE; n += block.length) sentByTarget.update(block);
  const expectDown = sentByTarget.digest("hex");
  let receivedByTarget = "";
  const serving = (async () => {
    const c = await l.accept();
    if (!c) return;
    const h = createHash("sha256");
    const rx = (async () => {
      for (;;) {
        const chunk = await c.read();
        if (chunk === null) break;
        h.update(chunk);
      }
      receivedByTarget = h.digest("hex");
    })();
    for (let n = 0; n < SIZE; n += block.length) await c.write(block);
    await c.end();
    await rx;
    c.close();
  })();
  try {
    await withSystem(rt, rt, async (s) => {
      const r = await socks(net, { host: "127.0.0.1", port: s.socksPort }, "alice", ALICE_TOKEN, targetOf("127.0.0.1", l.addr.port));
      assert.equal(r.reply, 0);
      const up = createHash("sha256");
      const upBlock = new Uint8Array(1 << 20).map((_, i) => (i * 17 + 3) & 0xff);
      for (let n = 0; n < SIZE; n += upBlock.length) up.update(upBlock);
      const down = createHash("sha256");
      let downBytes = r.rest.length;
      down.update(r.rest);
      const rx = (async () => {
        for (;;) {
          const chunk = await r.conn.read();
          if (chunk === null) break;
          downBytes += chunk.length;
          down.update(chunk);
        }
      })();
      for (let n = 0; n < SIZE; n += upBlock.length) await r.conn.write(upBlock);
      await r.conn.end();
      await rx;
      await serving;
      r.conn.close();
      assert.equal(downBytes, SIZE);
      assert.equal(down.digest("hex"), expectDown, "download checksum");
      assert.equal(receivedByTarget, up.digest("hex"), "upload checksum");
    });
  } finally {
    l.close();
  }
});

test(`${rt}: ncat half-closes and still receives the answer`, async () => {
  const net = await runtimeNet();
  // Answers only after the client's EOF: the reply proves half-close crossed both hops.
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const c = await l.accept();
    if (!c) return;
    let n = 0;
    for (;;) {
      const chunk = await c.read();
      if (chunk === null) break;
      n += chunk.length;
    }
    await c.write(new TextEncoder().encode(`got ${n} bytes\n`));
    await c.end();
    c.close();
  })();
  try {
    await withSystem(rt, rt, async (s) => {
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn("ncat", [
          "--proxy",
          `127.0.0.1:${s.socksPort}`,
          "--proxy-type",
          "socks5",
          "--proxy-auth",
          `alice:${ALICE_TOKEN}`,
          "127.0.0.1",
          String(l.addr.port),
        ], { stdio: ["pipe", "pipe", "pipe"] });
        let o = "";
        const t = setTimeout(() => p.kill("SIGKILL"), 15000);
        p.stdout.on("data", (d) => (o += d));
        p.on("error", reject);
        p.on("exit", () => (clearTimeout(t), resolve(o)));
        p.stdin.end("x".repeat(10000));
      });
      assert.equal(out, "got 10000 bytes\n");
      await serving;
    });
  } finally {
    l.close();
  }
});

for (const [server, agent] of [["deno", "bun"], ["node", "deno"]] as const) {
  test(`${rt}: mixed runtimes: ${server} server with ${agent} agent`, async () => {
    const net = await runtimeNet();
    const target = await httpTarget(net, `mixed ${server}+${agent}\n`);
    try {
      await withSystem(server, agent, (s) => curlWorks(s, target.port, `mixed ${server}+${agent}\n`));
    } finally {
      target.close();
    }
  });
}

test(`${rt}: killed agent is dropped, restarted agent serves; restarted server gets the agent back`, async () => {
  const net = await runtimeNet();
  const target = await httpTarget(net, "still here\n");
  try {
    await withSystem(rt, rt, async (s, _net, procs) => {
      await curlWorks(s, target.port, "still here\n");
      await procs.agent.stop("SIGKILL");
      const health = async () =>
        (await fetch(`http://127.0.0.1:${s.httpPort}/healthz`).then((r) => r.json()) as { agents: number }).agents;
      let agents = 1;
      const t0 = Date.now();
      while (agents !== 0 && Date.now() - t0 < 5000) {
        agents = await health();
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(agents, 0, "killed agent dropped within the heartbeat timeout");
      const refused = await curl(s.socksPort, `http://localhost:${target.port}/`);
      assert.notEqual(refused.code, 0, "CONNECT for an offline agent is refused");

      procs.agent = startAgent(rt, s);
      await procs.agent.waitFor(/msg="connected"/);
      await curlWorks(s, target.port, "still here\n");

      await procs.server.stop();
      procs.server = startServer(rt, s);
      await procs.server.waitFor(/server listening/);
      await procs.server.waitFor(/agent connected/, 15000);
      await curlWorks(s, target.port, "still here\n");
    });
  } finally {
    target.close();
  }
});
