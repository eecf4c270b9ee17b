/**
 * Shared pieces of the end-to-end tests: the running runtime's adapter, a
 * SOCKS5 client, targets, an in-process server + agent, and child processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Agent, type AgentOptions } from "../src/agent.ts";
import { DENO_V8 } from "../runtimes/deno/flags.ts";
import { ClientProxy } from "../src/client.ts";
import { Wire } from "../src/wire.ts";
import { tokenCredential } from "../src/auth.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { createLogger, type Logger } from "../src/log.ts";
import type { MessageOf, Target } from "../src/messages.ts";
import type { Addr, Conn, Listener, Net } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import { Server } from "../src/server/mod.ts";
import { parseMethodSelection, parseReply, parseUserpassReply } from "../src/socks5_decode.ts";
import { greeting, request, userpassRequest } from "../src/socks5_encode.ts";
import { Reader } from "../src/reader.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";
import { targetOf } from "../src/ip.ts";

export const runtime: "node" | "deno" | "bun" = "Deno" in globalThis
  ? "deno"
  : "Bun" in globalThis
  ? "bun"
  : "node";

/** The adapter of the runtime these tests run on. */
export async function runtimeNet(): Promise<Net> {
  // A computed specifier: each runtime type-checks only its own adapter.
  const mod: { net: Net } = await import(`../runtimes/${runtime}/mod.ts`);
  return mod.net;
}

/** A logger that keeps lines for assertions (and prints them when BURROW_TEST_LOG is set). */
export function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const verbose = typeof process !== "undefined" && !!process.env.BURROW_TEST_LOG;
  return {
    lines,
    log: createLogger({
      level: "debug",
      sink: (l) => {
        lines.push(l);
        if (verbose) console.error(l);
      },
    }),
  };
}

export const AGENT_TOKEN = "agent-token-0123456789";
export const ALICE_TOKEN = "alice-token-0123456789";
export const BOB_TOKEN = "bob-token-0123456789";

