/**
 * A stateful test of the pool (SPEC.md §2.2, §7.4) with fast-check's
 * `fc.commands`: random interleavings of streams, dropped and slow pool
 * hellos, a blocked agent port and agent reconnects, against a real server
 * and agent on 127.0.0.1. The agent reaches the server through a
 * **disturbance relay** in this file, which passes, drops, delays or cuts its
 * connections. Invariant: once the disturbance ends, the pool returns to its
 * target and every stream succeeds.
 *
 * The model is small: whether the tunnel is "calm" (no disturbance since the
 * pool was last seen back at its target) and how many disturbances there
 * were. While it is calm, every stream must succeed; while it is not,
 * failures are only counted (but every CONNECT must still be answered within
 * a bound). Streams left running behind later commands must succeed when
 * they started calm and no disturbance came before they ended. After
 * every sequence the disturbance ends (relay back to `pass`, the agent-port
 * block over), the pool must come back to its target within a bound, and a
 * burst of streams must all succeed.
 *
 *   BURROW_POOL_RUNS=50   number of sequences (default 10, about 8 s)
 *   BURROW_POOL_SEED=…    with BURROW_POOL_PATH=… (the reported `path`) and
 *   BURROW_POOL_REPLAY=…  (the reported `replayPath`) replay a reported failure
 *   BURROW_POOL_VERBOSE=1 print each sequence, how it settled and what failed meanwhile
 *   BURROW_TEST_LOG=1     print the server's and the agents' logs
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { toHex, tokenCredential } from "../src/auth.ts";
import { targetOf } from "../src/ip.ts";
import { Status, type Target } from "../src/messages.ts";
import type { Addr, Conn, Listener, Net } from "../src/net.ts";
import { deadline, sleep } from "../src/time.ts";
import { Reader } from "../src/reader.ts";
import { greeting, request, userpassRequest } from "../src/socks5_encode.ts";
import { parseMethodSelection, parseReply, parseUserpassReply } from "../src/socks5_decode.ts";
import {
  ALICE_TOKEN,
  echoTarget,
  runtime,
  runtimeNet,
  socks,
  testAgent,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

const env = (name: string): string | undefined =>
  typeof process !== "undefined" ? process.env[name] : undefined;
const RUNS = Number(env("BURROW_POOL_RUNS") ?? 10);
const SEED = env("BURROW_POOL_SEED");
const PATH = env("BURROW_POOL_PATH");
const REPLAY = env("BURROW_POOL_REPLAY");
const VERBOSE = !!env("BURROW_POOL_VERBOSE");

/** Server timings: small, so that a sequence takes a few seconds. */
const HEARTBEAT_MS = 150;
const POOL = { min: 2, max: 16, waitMs: 1500, idleMs: 600, openTimeoutMs: 800 };
const AUTH_FAILURES = 3;
const AUTH_BLOCK_MS = 800;
/** How long the pool may take to come back to its target once the disturbance ended. */
const RECOVER_MS = 6000;
/**
 * Any CONNECT gets its reply within this, disturbed or not: three attempts
 * (SPEC.md §7.4), each a pool wait and an open timeout, plus slack.
 */
const STREAM_BOUND_MS = 3 * (POOL.waitMs + POOL.openTimeoutMs) + 3000;
/** Streams of the final burst: concurrent, then one after another. */
const BURST = 10;

// ---------------------------------------------------------------------------
// The disturbance relay

type Mode = { kind: "pass" } | { kind: "drop" } | { kind: "slow"; holdMs: number };

const modeText = (m: Mode): string => m.kind === "slow" ? `slow(${m.holdMs}ms)` : m.kind;

/**
 * A TCP relay between the agent and the server's agent port. The mode in
 * force when a connection is accepted decides its fate: `pass` pipes it,
 * `drop` closes it at once (a pool hello lost on the way), `slow` holds it
 * before it is forwarded (a slow hello over a WAN). `cut()` closes every
 * connection it holds or pipes (the agent loses its control connection and
 * reconnects). A mode set for a time falls back to `pass` by itself.
 */
