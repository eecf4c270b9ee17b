/**
 * The shared-bottleneck scenario (issue #26): every byte between the agent
 * side and the server side crosses one link of a given rate each way, with a
 * router-like queue and a delay, and one interactive stream competes with
 * bulk downloads through the same agent.
 *
 * The link: a network namespace of the benchmark's own (`burrow-bench-…`)
 * joined to the host's by a veth pair with addresses from 198.18.0.0/15 (RFC
 * 2544's benchmarking range) on the pair only; `tc qdisc … root tbf rate R
 * burst B limit L` on both ends, so each direction has one bottleneck of R
 * with a queue of L bytes (real kernel TCP meets it: pacing, drops, cwnd).
 * This kernel has no netem, so the delay comes from a userspace relay
 * (bench/delay.ts) on the host's end of the pair, in front of the server:
 * it forwards each chunk `delayMs` after it arrived, each way. The relay
 * terminates TCP, so the agent's kernel sees the bottleneck's queue but not
 * the relay's delay in its own RTT; end to end, every request still pays the
 * delay both ways.
 *
 * Who is where: the server side (burrow's server, sshd, the load generator
 * and its SOCKS5 port) on the host, on 127.0.0.1; the agent side (burrow's
 * agent, ssh -R's `ssh` client, which is ssh's SOCKS5 server, and the target)
 * in the namespace, so only the agent↔server link crosses the bottleneck.
 *
 * Per system and round: a fresh start, then the load generator's `fair`
 * mode: one interactive stream doing a 1-byte echo every 10 ms, alone
 * ("idle"), then with N download streams running ("under load"), then fresh
 * connections (connect + SOCKS5 + 1-byte echo, one after another) while the
 * load runs; the bulk streams' MiB/s over the loaded part.
 *
 * The namespace (and with it the veth pair and its qdiscs) is removed at the
 * end, on failure, and, synchronously, when the process exits (Ctrl-C too).
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { startDelayRelay } from "./delay.ts";
import { type LoadgenResult, runLoadgen, startTarget } from "./loadgen.ts";
import { sleep, stop } from "./proc.ts";
import { median } from "./stats.ts";
import type { Ctx, Running, System } from "./systems.ts";

export interface FairPlan {
  /** Bottleneck rate, bytes/s each way. */
  rate: number;
  /** One-way delay of the relay, ms. */
  delayMs: number;
  /** tbf queue (limit), bytes, each way. */
  queue: number;
  /** Bulk download streams. */
  bulk: number;
  idleSecs: number;
  /** Bulk runs this long before the echoes are timed. */
  warmSecs: number;
  /** Echoes under load are timed this long. */
  loadSecs: number;
  /** Fresh connections under load: at most this many, for at most `freshSecs`. */
  freshCount: number;
  freshSecs: number;
  intervalMs: number;
  rounds: number;
}

export const FAIR_DEFAULTS: FairPlan = {
  rate: 40 * 2 ** 20,
  delayMs: 5,
  queue: 512 * 2 ** 10,
  bulk: 8,
  idleSecs: 3,
  warmSecs: 2,
  loadSecs: 10,
  freshCount: 50,
  freshSecs: 8,
  intervalMs: 10,
  rounds: 1,
};

/** The rows: ssh -R pty, then burrow on each runtime with the link and with `--no-link`. */
export const FAIR_SYSTEMS = [
  "ssh-pty",
  "burrow-node",
  "burrow-node-nolink",
  "burrow-deno",
  "burrow-deno-nolink",
  "burrow-bun",
  "burrow-bun-nolink",
];

/** `sys` with the agent's `--no-link`: one connection per stream, from its pool. */
export function noLink(sys: System): System {
  return {
    ...sys,
    id: `${sys.id}-nolink`,
    label: `${sys.label} --no-link`,
    start: (ctx) => sys.start({ ...ctx, agentArgs: [...(ctx.agentArgs ?? []), "--no-link"] }),
  };
}