/** Read everything until EOF (bounded). */
export async function readAll(conn: Conn, limit = 256 * 1024 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const c = await conn.read();
    if (c === null) break;
    parts.push(c);
    n += c.length;
    if (n > limit) throw new Error(`readAll: more than ${limit} bytes`);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export interface SocksResult {
  /** RFC 1929 status (0 = ok), or null if no auth step happened. */
  auth: number | null;
  /** RFC 1928 reply code, or null if the server closed before replying. */
  reply: number | null;
  /** The reply's BND.ADDR and BND.PORT (a UDP ASSOCIATE's relay socket). */
  bound?: Target;
  conn: Conn;
  rest: Uint8Array;
}

/** Our own SOCKS5 client (the `socks` npm client is used by other tests). */
export async function socks(
  net: Net,
  proxy: Addr,
  user: string,
  pass: string,
  target: Target,
  cmd = 1,
): Promise<SocksResult> {
  const conn = await net.dial(proxy);
  const rd = new Reader(conn);
  try {
    // An empty user name means "no authentication" (method 0).
    const method = user === "" ? 0 : 2;
    await conn.write(greeting([method]));
    const m = await rd.parse(parseMethodSelection, "method selection");
    if (m.method !== method) return { auth: null, reply: null, conn, rest: rd.rest() };
    if (method === 2) {
      await conn.write(userpassRequest(user, pass));
      const a = await rd.parse(parseUserpassReply, "auth reply");
      if (a.status !== 0) return { auth: a.status, reply: null, conn, rest: rd.rest() };
    }
    await conn.write(request(cmd, target));
    const r = await rd.parse(parseReply, "reply");
    return { auth: 0, reply: r.reply, bound: r.bound, conn, rest: rd.rest() };
  } catch (e) {
    if ((e as Error).name === "EofError") {
      return { auth: null, reply: null, conn, rest: new Uint8Array(0) };
    }
    conn.close();
    throw e;
  }
}

/** A TCP echo target. `accepted` counts connections. */
export async function echoTarget(
  net: Net,
): Promise<{ listener: Listener; addr: Addr; accepted: () => number; close(): void }> {
  const listener = await net.listen({ host: "127.0.0.1", port: 0 });
  let accepted = 0;
  const conns = new Set<Conn>();
  (async () => {
    for await (const c of listener) {
      accepted++;
      conns.add(c);
      (async () => {
        try {
          for (;;) {
            const chunk = await c.read();
            if (chunk === null) break;
            await c.write(chunk);
          }
          await c.end();
        } catch {
          // peer went away
        } finally {
          c.close();
          conns.delete(c);
        }
      })();
    }
  })();
  return {
    listener,
    addr: listener.addr,
    accepted: () => accepted,
    close() {
      listener.close();
      for (const c of conns) c.close();
    },
  };
}

/** A listener that must never see a connection: proves nothing was dialed. */
export async function tripwire(
  net: Net,
): Promise<{ addr: Addr; hits: () => number; close(): void }> {
  const listener = await net.listen({ host: "127.0.0.1", port: 0 });
  let hits = 0;
  (async () => {
    for await (const c of listener) {
      hits++;
      c.close();
    }
  })();
  return { addr: listener.addr, hits: () => hits, close: () => listener.close() };
}

/**
 * An agent for tests: token AGENT_TOKEN, allow `127.0.0.1:*`, fast backoff,
 * logging into `lines`. Not started.
 */
export function testAgent(
  net: Net,
  server: Addr,
  name: string,
  opts: Partial<AgentOptions> = {},
): { agent: Agent; lines: string[] } {
  const { log, lines } = memoryLogger();
  const agent = new Agent(net, {
    server,
    name,
    credential: tokenCredential(AGENT_TOKEN),
    rules: parseRule("127.0.0.1:*"),
    backoffBaseMs: 50,
    backoffMaxMs: 200,
    ...opts,
  }, log);
  return { agent, lines };
}

/**
 * `n` in-process agents named `name` on `t`'s server (replicas, SPEC.md
 * §2.1), each with its own instance id, started and announced. The caller
 * stops them.
 */
export async function startReplicas(
  t: Tunnel,
  name: string,
  n = 2,
): Promise<Array<{ agent: Agent; lines: string[] }>> {
  const all = Array.from({ length: n }, () => testAgent(t.net, t.server.addrs.agents!, name));
  for (const a of all) a.agent.start();
  await Promise.all(all.map((a) => a.agent.connected()));
  if (!await until(() => t.server.agents.group(name).filter((s) => s.announced).length === n)) {
    await Promise.all(all.map((a) => a.agent.stop()));
    throw new Error(`${n} replicas of ${name} did not all announce`);
  }
  return all;
}

export interface Tunnel {
  /** With `tls: true`: how clients verify the server. */
  pin?: { fingerprint: string };
  net: Net;
  server: Server;
  agent: Agent;
  socks: Addr;
  logs: string[];
  close(): Promise<void>;
}

export interface TunnelOptions {
  /** Extra YAML merged as JSON into the server config. */
  config?: Record<string, unknown>;
  /** Agent allowlist rule texts. */
  allow?: string[];
  agent?: Partial<AgentOptions>;
  startAgent?: boolean;
  /** Serve the agent and client ports over TLS (a self-signed certificate the agent pins). */
  tls?: boolean;
}

/** A server and an agent in this process, on 127.0.0.1 with ephemeral ports. */
export async function tunnel(opts: TunnelOptions = {}): Promise<Tunnel> {
  const net = await runtimeNet();
  const { log, lines } = memoryLogger();
  const config = parseServerConfig(
    JSON.stringify({
      listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "127.0.0.1:0", http: "" },
      heartbeat: { interval: "200ms", timeout: "1s" },
      pool: { min: 2, max: 32, wait: "2s", idle: "600ms" },
      agents: [{ name: "office", token: AGENT_TOKEN }, { name: "lab", token: AGENT_TOKEN }],
      clients: [{ name: "alice", token: ALICE_TOKEN }, { name: "bob", token: BOB_TOKEN }],
      grants: [
        { client: "alice", agent: "office", targets: ["127.0.0.1:*", "localhost:*"] },
        { client: "bob", agents: ["office", "lab"], targets: ["127.0.0.1:1-1024"] },
      ],
      ...opts.config,
    }),
    "(test config)",
  );
  const cert = opts.tls ? await generateSelfSigned() : undefined;
  const pin = cert ? { fingerprint: await fingerprint(cert.cert) } : undefined;
  const server = new Server(net, config, log.with({ role: "server" }), cert);
  await server.start();
  const agent = new Agent(net, {
    server: server.addrs.agents!,
    ...(pin ? { tls: pin } : {}),
    name: "office",
    credential: tokenCredential(AGENT_TOKEN),
    rules: (opts.allow ?? ["127.0.0.1:*", "localhost:*"]).flatMap((r) => parseRule(r)),
    backoffBaseMs: 50,
    backoffMaxMs: 500,
    ...opts.agent,
  }, log.with({ role: "agent" }));
  if (opts.startAgent !== false) {
    agent.start();
    await agent.connected();
  }
  return {
    net,
    server,
    agent,
    socks: server.addrs.socks!,
    logs: lines,
    ...(pin ? { pin } : {}),
    async close() {
      await agent.stop();
      await server.stop();
    },
  };
}