class Relay {
  upstream: Addr | undefined;
  mode: Mode = { kind: "pass" };
  /** When the current mode falls back to `pass` (0: it is `pass`). */
  until = 0;
  readonly stats = { accepted: 0, dropped: 0, held: 0, piped: 0, cut: 0 };
  readonly #conns = new Set<Conn>();
  #closed = false;
  #revert: ReturnType<typeof setTimeout> | undefined;
  readonly #loop: Promise<void>;

  private constructor(readonly net: Net, readonly listener: Listener) {
    this.#loop = this.#accept();
  }

  static async start(net: Net): Promise<Relay> {
    return new Relay(net, await net.listen({ host: "127.0.0.1", port: 0 }));
  }

  get addr(): Addr {
    return this.listener.addr;
  }

  /** `mode` for new connections during `forMs`, then `pass`. */
  set(mode: Mode, forMs: number): void {
    clearTimeout(this.#revert);
    this.mode = mode;
    this.until = Date.now() + forMs;
    this.#revert = setTimeout(() => this.pass(), forMs);
  }

  pass(): void {
    clearTimeout(this.#revert);
    this.#revert = undefined;
    this.mode = { kind: "pass" };
    this.until = 0;
  }

  /** Close every connection held or piped now. */
  cut(): void {
    this.stats.cut++;
    for (const c of this.#conns) c.close();
  }

  describe(): string {
    const left = this.until ? ` for ${Math.max(0, this.until - Date.now())}ms more` : "";
    const s = this.stats;
    return `relay ${modeText(this.mode)}${left}, ${this.#conns.size} conns open ` +
      `(accepted ${s.accepted}, dropped ${s.dropped}, held ${s.held}, piped ${s.piped}, cuts ${s.cut})`;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.pass();
    this.listener.close();
    this.cut();
    await this.#loop;
    await Promise.all([...this.#conns].map((c) => c.closed));
  }

  #track(c: Conn): void {
    this.#conns.add(c);
    void c.closed.then(() => this.#conns.delete(c));
  }

  async #accept(): Promise<void> {
    for (;;) {
      const c = await this.listener.accept();
      if (c === null) return;
      this.stats.accepted++;
      this.#track(c);
      void this.#serve(c, this.mode);
    }
  }

  async #serve(down: Conn, mode: Mode): Promise<void> {
    if (mode.kind === "drop") {
      this.stats.dropped++;
      return down.close();
    }
    if (mode.kind === "slow") {
      this.stats.held++;
      // Held, not read: what the agent sends waits in the socket buffers.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, mode.holdMs);
        void down.closed.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.#closed || !this.#conns.has(down) || !this.upstream) return down.close();
    let up: Conn;
    try {
      up = await this.net.dial({ ...this.upstream, timeoutMs: 2000 });
    } catch {
      return down.close();
    }
    this.#track(up);
    if (this.#closed || !this.#conns.has(down)) {
      up.close();
      return down.close();
    }
    this.stats.piped++;
    await Promise.all([pump(down, up), pump(up, down)]);
    down.close();
    up.close();
  }
}

/** Copy `from` to `to`, relaying EOF as a half-close; on failure close both. */
async function pump(from: Conn, to: Conn): Promise<void> {
  try {
    for (;;) {
      const chunk = await from.read();
      if (chunk === null) break;
      await to.write(chunk);
    }
    await to.end();
  } catch {
    from.close();
    to.close();
  }
}

// ---------------------------------------------------------------------------
// The system under test

interface Real {
  t: Tunnel;
  relay: Relay;
  echo: Awaited<ReturnType<typeof echoTarget>>;
  target: Target;
  /** When the agent port's block for 127.0.0.1 is over at the latest (0: none). */
  blockedUntil: number;
  /** What happened, for failure reports. */
  history: string[];
  behind: Behind[];
}

interface Model {
  /** No disturbance since the pool was last seen at its target. */
  calm: boolean;
  /** Disturbance commands run so far. */
  disturbances: number;
  streams: number;
  /** Streams that failed while the tunnel was disturbed (allowed). */
  disturbedFailures: number;
}

/** Streams started by {@link StreamsBehind}, checked at the end of the sequence. */
interface Behind {
  what: string;
  results: Promise<string[]>;
  /** They must all succeed: calm when they started, and no disturbance until they ended. */
  mustSucceed: Promise<boolean>;
}

async function setup(): Promise<Real> {
  const net = await runtimeNet();
  const relay = await Relay.start(net);
  let t: Tunnel | undefined;
  let echo: Real["echo"] | undefined;
  try {
    t = await tunnel({
      startAgent: false,
      agent: { server: relay.addr, dialTimeoutMs: 3000, backoffBaseMs: 50, backoffMaxMs: 400 },
      config: {
        heartbeat: { interval: `${HEARTBEAT_MS}ms`, timeout: "1s" },
        handshake_timeout: "3s",
        pool: {
          min: POOL.min,
          max: POOL.max,
          wait: `${POOL.waitMs}ms`,
          idle: `${POOL.idleMs}ms`,
          open_timeout: `${POOL.openTimeoutMs}ms`,
        },
        limits: { auth_failures_per_minute: AUTH_FAILURES, auth_block: `${AUTH_BLOCK_MS}ms` },
      },
    });
    relay.upstream = t.server.addrs.agents!;
    echo = await echoTarget(net);
    t.agent.start();
    await deadline(t.agent.connected(), 5000, "first agent session");
    const real: Real = {
      t,
      relay,
      echo,
      target: targetOf("127.0.0.1", echo.addr.port),
      blockedUntil: 0,
      history: [],
      behind: [],
    };
    if (!(await until(() => atTarget(real), RECOVER_MS))) {
      throw new Error(`the pool never reached its target at start: ${poolState(real)}`);
    }
    return real;
  } catch (e) {
    echo?.close();
    await t?.close();
    await relay.close();
    throw e;
  }
}

async function teardown(r: Real): Promise<void> {
  await r.t.close();
  await r.relay.close();
  r.echo.close();
  // Streams left behind by a failed sequence end with the server (and are bounded anyway).
  await Promise.all(r.behind.map((b) => b.results));
}

/** `burrow_pool_idle{agent="office"}` from /metrics; -1 when the agent has no session. */
function idleMetric(r: Real): number {
  const m = /burrow_pool_idle\{agent="office"\} (\d+)/.exec(r.t.server.metrics.render());
  return m ? Number(m[1]) : -1;
}

/** The server's live session of "office", if it is the agent's current one. */
function currentSession(r: Real) {
  const s = r.t.server.agents.sessions.get("office");
  const mine = r.t.agent.session;
  return s && mine && s.key === toHex(mine.sessionId) ? s : undefined;
}

/** The invariant's first half: the agent is connected and the pool is at least at its target. */
/** At rest: at least the target idle (with a link, within the grant step of it). */
function atTarget(r: Real): boolean {
  const s = currentSession(r);
  return s !== undefined && idleMetric(r) >= s.floor;
}

function poolState(r: Real): string {
  const s = r.t.server.agents.sessions.get("office");
  const a = r.t.agent;
  const parts = [
    `agent ${
      a.session ? "connected" : "disconnected"
    } (sessions ${a.sessions}, pool conns ${a.poolSize})`,
    s
      ? `server session ${s.key.slice(0, 8)}${currentSession(r) ? "" : " (not the agent's)"}: ` +
        `idle ${s.idle}, target ${s.target} (floor ${s.floor}), outstanding ${s.outstanding}, waiting ${s.waiting}`
      : "no server session",
    `metric idle ${idleMetric(r)}`,
    r.relay.describe(),
  ];
  const blocked = r.blockedUntil - Date.now();
  if (blocked > 0) parts.push(`agent port blocked ${blocked}ms more`);
  return parts.join("; ");
}

/** A readable failure: what happened, the pool's state and the last log lines. */
function report(r: Real, what: string): Error {
  const tail = r.t.logs.slice(-40).map((l) => `    ${l}`).join("\n");
  return new Error(
    `${what}\n  pool: ${poolState(r)}\n  commands run: ${r.history.join(", ") || "(none)"}\n` +
      `  last log lines:\n${tail}`,
  );
}

/** One SOCKS5 stream that echoes a few bytes: "ok", or what went wrong. */
async function stream(r: Real, i: number): Promise<string> {
  let conn: Conn | undefined;
  const work = (async () => {
    const s = await socks(r.t.net, r.t.socks, "alice", ALICE_TOKEN, r.target);
    conn = s.conn;
    if (s.reply !== Status.succeeded) {
      return s.reply === null
        ? "closed without reply"
        : `reply 0x${s.reply.toString(16).padStart(2, "0")}`;
    }
    const sent = new TextEncoder().encode(`stream ${i} ${"x".repeat(i % 7)}`);
    await s.conn.write(sent);
    let got = s.rest;
    while (got.length < sent.length) {
      const chunk = await s.conn.read();
      if (chunk === null) return `echo ended after ${got.length} of ${sent.length} bytes`;
      const next = new Uint8Array(got.length + chunk.length);
      next.set(got);
      next.set(chunk, got.length);
      got = next;
    }
    return new TextDecoder().decode(got) === new TextDecoder().decode(sent) ? "ok" : "echo differs";
  })();
  try {
    return await deadline(work, STREAM_BOUND_MS, "stream", () => conn?.close());
  } catch (e) {
    return `error: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    conn?.close();
    // Let the work settle (it ends once its connection is closed).
    await work.catch(() => {});
  }
}

/**
 * A client that authenticates, then holds its handshake `holdMs` (expected
 * demand, SPEC.md §7.4) before it either sends its CONNECT and echoes a few
 * bytes (`connect`) or closes: "ok", or what went wrong.
 */
async function authThen(r: Real, holdMs: number, connect: boolean, i: number): Promise<string> {
  let conn: Conn | undefined;
  const work = (async () => {
    conn = await r.t.net.dial(r.t.socks);
    const rd = new Reader(conn);
    await conn.write(greeting([2]));
    if ((await rd.parse(parseMethodSelection, "method")).method !== 2) return "no user/password";
    await conn.write(userpassRequest("alice", ALICE_TOKEN));
    if ((await rd.parse(parseUserpassReply, "auth")).status !== 0) return "auth refused";
    await sleep(holdMs);
    if (!connect) return "ok";
    await conn.write(request(1, r.target));
    const reply = (await rd.parse(parseReply, "reply")).reply;
    if (reply !== Status.succeeded) return `reply 0x${reply.toString(16).padStart(2, "0")}`;
    const sent = new TextEncoder().encode(`held ${i}`);
    await conn.write(sent);
    let got = rd.rest();
    while (got.length < sent.length) {
      const chunk = await conn.read();
      if (chunk === null) return `echo ended after ${got.length} of ${sent.length} bytes`;
      got = new Uint8Array([...got, ...chunk]);
    }
    return new TextDecoder().decode(got) === `held ${i}` ? "ok" : "echo differs";
  })();
  try {
    return await deadline(work, STREAM_BOUND_MS + holdMs, "stream", () => conn?.close());
  } catch (e) {
    return `error: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    conn?.close();
    await work.catch(() => {});
  }
}

function tally(results: string[]): string {
  const counts = new Map<string, number>();
  for (const x of results) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n}× ${k}`).join(", ");
}

/** A CONNECT must be answered within STREAM_BOUND_MS, disturbed or not. */
function checkAnswered(r: Real, results: string[], when: string): void {
  if (results.some((x) => x.startsWith("error: stream timed out"))) {
    throw report(
      r,
      `${when}: a stream got no answer within ${STREAM_BOUND_MS} ms: ${tally(results)}`,
    );
  }
}

/**
 * End the disturbance: relay back to `pass`, the agent-port block over; then
 * the pool must return to its target (bounded).
 */
async function settle(r: Real, when: string): Promise<void> {
  r.relay.pass();
  const blocked = r.blockedUntil - Date.now();
  if (blocked > 0) await sleep(blocked);
  const t0 = Date.now();
  if (!(await until(() => atTarget(r), RECOVER_MS))) {
    throw report(r, `${when}: the pool did not return to its target within ${RECOVER_MS} ms`);
  }
  r.history.push(`(settled in ${Date.now() - t0}ms)`);
}

// ---------------------------------------------------------------------------
// Commands

type PoolCommand = fc.AsyncCommand<Model, Real>;

function disturb(m: Model): void {
  m.calm = false;
  m.disturbances++;
}

function streams(m: Model, r: Real, n: number): Promise<string[]> {
  const first = m.streams;
  m.streams += n;
  return Promise.all(Array.from({ length: n }, (_, i) => stream(r, first + i)));
}

/** Check streams' results: all answered in time; all succeeded when `mustSucceed`. */
function judge(m: Model, r: Real, what: string, results: string[], mustSucceed: boolean): void {
  checkAnswered(r, results, what);
  const failed = results.filter((x) => x !== "ok").length;
  if (mustSucceed && failed > 0) throw report(r, `${what} while calm: ${tally(results)}`);
  m.disturbedFailures += failed;
  if (failed) r.history.push(`(${what}: ${tally(results)})`);
}

class Streams implements PoolCommand {
  constructor(readonly n: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    const calm = m.calm;
    judge(m, r, this.toString(), await streams(m, r, this.n), calm);
  }
  toString = (): string => `Streams(${this.n})`;
}

/** Streams started now and left running under the commands that follow; judged at the end. */
class StreamsBehind implements PoolCommand {
  constructor(readonly n: number) {}
  check = (): boolean => true;
  run(m: Model, r: Real): Promise<void> {
    const what = `${this}#${r.history.length}`;
    r.history.push(what);
    const calm = m.calm;
    const at = m.disturbances;
    const results = streams(m, r, this.n);
    r.behind.push({
      what,
      results,
      mustSucceed: results.then(() => calm && m.disturbances === at),
    });
    return Promise.resolve();
  }
  toString = (): string => `StreamsBehind(${this.n})`;
}

/** Clients that authenticate and wait before their CONNECT (odd ones) or before closing (even ones). */
class AuthOnly implements PoolCommand {
  constructor(readonly n: number, readonly holdMs: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    const calm = m.calm;
    const first = m.streams;
    m.streams += this.n;
    const results = await Promise.all(
      Array.from({ length: this.n }, (_, i) => authThen(r, this.holdMs, i % 2 === 1, first + i)),
    );
    judge(m, r, this.toString(), results, calm);
  }
  toString = (): string => `AuthOnly(${this.n}, ${this.holdMs}ms)`;
}

class DropHellos implements PoolCommand {
  constructor(readonly ms: number) {}
  check = (): boolean => true;
  run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    r.relay.set({ kind: "drop" }, this.ms);
    disturb(m);
    return Promise.resolve();
  }
  toString = (): string => `DropHellos(${this.ms}ms)`;
}

class SlowHellos implements PoolCommand {
  constructor(readonly holdMs: number, readonly forMs: number) {}
  check = (): boolean => true;
  run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    r.relay.set({ kind: "slow", holdMs: this.holdMs }, this.forMs);
    disturb(m);
    return Promise.resolve();
  }
  toString = (): string => `SlowHellos(hold ${this.holdMs}ms, for ${this.forMs}ms)`;
}