/** "40MiB/s", "512KiB", "1.5M", "65536": bytes (per second). Binary units. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]i?)?B?(?:\/s)?$/i.exec(text.trim());
  if (!m) throw new Error(`Cannot parse size: "${text}" (want e.g. 40MiB/s or 512KiB)`);
  const unit = (m[2] ?? "").slice(0, 1).toUpperCase();
  const mult = unit === "K" ? 2 ** 10 : unit === "M" ? 2 ** 20 : unit === "G" ? 2 ** 30 : 1;
  return Math.round(Number(m[1]) * mult);
}

export interface FairResult {
  id: string;
  label: string;
  errors: string[];
  runs: FairRun[];
}

/** A run's figures plus what the bottleneck dropped meanwhile. */
export type FairRun = LoadgenResult & { drops_to_agent?: number; drops_to_server?: number };

/** The namespace, veth pair and qdiscs: one per run of the scenario. */
export interface Bottleneck {
  ns: string;
  /** The host end's address (the relay listens here). */
  hostAddr: string;
  wrap: (cmd: string, args: string[]) => [string, string[]];
  /** Packets the two qdiscs dropped so far (queue full): [toward the agent, toward the server]. */
  drops(): [number, number];
  remove(): void;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 })
    .toString();
}

/** The `drops` counter of the root qdisc of `dev` (`tc -s -j`); NaN if unreadable. */
function drops(nsArgs: string[], dev: string): number {
  try {
    const out = sh("tc", [...nsArgs, "-s", "-j", "qdisc", "show", "dev", dev]);
    const q = JSON.parse(out) as Array<{ root?: boolean; drops?: number }>;
    return Number(q.find((x) => x.root)?.drops);
  } catch {
    return NaN;
  }
}

/** Create the namespace with a shaped veth pair to the host. Needs root. */
export function createBottleneck(p: FairPlan): Bottleneck {
  const tag = (process.pid % 0xffff).toString(16);
  const ns = `burrow-bench-${tag}`;
  const [a, b] = [`bbf${tag}a`, `bbf${tag}b`];
  // 198.18.0.0/15 is for benchmarks (RFC 2544); a /30 of it per run, on this pair only.
  const n = 4 * (process.pid % 16384);
  const addr = (k: number) => `198.18.${n >> 8}.${(n & 255) + k}`;
  // Only what this run created is removed (a namespace of that name may be another run's).
  let [nsMade, linkMade] = [false, false];
  const remove = () => {
    if (linkMade) {
      linkMade = false;
      try {
        sh("ip", ["link", "del", a]); // both ends and their qdiscs
      } catch {
        // gone already
      }
    }
    if (nsMade) {
      nsMade = false;
      try {
        sh("ip", ["netns", "del", ns]);
      } catch {
        // gone already
      }
    }
  };
  process.on("exit", remove);
  // tbf needs a bucket of at least one timer tick's worth of bytes at the rate.
  const burst = String(Math.max(64 * 1024, Math.ceil(p.rate / 250)));
  const tbf = ["root", "tbf", "rate", `${p.rate * 8}bit`, "burst", burst, "limit", String(p.queue)];
  try {
    sh("ip", ["netns", "add", ns]);
    nsMade = true;
    sh("ip", ["link", "add", a, "type", "veth", "peer", "name", b]);
    linkMade = true;
    sh("ip", ["link", "set", b, "netns", ns]);
    sh("ip", ["addr", "add", `${addr(1)}/30`, "dev", a]);
    sh("ip", ["link", "set", a, "up"]);
    sh("ip", ["-n", ns, "addr", "add", `${addr(2)}/30`, "dev", b]);
    sh("ip", ["-n", ns, "link", "set", b, "up"]);
    sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    sh("tc", ["qdisc", "add", "dev", a, ...tbf]);
    sh("tc", ["-n", ns, "qdisc", "add", "dev", b, ...tbf]);
  } catch (e) {
    remove();
    const err = e as Error & { stderr?: Buffer };
    throw new Error(
      `Cannot create the bottleneck's network namespace (root, ip and tc needed): ${
        err.stderr?.toString().trim() || err.message
      }`,
    );
  }
  return {
    ns,
    hostAddr: addr(1),
    wrap: (cmd, args) => ["ip", ["netns", "exec", ns, cmd, ...args]],
    drops: () => [drops([], a), drops(["-n", ns], b)],
    remove,
  };
}

/**
 * Run the scenario over `systems` (FAIR_SYSTEMS ids). `begin` starts a
 * system and waits until a stream gets through.
 */