/** Poll `cond` every 20 ms until true or `ms` passed; returns its last value. */
export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

export const repo = new URL("..", import.meta.url).pathname;

/** The command that runs burrow's CLI on `rt`. */
export function burrowCommand(rt: "node" | "deno" | "bun"): [string, string[]] {
  const bin = (n: string) => `${repo}node_modules/.bin/${n}`;
  if (rt === "deno") return [bin("deno"), ["run", "-A", DENO_V8, `${repo}runtimes/deno/main.ts`]];
  if (rt === "bun") return [bin("bun"), ["run", `${repo}runtimes/bun/main.ts`]];
  return [process.execPath.includes("node") ? process.execPath : "node", [
    "--import",
    "tsx",
    `${repo}runtimes/node/main.ts`,
  ]];
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  /** Resolves when a line of stdout/stderr matches, rejects after `ms`. */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code when the process ends by itself. */
  exited: Promise<number | null>;
}

/** Start a burrow process; every test must stop() it. */
export function burrow(
  rt: "node" | "deno" | "bun",
  args: string[],
  env: Record<string, string> = {},
): Proc {
  const [cmd, pre] = burrowCommand(rt);
  return spawnProc(cmd, [...pre, ...args], { cwd: repo, env: { ...process.env, ...env } });
}