/** Bad agent logins from 127.0.0.1, straight to the server, until the agent port blocks that address. */
class BlockAgentPort implements PoolCommand {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    disturb(m);
    const blocks = () =>
      r.t.logs.filter((l) => /limit=auth_failures port=agents .*blocked_ms=/.test(l)).length;
    const before = blocks();
    const bad = testAgent(r.t.net, r.t.server.addrs.agents!, "lab", {
      credential: tokenCredential("wrong-token-123"),
    });
    bad.agent.start();
    try {
      // While an earlier block lasts, its logins are refused uncounted; the next block follows it.
      if (!(await until(() => blocks() > before, AUTH_BLOCK_MS + 4000))) {
        throw report(r, `${this}: the agent port did not block 127.0.0.1`);
      }
      r.blockedUntil = Date.now() + AUTH_BLOCK_MS;
    } finally {
      await bad.agent.stop();
    }
  }
  toString = (): string => "BlockAgentPort()";
}

/** Cut every relayed connection: the agent loses its control connection and reconnects. */
class Reconnect implements PoolCommand {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    disturb(m);
    const old = r.t.agent.session;
    const oldKey = r.t.server.agents.sessions.get("office")?.key;
    r.relay.cut();
    // Both ends notice at once (the relay closed both sockets); bounded anyway.
    const noticed = await until(
      () =>
        (old === undefined || r.t.agent.session !== old) &&
        (oldKey === undefined || r.t.server.agents.sessions.get("office")?.key !== oldKey),
      2000,
    );
    if (!noticed) throw report(r, `${this}: the cut session lives on`);
  }
  toString = (): string => "Reconnect()";
}