export async function runFair(
  systems: System[],
  p: FairPlan,
  ctx: (sys: System) => Ctx,
  begin: (sys: System, c: Ctx) => Promise<Running>,
  say: (line: string) => void,
): Promise<FairResult[]> {
  if (systems.length === 0) throw new Error("the bottleneck scenario has no system to run");
  const out = systems.map((s): FairResult => ({ id: s.id, label: s.label, errors: [], runs: [] }));
  const bn = createBottleneck(p);
  try {
    const target = await startTarget(path.join(ctx(systems[0]!).dir, "target-fair.log"), bn.wrap);
    try {
      for (let round = 0; round < p.rounds; round++) {
        say(`== bottleneck round ${round + 1} of ${p.rounds} (namespace ${bn.ns})`);
        for (const [i, sys] of systems.entries()) {
          await fairOnce(sys, out[i]!, p, bn, { ...ctx(sys), target: target.addr }, begin, say);
        }
      }
    } finally {
      await stop(target.proc);
    }
  } finally {
    bn.remove();
  }
  return out;
}

async function fairOnce(
  sys: System,
  res: FairResult,
  p: FairPlan,
  bn: Bottleneck,
  base: Ctx,
  begin: (sys: System, c: Ctx) => Promise<Running>,
  say: (line: string) => void,
): Promise<void> {
  const { ctx: c, close } = throughBottleneck(base, bn, p);
  let r: Running | null = null;
  try {
    r = await begin(sys, c);
    await sleep(1000); // the pool fills to its resting size
    const secs = p.idleSecs + p.warmSecs + p.loadSecs + p.freshSecs;
    const [d0a, d0s] = bn.drops();
    const { results } = await runLoadgen(
      "fair",
      r.endpoint,
      [
        ...["--streams", String(p.bulk), "--seconds", String(p.loadSecs)],
        ...["--idle-seconds", String(p.idleSecs), "--warm-seconds", String(p.warmSecs)],
        ...["--interval-ms", String(p.intervalMs), "--count", String(p.freshCount)],
        ...["--fresh-seconds", String(p.freshSecs), "--timeout", "20"],
      ],
      secs + 60,
      path.join(c.dir, "loadgen.log"),
    );
    const [d1a, d1s] = bn.drops();
    const x: FairRun | undefined = results[0];
    if (!x) throw new Error(`no result (see ${path.join(c.dir, "loadgen.log")})`);
    x.drops_to_agent = d1a - d0a;
    x.drops_to_server = d1s - d0s;
    res.runs.push(x);
    if (x.error) res.errors.push(`${x.errors} error(s), first: ${x.error}`);
    say(
      `  ${sys.label}: echo idle p50 ${x.idle_p50_ms} ms; under load p50 ${x.load_p50_ms} p99 ${x.load_p99_ms} ms; fresh p50 ${x.fresh_p50_ms} ms (${x.fresh_count}); bulk ${x.bulk_mib_s} MiB/s; errors ${x.errors}; packets dropped toward the server ${x.drops_to_server}, toward the agent ${x.drops_to_agent}`,
    );
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    res.errors.push(msg);
    say(`  ${sys.label} FAILED: ${msg.split("\n")[0]}`);
  } finally {
    await r?.stop();
    await close();
  }
}

/**
 * `base` with the agent side in the bottleneck's namespace and a delay relay
 * in front of the server's port; `close()` stops the relays.
 */
export function throughBottleneck(
  base: Ctx,
  bn: Bottleneck,
  p: FairPlan,
): { ctx: Ctx; close(): Promise<void> } {
  const relays: Array<Awaited<ReturnType<typeof startDelayRelay>>> = [];
  const ctx: Ctx = {
    ...base,
    linkHost: bn.hostAddr,
    agentSide: bn.wrap,
    link: async (port) => {
      const r = await startDelayRelay({
        toPort: port,
        delayMs: p.delayMs,
        listenHost: bn.hostAddr,
        // Room for what is in flight over the delay, and not much more: the
        // bottleneck's queue is the tbf's, not the relay's.
        highWater: Math.max(256 * 1024, Math.ceil((p.rate * 4 * p.delayMs) / 1000)),
      });
      relays.push(r);
      return r.port;
    },
  };
  return {
    ctx,
    async close() {
      for (const x of relays) await x.close();
    },
  };
}