/** Start a process in `cwd` with exactly `env`; every test must stop() it. */
export function spawnProc(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: Record<string, string | undefined> },
): Proc {
  const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const watchers: Array<() => void> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    if (process.env.BURROW_TEST_LOG) process.stderr.write(d);
    for (const w of watchers) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    child,
    exited,
    output: () => out,
    waitFor(re, ms = 20000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            clearTimeout(t);
            watchers.splice(watchers.indexOf(check), 1);
            resolve(m[0]);
          }
        };
        const t = setTimeout(() => {
          watchers.splice(watchers.indexOf(check), 1);
          reject(
            new Error(
              `timed out waiting for ${re} in output of ${cmd} ${args.join(" ")}:\n${
                out.slice(-3000)
              }`,
            ),
          );
        }, ms);
        watchers.push(check);
        check();
      });
    },
    async stop(signal = "SIGTERM") {
      // process.kill by PID: Deno's ChildProcess.kill() sends only the first signal.
      const kill = (sig: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined) process.kill(child.pid, sig);
        } catch {
          // already gone
        }
      };
      if (child.exitCode === null && child.signalCode === null) kill(signal);
      const t = setTimeout(() => kill("SIGKILL"), 5000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/**
 * The fake server's side of an agent's login on `listener`: takes HELLO and
 * AUTH without checking anything (choosing version 1), sends WELCOME and
 * waits for INSTANCE and ANNOUNCE.
 * Returns the control connection.
 */
export async function acceptAgent(
  listener: Listener,
  heartbeatTimeoutMs = 5000,
): Promise<Wire> {
  const control = new Wire((await listener.accept())!);
  await control.expect("AGENT_HELLO");
  await control.send({ type: "CHALLENGE", version: 1, nonce: new Uint8Array(32) });
  await control.expect("AUTH");
  await control.send({
    type: "WELCOME",
    agentId: 1,
    sessionId: new Uint8Array(16),
    heartbeatIntervalMs: 1000,
    heartbeatTimeoutMs,
    poolMin: 1,
    poolMax: 64,
  });
  await control.expect("INSTANCE");
  await control.expect("ANNOUNCE");
  return control;
}

/**
 * A server that lies: it logs in an agent with `rules` without checking its
 * proof, and sends OPEN for any target on a fresh pool connection. For tests
 * of the agent's own checks (it must never trust the server).
 */
export async function lyingServer(
  net: Net,
  rules: string[],
  opts: Partial<AgentOptions> = {},
): Promise<{
  /** OPEN `target` for `client` (protocol 6, or 17); resolves with the agent's OPEN_RESULT. */
  open(target: Target, client?: string, protocol?: number): Promise<MessageOf<"OPEN_RESULT">>;
  /** The pool connection of the last OPEN. */
  last(): Wire;
  agent: Agent;
  close(): Promise<void>;
}> {
  const fake = await net.listen({ host: "127.0.0.1", port: 0 });
  const agent = new Agent(net, {
    server: fake.addr,
    name: "office",
    credential: tokenCredential(AGENT_TOKEN),
    rules: rules.flatMap((r) => parseRule(r)),
    link: false, // pool connections of their own: each OPEN on a fresh one
    ...opts,
  }, memoryLogger().log);
  agent.start();
  const control = await acceptAgent(fake);
  const conns: Conn[] = [control.conn];
  let n = 0;
  let last: Wire | null = null;
  return {
    agent,
    last: () => last!,
    async open(target, client = "alice", protocol = 6) {
      const id = ++n;
      await control.send({ type: "POOL_REQUEST", requestId: id, count: 1 });
      const pool = last = new Wire((await fake.accept())!);
      conns.push(pool.conn);
      await pool.expect("POOL_HELLO");
      await pool.send({ type: "OPEN", streamId: id, clientId: 1, client, protocol, target });
      const res = await pool.expect("OPEN_RESULT");
      if (res.streamId !== id) throw new Error(`OPEN_RESULT for stream ${res.streamId}, not ${id}`);
      return res;
    },
    async close() {
      for (const c of conns) c.close();
      await agent.stop();
      fake.close();
    },
  };
}

/** A started client proxy (`burrow client`) for `name`, to the tunnel's client port. */
export async function clientProxy(
  t: Tunnel,
  name = "alice",
  token = ALICE_TOKEN,
): Promise<ClientProxy> {
  const proxy = new ClientProxy(t.net, {
    listen: { host: "127.0.0.1", port: 0 },
    server: { ...t.server.addrs.clients!, ...(t.pin ? { tls: t.pin } : {}) },
    name,
    credential: tokenCredential(token),
    agent: "office",
  }, memoryLogger().log);
  await proxy.start();
  return proxy;
}

/** A SOCKS5 CONNECT as alice (or `user`) through the tunnel's SOCKS port to 127.0.0.1:`port`. */
export function socksTo(
  t: Tunnel,
  port: number,
  user = "alice",
  token = ALICE_TOKEN,
): Promise<SocksResult> {
  return socks(t.net, t.socks, user, token, targetOf("127.0.0.1", port));
}

/** Ports handed out by {@link freePorts} in this process: never handed out twice. */
const handedOut = new Set<number>();

/**
 * `n` distinct free loopback ports, for processes that need a port on their
 * command line. All are held open together while they are picked (so two
 * never coincide), and none is handed out twice by this process.
 */
export async function freePorts(net: Net, n: number): Promise<number[]> {
  const held: Listener[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < n && tries < n * 20; tries++) {
      const l = await net.listen({ host: "127.0.0.1", port: 0 });
      held.push(l);
      if (!handedOut.has(l.addr.port)) {
        handedOut.add(l.addr.port);
        ports.push(l.addr.port);
      }
    }
  } finally {
    for (const l of held) l.close();
  }
  if (ports.length < n) throw new Error(`freePorts: found ${ports.length} of ${n}`);
  return ports;
}

/** One port of {@link freePorts}. */
export async function freePort(net: Net): Promise<number> {
  return (await freePorts(net, 1))[0]!;
}

/**
 * A TCP relay to `to` that records every byte it passes (both directions)
 * and keeps its connections in accept order: `links[i]` is the i-th
 * accepted connection and its dial, so a test can count or sever them.
 */
export async function recorder(net: Net, to: Addr) {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const chunks: Uint8Array[] = [];
  const conns = new Set<Conn>();
  const links: Array<[Conn, Conn]> = [];
  (async () => {
    for await (const a of l) {
      const b = await net.dial(to).catch(() => null);
      if (!b) {
        a.close();
        continue;
      }
      conns.add(a).add(b);
      links.push([a, b]);
      const pump = async (src: Conn, dst: Conn) => {
        try {
          for (;;) {
            const c = await src.read();
            if (c === null) break;
            chunks.push(c.slice());
            await dst.write(c);
          }
          await dst.end();
        } catch {
          src.close();
          dst.close();
        }
      };
      Promise.all([pump(a, b), pump(b, a)]).finally(
        () => (a.close(), b.close(), conns.delete(a), conns.delete(b)),
      );
    }
  })();
  return {
    addr: l.addr,
    links,
    bytes: () => {
      const n = chunks.reduce((s, c) => s + c.length, 0);
      const out = new Uint8Array(n);
      let o = 0;
      for (const c of chunks) (out.set(c, o), (o += c.length));
      return out;
    },
    close() {
      l.close();
      for (const c of conns) c.close();
    },
  };
}