class Wait implements PoolCommand {
  constructor(readonly ms: number) {}
  check = (): boolean => true;
  async run(_m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    await sleep(this.ms);
  }
  toString = (): string => `Wait(${this.ms}ms)`;
}

/** End the disturbance mid-sequence and check the invariant's first half. */
class Settle implements PoolCommand {
  check = (m: Readonly<Model>): boolean => !m.calm;
  async run(m: Model, r: Real): Promise<void> {
    r.history.push(this.toString());
    await settle(r, this.toString());
    m.calm = true;
  }
  toString = (): string => "Settle()";
}

const commands = fc.commands(
  [
    fc.integer({ min: 1, max: 8 }).map((n) => new Streams(n)),
    fc.integer({ min: 1, max: 8 }).map((n) => new StreamsBehind(n)),
    fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 800 }))
      .map(([n, ms]) => new AuthOnly(n, ms)),
    fc.integer({ min: 100, max: 1500 }).map((ms) => new DropHellos(ms)),
    fc.tuple(fc.integer({ min: 50, max: 1500 }), fc.integer({ min: 100, max: 1500 }))
      .map(([hold, ms]) => new SlowHellos(hold, ms)),
    fc.constant(null).map(() => new BlockAgentPort()),
    fc.constant(null).map(() => new Reconnect()),
    fc.integer({ min: 50, max: 1000 }).map((ms) => new Wait(ms)),
    fc.constant(null).map(() => new Settle()),
  ],
  { maxCommands: 6, size: "max", ...(REPLAY ? { replayPath: REPLAY } : {}) },
);

