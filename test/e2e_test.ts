/**
 * End to end through real processes on 127.0.0.1: `burrow server` and
 * `burrow agent` started from the CLI, driven by Debian's curl and ncat and
 * by our SOCKS5 client; mixed runtimes; killed and restarted processes.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { targetOf } from "../src/ip.ts";
import type { Conn, Net } from "../src/net.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  freeListen,
  freePort,
  type Proc,
  runtime,
  runtimeNet,
  socks,
  writeServerYaml,
} from "./helpers.ts";

type Rt = "node" | "deno" | "bun";
const rt = runtime;

interface Setup {
  dir: string;
  config: string;
  agentPort: number;
  socksPort: number;
  httpPort: number;
  clientPort: number;
  cleanup(): void;
}

interface SetupOptions {
  /** The `tls:` key; default off (plain TCP). */
  tls?: string | { cert: string; key: string };
}

async function setup(net: Net, opts: SetupOptions = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-e2e-"));
  const { ports, listen } = await freeListen(net);
  const config = writeServerYaml(dir, {
    listen,
    tls: opts.tls ?? "off",
    heartbeat: { interval: "300ms", timeout: "1500ms" },
    pool: { min: 2, max: 16 },
    clients: [{ name: "alice", token: ALICE_TOKEN }],
    grants: [{ client: "alice", agent: "office", targets: ["localhost:*", "127.0.0.1:*"] }],
  });
  return {
    dir,
    config,
    agentPort: ports.agents,
    socksPort: ports.socks,
    httpPort: ports.http,
    clientPort: ports.clients,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function startServer(r: Rt, s: Setup): Proc {
  return burrow(r, ["server", "-c", s.config, "--log-level", "debug"]);
}

/** `tls`: extra agent flags for TLS; default `--plain`. */
function startAgent(r: Rt, s: Setup, tls: string[] = ["--plain"]): Proc {
  return burrow(r, [
    "agent",
    ...tls,
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

function curl(
  socksPort: number,
  url: string,
  auth = true,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      [
        "-sS",
        "--max-time",
        "10",
        "--socks5-hostname",
        `127.0.0.1:${socksPort}`,
        ...(auth ? ["--proxy-user", `alice:${ALICE_TOKEN}`] : []),
        url,
      ],
      (e, out, err) =>
        resolve({
          code: e ? (typeof e.code === "number" ? e.code : 1) : 0,
          out: String(out),
          err: String(err),
        }),
    );
  });
}

async function curlWorks(
  s: Setup,
  port: number,
  body: string,
  ms = 10000,
  via?: number,
): Promise<void> {
  let last = { code: -1, out: "", err: "" };
  const ok = await (async () => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      last = via === undefined
        ? await curl(s.socksPort, `http://localhost:${port}/`)
        : await curl(via, `http://localhost:${port}/`, false);
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
      const health = await fetch(`http://127.0.0.1:${s.httpPort}/healthz`).then((r) =>
        r.json()
      ) as { agents: number };
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
      const r = await socks(
        net,
        { host: "127.0.0.1", port: s.socksPort },
        "alice",
        ALICE_TOKEN,
        targetOf("127.0.0.1", l.addr.port),
      );
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
        p.on("close", () => (clearTimeout(t), resolve(o))); // after stdout is drained
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
      await withSystem(
        server,
        agent,
        (s) => curlWorks(s, target.port, `mixed ${server}+${agent}\n`),
      );
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
        (await fetch(`http://127.0.0.1:${s.httpPort}/healthz`).then((r) => r.json()) as {
          agents: number;
        }).agents;
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

test(`${rt}: over TLS: auto certificate, agent and client proxy pinned by fingerprint, curl through burrow client`, async () => {
  const net = await runtimeNet();
  const target = await httpTarget(net, "secure hello\n");
  const s = await setup(net, { tls: "auto" });
  const server = startServer(rt, s);
  const procs: Proc[] = [server];
  try {
    const line = await server.waitFor(/TLS certificate fingerprint: ([0-9A-F:]{95})/);
    const fp = line.split(": ")[1]!;
    await server.waitFor(/server listening.*tls=on/);
    // The key was stored with safe permissions.
    assert.equal(statSync(join(s.dir, "state", "tls", "key.pem")).mode & 0o077, 0);
    const agent = startAgent(rt, s, ["--fingerprint", fp]);
    procs.push(agent);
    await agent.waitFor(/msg="connected"/);
    const localPort = await freePort(net);
    const client = burrow(rt, [
      "client",
      "--server",
      `127.0.0.1:${s.clientPort}`,
      "--name",
      "alice",
      "--token",
      ALICE_TOKEN,
      "--fingerprint",
      fp.toLowerCase().replace(/:/g, ""),
      "--listen",
      `127.0.0.1:${localPort}`,
    ]);
    procs.push(client);
    await client.waitFor(/client proxy listening/);
    await curlWorks(s, target.port, "secure hello\n", 10000, localPort);
    // A restarted server keeps its certificate: same fingerprint.
    await server.stop();
    const again = startServer(rt, s);
    procs.push(again);
    assert.equal(
      (await again.waitFor(/TLS certificate fingerprint: ([0-9A-F:]{95})/)).split(": ")[1],
      fp,
    );
    await again.waitFor(/agent connected/, 15000);
    // A wrong pin is refused and says what it expected and what it got.
    const wrongPin = "AB:".repeat(31) + "AB";
    const wrong = startAgent(rt, s, ["--fingerprint", wrongPin]);
    procs.push(wrong);
    const msg = await wrong.waitFor(/fingerprint mismatch: expected [0-9A-F:]+, got [0-9A-F:]+/);
    assert.ok(msg.includes(wrongPin) && msg.includes(fp), msg);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    target.close();
    s.cleanup();
  }
});

test(`${rt}: over TLS: a CA-signed certificate is accepted with --ca, refused without`, async () => {
  const net = await runtimeNet();
  const { generateCA, issueCert } = await import("../src/tls.ts");
  const ca = await generateCA();
  const leaf = await issueCert(ca, ["localhost", "127.0.0.1"]);
  const target = await httpTarget(net, "ca hello\n");
  const dir = mkdtempSync(join(tmpdir(), "burrow-ca-"));
  writeFileSync(join(dir, "cert.pem"), leaf.cert);
  writeFileSync(join(dir, "key.pem"), leaf.key);
  writeFileSync(join(dir, "ca.pem"), ca.cert);
  const s = await setup(net, {
    tls: { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") },
  });
  const procs: Proc[] = [startServer(rt, s)];
  try {
    await procs[0]!.waitFor(/server listening.*tls=on/);
    const good = startAgent(rt, s, ["--ca", join(dir, "ca.pem"), "--server-name", "localhost"]);
    procs.push(good);
    await good.waitFor(/msg="connected"/);
    await curlWorks(s, target.port, "ca hello\n");
    const bad = startAgent(rt, s, []);
    procs.push(bad);
    await bad.waitFor(/ETLS|certificate|TLS/i);
    assert.ok(!/msg="connected"/.test(bad.output()));
  } finally {
    for (const p of procs.reverse()) await p.stop();
    target.close();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${rt}: the server reloads its config on file change and on SIGHUP; a bad file is rejected and the old config stays`, async () => {
  const net = await runtimeNet();
  const target = await httpTarget(net, "reloaded\n");
  try {
    await withSystem(rt, rt, async (s, _net, procs) => {
      await curlWorks(s, target.port, "reloaded\n");
      const { readFileSync } = await import("node:fs");
      const original = readFileSync(s.config, "utf8");
      // Revoke alice's grant by editing the file: picked up without a signal.
      writeFileSync(s.config, JSON.stringify({ ...JSON.parse(original), grants: [] }));
      await procs.server.waitFor(/config reloaded.*grants=0/, 10000);
      const refused = await curl(s.socksPort, `http://localhost:${target.port}/`);
      assert.notEqual(refused.code, 0, "no grant, no stream");
      // A broken file is rejected; the last good config stays.
      writeFileSync(s.config, "agents: [{ name: 'bad name' }]\n");
      await procs.server.waitFor(/config reload rejected/, 10000);
      // Restore with SIGHUP (and the watcher): alice works again.
      writeFileSync(s.config, original);
      process.kill(procs.server.child.pid!, "SIGHUP");
      await procs.server.waitFor(/config reloaded.*grants=1/, 10000);
      await curlWorks(s, target.port, "reloaded\n");
      assert.equal(procs.server.child.exitCode, null, "server still running");
    });
  } finally {
    target.close();
  }
});