/** Median figures of one system over its rounds. */
export function fairSummary(r: FairResult) {
  const m = (k: string) => median(r.runs.map((x) => Number(x[k])).filter(Number.isFinite));
  return {
    idleP50: m("idle_p50_ms"),
    loadP50: m("load_p50_ms"),
    loadP90: m("load_p90_ms"),
    loadP99: m("load_p99_ms"),
    loadMax: m("load_max_ms"),
    loadCount: m("load_count"),
    freshCount: m("fresh_count"),
    drops: m("drops_to_server"),
    freshP50: m("fresh_p50_ms"),
    freshP99: m("fresh_p99_ms"),
    bulk: m("bulk_mib_s"),
    errors: r.runs.reduce((a, x) => a + (Number(x.errors) || 0), 0) +
      (r.runs.length ? 0 : r.errors.length),
  };
}

const f = (x: number | undefined, d = 1) => x === undefined ? "–" : x.toFixed(d);
const ratio = (x: number | undefined, y: number | undefined) =>
  x === undefined || y === undefined || y === 0 ? "–" : `${(x / y).toFixed(2)}×`;

/** The scenario's report in markdown: figures, then ratios against the targets. */
export function renderFair(
  p: FairPlan,
  results: FairResult[],
  meta: { date: string; commit: string; seconds: number },
): string {
  const sums = new Map(results.map((r) => [r.id, fairSummary(r)]));
  const mib = (x: number) => `${+(x / 2 ** 20).toFixed(2)} MiB`;
  const kib = (x: number) => `${+(x / 2 ** 10).toFixed(1)} KiB`;
  const lines = [
    `Bottleneck run ${meta.date.slice(0, 16).replace("T", " ")} UTC, commit ${meta.commit}, ${
      meta.seconds.toFixed(0)
    } s: ${mib(p.rate)}/s each way (tbf), queue ${
      kib(p.queue)
    } each way, ${p.delayMs} ms each way (relay); ` +
    `one interactive stream echoing 1 byte every ${p.intervalMs} ms, ${p.idleSecs} s idle, then ${p.loadSecs} s ` +
    `under ${p.bulk} bulk downloads (after ${p.warmSecs} s of them), then up to ${p.freshCount} fresh connections ` +
    `(connect + SOCKS5 + 1-byte echo) in at most ${p.freshSecs} s under the same load; ${p.rounds} round(s) (median). ` +
    `"drops": packets the queue toward the server (the bulk direction) dropped during the run.`,
    "",
    "| system | echo p50 idle ms | echo p50 under load ms | p90 | p99 | max | (echoes) | fresh connection p50 under load ms | p99 | (connections) | bulk MiB/s | drops | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    const s = sums.get(r.id)!;
    const row = [r.label, f(s.idleP50), f(s.loadP50), f(s.loadP90), f(s.loadP99), f(s.loadMax)];
    row.push(f(s.loadCount, 0), f(s.freshP50), f(s.freshP99), f(s.freshCount, 0), f(s.bulk));
    lines.push(`| ${row.join(" | ")} | ${f(s.drops, 0)} | ${s.errors} |`);
  }
  const ssh = sums.get("ssh-pty");
  lines.push(
    "",
    "**Ratios** (issue #26's targets for the link, Bun, in brackets): to `--no-link` of the same runtime, and to ssh -R (pty) through the same bottleneck",
    "",
    "| system | echo p99 under load ÷ --no-link [≤ 2×] | fresh p50 ÷ --no-link [≤ 2×] | echo p99 ÷ ssh [≤ 0.25×] | fresh p50 ÷ ssh | bulk ÷ ssh [≥ 0.95×] |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const r of results) {
    if (r.id === "ssh-pty") continue;
    const s = sums.get(r.id)!;
    const nl = r.id.endsWith("-nolink") ? undefined : sums.get(`${r.id}-nolink`);
    lines.push(
      `| ${r.label} | ${nl ? ratio(s.loadP99, nl.loadP99) : "–"} | ${
        nl ? ratio(s.freshP50, nl.freshP50) : "–"
      } | ${ratio(s.loadP99, ssh?.loadP99)} | ${ratio(s.freshP50, ssh?.freshP50)} | ${
        ratio(s.bulk, ssh?.bulk)
      } |`,
    );
  }
  const errs = results.filter((r) => r.errors.length).map((r) =>
    `${r.label}: ${r.errors.slice(0, 3).map((e) => e.split("\n")[0]).join("; ")}`
  );
  if (errs.length) lines.push("", "Errors: " + errs.join(" | "));
  return lines.join("\n") + "\n";
}