/** The end of a sequence: the disturbance ends, the pool is back at its target, a burst all succeeds. */
async function finalCheck(m: Model, r: Real): Promise<void> {
  for (const b of r.behind) judge(m, r, b.what, await b.results, await b.mustSucceed);
  await settle(r, "after the sequence");
  const concurrent = await streams(m, r, BURST);
  if (concurrent.some((x) => x !== "ok")) {
    throw report(r, `after the sequence, ${BURST} concurrent streams: ${tally(concurrent)}`);
  }
  for (let i = 0; i < BURST; i++) {
    const [x] = await streams(m, r, 1);
    if (x !== "ok") {
      throw report(r, `after the sequence, sequential stream ${i + 1} of ${BURST}: ${x}`);
    }
  }
}

test(`${rt}: the pool returns to its target and every stream succeeds once a disturbance ends (fc.commands, ${RUNS} runs)`, async () => {
  let runs = 0;
  const t0 = Date.now();
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      runs++;
      const real = await setup();
      try {
        const model: Model = { calm: true, disturbances: 0, streams: 0, disturbedFailures: 0 };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        await finalCheck(model, real);
        const story = real.history.join(", ");
        if (VERBOSE) {
          console.log(`run ${runs}: ${story}; ${model.disturbedFailures} disturbed failures`);
        }
      } finally {
        await teardown(real);
      }
    }),
    {
      numRuns: RUNS,
      // A failure is shrunk, but not for ever: each run takes seconds.
      interruptAfterTimeLimit: RUNS * 15_000 + 120_000,
      markInterruptAsFailure: true,
      ...(SEED ? { seed: Number(SEED) } : {}),
      ...(PATH ? { path: PATH } : {}),
    },
  );
  assert.ok(runs >= RUNS);
  if (env("BURROW_TEST_LOG") || RUNS > 10) {
    console.log(`pool model: ${runs} runs in ${((Date.now() - t0) / 1000).toFixed(1)} s on ${rt}`);
  }
});
