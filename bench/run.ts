/**
 * `npm run bench` — burrow against its peers, side by side, one load
 * generator (bench/loadgen.c) and one target (bench/target.c).
 *
 *   npm run bench                 full run (3 rounds, median), under ten minutes, then paired
 *                                 connections/s (~4 min) and WAN (~6 min)
 *   npm run bench -- --quick      about a minute: 1 round, shorter scenarios, 1000 idle streams only
 *   npm run bench -- --no-tls     leave out burrow over TLS (included when the CLI has TLS;
 *                                 --tls insists on it)
 *   npm run bench -- --only direct,burrow-node     some systems only
 *   npm run bench -- --repeats 5  more rounds
 *   npm run bench -- --burrow-pool 16,64 --burrow-log-level warn   burrow settings to compare
 *   npm run bench -- --render bench/results/latest.json   only rewrite latest.md (and README) from a JSON
 *   npm run bench -- --wan-only   only the WAN scenario (bench/wan.ts): a delay relay on the
 *                                 agent↔server link, warm connects and bursts of 16/64/256
 *   npm run bench -- --no-wan     leave the WAN scenario out of a full run (--wan: put it in --quick)
 *   npm run bench -- --delay-ms 20 --wan-rounds 2 --bursts 16,64,256   WAN settings
 *   npm run bench -- --paired-only    only connections/s paired with ssh -R pty (bench/paired.ts):
 *                                 each plain burrow row and ssh running at once, alternating
 *                                 slices; a full run includes it (--no-paired: leave it out)
 *   npm run bench -- --pairs N    pairs of slices per row (default 16)
 *   npm run bench -- --fair-only  only the shared-bottleneck scenario (bench/fair.ts, issue #26):
 *                                 agent↔server through one tbf-shaped link in a network
 *                                 namespace; echo latency idle and under bulk load, fresh
 *                                 connections under load, bulk MiB/s (root; not in a full run)
 *   npm run bench -- --fair-only --rate 40MiB/s --delay-ms 5 --queue 512KiB --bulk 8 --fair-seconds 5 --fair-rounds 1
 *                                 then, through the same bottleneck, a limited neighbour
 *                                 (bench/fair_limit.ts): a client downloading next to one with
 *                                 `bandwidth: {down: --limit-rate}` (default 4MiB/s) against
 *                                 alone; --no-fair-limit leaves it out
 *   npm run bench -- --udp-only   only UDP (bench/udp.ts, issue #28): DNS queries/s and p50/p99
 *                                 direct to dnsmasq, through `burrow client --dns` and SOCKS5
 *                                 UDP; UDP echo throughput (--udp-seconds 5 --udp-concurrency 16)
 *
 * Writes bench/results/latest.json and latest.md; a full run of all systems
 * with the default burrow settings also updates the "Latest results" section of bench/README.md
 * (--no-readme: don't). Everything binds and connects to 127.0.0.1 only;
 * every process started is stopped by PID at the end, on Ctrl-C and on failure.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { build, hold, type LoadgenResult, runLoadgen, startTarget, waitReady } from "./loadgen.ts";
import {
  cpuSeconds,
  killAllSync,
  machineBusySeconds,
  memory,
  type MemSample,
  selfAndReapedSeconds,
  sleep,
  stop,
  stopAll,
} from "./proc.ts";
import { renderMarkdown, updateReadme } from "./report.ts";
import { median } from "./stats.ts";
import { renderWan, runWan, WAN_SYSTEMS, type WanPlan } from "./wan.ts";
import { LIMIT_DEFAULTS, type LimitPlan, renderFairLimit, runFairLimit } from "./fair_limit.ts";
import { type PairedPlan, type PairedResult, renderPaired, runPaired } from "./paired.ts";
import {
  FAIR_DEFAULTS,
  FAIR_SYSTEMS,
  type FairPlan,
  noLink,
  parseSize,
  renderFair,
  runFair,
} from "./fair.ts";
import { renderUdp, runUdp, UDP_DEFAULTS, type UdpPlan } from "./udp.ts";
import {
  allSystems,
  BURROW_LIMITS,
  BURROW_POOL,
  cliHasTls,
  type Ctx,
  type Running,
  type System,
} from "./systems.ts";

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, "..");

// ------------------------------------------------------------------ options

interface Options {
  quick: boolean;
  /** TLS rows: "auto" = when this checkout's CLI has TLS. */
  tls: "auto" | "on" | "off";
  only: string[] | null;
  repeats: number;
  readme: boolean;
  burrowLogLevel: string;
  burrowPool: { min: number; max: number };
  /** Only render the report again from this JSON (a latest.json). */
  render: string | null;
  /** The WAN scenario: "auto" = in full runs, not in --quick. */
  wan: "auto" | "on" | "off" | "only";
  /** One-way delay: WAN's (default 20) or the bottleneck's (default 5). */
  delayMs: number | undefined;
  wanRounds: number;
  bursts: number[];
  /** Connections/s paired with ssh -R pty: "auto" = in full runs. */
  paired: "auto" | "off" | "only";
  pairs: number;
  /** Only the shared-bottleneck scenario (bench/fair.ts), with its settings. */
  fairOnly: boolean;
  fair: FairPlan;
  /** The limited-neighbour scenario after the bottleneck's (bench/fair_limit.ts); null: off. */
  fairLimit: LimitPlan | null;
  /** Only the UDP scenario (bench/udp.ts), with its settings. */
  udpOnly: boolean;
  udp: UdpPlan;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    tls: "auto",
    only: null,
    repeats: 0,
    readme: true,
    burrowLogLevel: "info",
    burrowPool: { ...BURROW_POOL },
    render: null,
    wan: "auto",
    delayMs: undefined,
    wanRounds: 0,
    bursts: [16, 64, 256],
    paired: "auto",
    pairs: 16,
    fairOnly: false,
    fair: { ...FAIR_DEFAULTS },
    fairLimit: { ...LIMIT_DEFAULTS },
    udpOnly: false,
    udp: { ...UDP_DEFAULTS },
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--tls") o.tls = "on";
    else if (a === "--no-tls") o.tls = "off";
    else if (a === "--only") o.only = val().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a === "--repeats") o.repeats = Number(val());
    else if (a === "--no-readme") o.readme = false;
    else if (a === "--render") o.render = val();
    else if (a === "--burrow-log-level") o.burrowLogLevel = val();
    else if (a === "--wan-only") o.wan = "only";
    else if (a === "--wan") o.wan = "on";
    else if (a === "--no-wan") o.wan = "off";
    else if (a === "--paired-only") o.paired = "only";
    else if (a === "--no-paired") o.paired = "off";
    else if (a === "--fair-only") o.fairOnly = true;
    else if (a === "--udp-only") o.udpOnly = true;
    else if (a === "--udp-seconds") o.udp.seconds = Number(val());
    else if (a === "--udp-concurrency") o.udp.concurrency = Number(val());
    else if (a === "--rate") o.fair.rate = parseSize(val());
    else if (a === "--queue") o.fair.queue = parseSize(val());
    else if (a === "--bulk") o.fair.bulk = Number(val());
    else if (a === "--fair-seconds") o.fair.loadSecs = Number(val());
    else if (a === "--fair-rounds") o.fair.rounds = Number(val());
    else if (a === "--no-fair-limit") o.fairLimit = null;
    else if (a === "--limit-rate") o.fairLimit = { ...LIMIT_DEFAULTS, limit: parseSize(val()) };
    else if (a === "--pairs") {
      o.pairs = Number(val());
      if (!Number.isInteger(o.pairs) || o.pairs < 1 || o.pairs > 100) {
        throw new Error("--pairs wants 1..100");
      }
    } else if (a === "--delay-ms") o.delayMs = Number(val());
    else if (a === "--wan-rounds") o.wanRounds = Number(val());
    else if (a === "--bursts") {
      o.bursts = val().split(",").map(Number);
      if (o.bursts.some((n) => !Number.isInteger(n) || n < 1 || n > 1000)) {
        throw new Error("--bursts wants sizes 1..1000, e.g. 16,64,256");
      }
    } else if (a === "--burrow-pool") {
      const [min, max] = val().split(",").map(Number);
      if (!Number.isInteger(min) || !Number.isInteger(max)) {
        throw new Error("--burrow-pool wants MIN,MAX");
      }
      o.burrowPool = { min: min!, max: max! };
    } else if (a === "-h" || a === "--help") {
      console.log(
        fs.readFileSync(new URL(import.meta.url), "utf8").split("*/")[0]!.replace(
          /^\/\*\*?|^ \* ?/gm,
          "",
        ),
      );
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  return o;
}

/** Scenario sizes: full and quick. */
function plan(o: Options) {
  return o.quick
    ? {
      repeats: o.repeats || 1,
      secs: 0.5,
      latCount: 100,
      latWarmup: 10,
      rateSecs: 1,
      rateWarmSecs: 0.5,
      rateWorkers: 32,
      parStreams: 16,
      stages: [1000],
      settleMs: 500,
      shareInstance: true,
    }
    : {
      repeats: o.repeats || 3,
      secs: 1.5,
      latCount: 500,
      latWarmup: 20,
      rateSecs: 5,
      rateWarmSecs: 2,
      rateWorkers: 32,
      parStreams: 16,
      stages: [1000, 5000],
      settleMs: 1000,
      shareInstance: false,
    };
}
export type Plan = ReturnType<typeof plan>;

// ------------------------------------------------------------------ results

export const SCENARIOS = ["up", "down", "par", "lat", "rate"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface StageResult {
  streams: number;
  open: number;
  errors: number;
  openSeconds: number;
  mem: MemSample;
  extra: Record<string, number>;
  perStreamRssKiB: number;
  perStreamPssKiB: number;
}

export interface SystemResult {
  id: string;
  label: string;
  info: Record<string, string>;
  errors: string[];
  runs: Record<Scenario, LoadgenResult[]>;
  /** CPU of the system's processes during each run, percent of one core. */
  cpu: Record<Scenario, number[]>;
  /**
   * CPU used meanwhile by everything else on the machine (not the system,
   * the load generator or the target), percent of one core: a disturbance.
   */
  other: Record<Scenario, number[]>;
  median: {
    up?: number | undefined;
    down?: number | undefined;
    par?: number | undefined;
    p50?: number | undefined;
    p99?: number | undefined;
    rate?: number | undefined;
    /** Errors over all repeats of the scenario. */
    rateErrors?: number;
    latErrors?: number;
    tputErrors?: number;
    loadgenCpu?: Record<string, number>;
    sysCpu?: Record<string, number>;
    otherCpu?: Record<string, number>;
    /** The largest "others" of any run: how disturbed the worst run was. */
    otherCpuMax?: number;
  };
  memory?: { idle: MemSample; idleExtra: Record<string, number>; stages: StageResult[] };
}

// --------------------------------------------------------------- scenarios

function say(line: string): void {
  process.stdout.write(line + "\n");
}

let runSeq = 0;
function freshDir(base: string, id: string): string {
  const d = path.join(base, `${id}-${++runSeq}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

async function startSystem(sys: System, ctx: Ctx): Promise<Running> {
  const r = await sys.start(ctx);
  const loadLog = path.join(ctx.dir, "loadgen.log");
  if (!(await waitReady(r.endpoint, 30, loadLog))) {
    const logs = r.logs.map((l) =>
      `--- ${path.basename(l)}\n${
        fs.existsSync(l) ? fs.readFileSync(l, "utf8").split("\n").slice(-10).join("\n") : ""
      }`
    ).join("\n");
    await r.stop();
    throw new Error(
      `${sys.id}: no stream got through within 30 s\n${logs}\n--- loadgen\n${
        fs.readFileSync(loadLog, "utf8").split("\n").slice(-5).join("\n")
      }`,
    );
  }
  return r;
}

async function memoryScenario(r: Running, ctx: Ctx, p: Plan, res: SystemResult): Promise<void> {
  await sleep(p.settleMs);
  const idle = memory(r.roots);
  const idleExtra = (await r.sample?.()) ?? {};
  const stages: StageResult[] = [];
  const logFile = path.join(ctx.dir, "hold.log");
  const maxSeconds = p.stages.length > 1 ? 150 : 60;
  await hold(r.endpoint, p.stages, 64, maxSeconds, logFile, async (h) => {
    await sleep(p.settleMs);
    const mem = memory(r.roots);
    const extra = (await r.sample?.()) ?? {};
    const n = Number(h.stage);
    const st: StageResult = {
      streams: n,
      open: Number(h.open),
      errors: Number(h.errors),
      openSeconds: Number(h.seconds),
      mem,
      extra,
      perStreamRssKiB: (mem.rssKiB - idle.rssKiB) / n,
      perStreamPssKiB: (mem.pssKiB - idle.pssKiB) / n,
    };
    stages.push(st);
    say(
      `  memory ${n} idle streams: open ${st.open}, errors ${st.errors} (${
        st.openSeconds.toFixed(1)
      } s), ` +
        `RSS ${(mem.rssKiB / 1024).toFixed(1)} MiB (idle ${(idle.rssKiB / 1024).toFixed(1)}), ` +
        `${st.perStreamRssKiB.toFixed(1)} KiB/stream RSS, ${
          st.perStreamPssKiB.toFixed(1)
        } PSS, ${mem.procs} procs` +
        (Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : ""),
    );
    if (h.error) res.errors.push(`memory ${n}: ${h.error}`);
  });
  res.memory = { idle, idleExtra, stages };
}

/** A latency run slower than this is not repeated. */
const LAT_REPEAT_LIMIT_S = 15;

/** One round of scenarios a–e on a running system. */
async function perfRound(
  r: Running,
  ctx: Ctx,
  p: Plan,
  res: SystemResult,
  targetPid: number,
  round: number,
): Promise<void> {
  Object.assign(res.info, r.info);
  const logFile = path.join(ctx.dir, "loadgen.log");
  const scenarioArgs: Record<Scenario, [string, string[], number]> = {
    up: ["up", ["--seconds", String(p.secs)], p.secs + 30],
    down: ["down", ["--seconds", String(p.secs)], p.secs + 30],
    par: ["par", ["--seconds", String(p.secs), "--streams", String(p.parStreams)], p.secs + 40],
    // bounded: 120 s even for a system that needs ~44 ms a connection
    lat: ["lat", ["--count", String(p.latCount), "--warmup", String(p.latWarmup)], 120],
    rate: [
      "rate",
      [
        "--seconds",
        String(p.rateSecs),
        "--warm-seconds",
        String(p.rateWarmSecs),
        "--workers",
        String(p.rateWorkers),
      ],
      p.rateWarmSecs + p.rateSecs + 40,
    ],
  };
  const line: string[] = [];
  for (const sc of SCENARIOS) {
    const [mode, args, maxS] = scenarioArgs[sc];
    if (sc === "lat" && res.info.lat_repeats) continue;
    const c0 = cpuSeconds(r.roots),
      tc0 = cpuSeconds([targetPid]),
      m0 = machineBusySeconds(),
      s0 = selfAndReapedSeconds();
    const t0 = performance.now();
    const { results } = await runLoadgen(mode, r.endpoint, args, maxS, logFile);
    const wall = (performance.now() - t0) / 1000;
    const sysCpu = cpuSeconds(r.roots) - c0;
    const out = results[0];
    if (!out) {
      res.errors.push(`${sc}: no result (see ${logFile})`);
      continue;
    }
    // the rest of the machine: all busy time minus the system, the target, us and the (reaped) load generator
    const other = machineBusySeconds() - m0 - sysCpu - (cpuSeconds([targetPid]) - tc0) -
      (selfAndReapedSeconds() - s0);
    res.other[sc].push(Math.max(0, (100 * other) / wall));
    res.runs[sc].push(out);
    res.cpu[sc].push(r.roots.length ? (100 * sysCpu) / wall : NaN);
    if (sc === "lat" && wall > LAT_REPEAT_LIMIT_S) {
      // ~40 ms a connection (Nagle + delayed ACK): stable, and repeating costs the time budget
      res.info.lat_repeats = `1 (one run of ${p.latCount} took ${wall.toFixed(0)} s)`;
    }
    if (out.error) res.errors.push(`${sc}: ${out.errors} error(s), first: ${out.error}`);
    line.push(
      sc === "lat"
        ? `p50 ${out.p50_ms} ms p99 ${out.p99_ms} ms`
        : sc === "rate"
        ? `${out.conn_s} conn/s err ${out.errors}`
        : `${sc} ${out.mib_s ?? "-"} MiB/s`,
    );
  }
  say(`  ${res.label} #${round + 1}: ${line.join(", ")}`);
}

/** Medians over the rounds, error sums. */
function summarize(res: SystemResult): void {
  const num = (sc: Scenario, k: string) => res.runs[sc].map((x) => Number(x[k]));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const ok = (sc: Scenario) => res.runs[sc].filter((x) => Number(x.errors) === 0);
  res.median = {
    up: median(ok("up").map((x) => Number(x.mib_s))),
    down: median(ok("down").map((x) => Number(x.mib_s))),
    par: median(ok("par").map((x) => Number(x.mib_s))),
    p50: median(num("lat", "p50_ms")),
    p99: median(num("lat", "p99_ms")),
    rate: median(num("rate", "conn_s")),
    rateErrors: sum(num("rate", "errors")),
    latErrors: sum(num("lat", "errors")),
    tputErrors: sum([...num("up", "errors"), ...num("down", "errors"), ...num("par", "errors")]),
    loadgenCpu: Object.fromEntries(
      SCENARIOS.map((sc) => [sc, median(num(sc, "loadgen_cpu_pct")) ?? NaN]),
    ),
    sysCpu: Object.fromEntries(SCENARIOS.map((sc) => [sc, median(res.cpu[sc]) ?? NaN])),
    otherCpu: Object.fromEntries(SCENARIOS.map((sc) => [sc, median(res.other[sc]) ?? NaN])),
    otherCpuMax: Math.max(0, ...SCENARIOS.flatMap((sc) => res.other[sc])),
  };
}

// ------------------------------------------------------------------ tools

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Install what the benchmark needs from Debian when missing (root). */
function ensureTools(): void {
  const need: string[] = [];
  const want: Array<[string, string]> = [
    ["socat", "socat"],
    ["microsocks", "microsocks"],
    ["/usr/sbin/sshd", "openssh-server"],
    ["ssh", "openssh-client"],
    ["ssh-keygen", "openssh-client"],
    ["gcc", "gcc"],
    ["tc", "iproute2"], // the shared bottleneck (bench/fair.ts): ip netns, tc tbf
  ];
  for (const [cmd, pkg] of want) if (!have(cmd) && !need.includes(pkg)) need.push(pkg);
  if (need.length === 0) return;
  say(`installing ${need.join(" ")} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...need], {
    stdio: "inherit",
    env,
  });
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "?";
}

function machineFacts() {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8");
  const bin = (n: string) => path.join(root, "node_modules", ".bin", n);
  const dpkg = (pkg: string) => firstLine("dpkg-query", ["-W", "-f", "${Version}", pkg]);
  let commit = "?";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" })
      .trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "runtimes"], {
      cwd: root,
      encoding: "utf8",
    }).trim();
    if (dirty) commit += " + uncommitted changes in src/ or runtimes/";
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    commit,
    cores: os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "?",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    fdLimit: firstLine("sh", ["-c", "ulimit -n"]),
    versions: {
      node: process.versions.node,
      deno: firstLine(bin("deno"), ["--version"]).replace(/^deno /, "").split(" ")[0]!,
      bun: firstLine(bin("bun"), ["--version"]),
      socat: dpkg("socat"),
      microsocks: dpkg("microsocks"),
      openssh: firstLine("ssh", ["-V"]),
      gcc: firstLine("gcc", ["--version"]),
    },
  };
}
export type Facts = ReturnType<typeof machineFacts>;

// ------------------------------------------------------------------- main

type Meta = Parameters<typeof renderMarkdown>[0];

/** Write latest.json and latest.md (and the README section for a complete full run). */
function writeReport(meta: Meta, results: SystemResult[], readme: boolean, json: boolean): void {
  const md = renderMarkdown(meta, results);
  const outDir = path.join(here, "results");
  fs.mkdirSync(outDir, { recursive: true });
  if (json) {
    const text = JSON.stringify({ meta, results }, null, 2) + "\n";
    fs.writeFileSync(path.join(outDir, "latest.json"), text);
    // every run is kept too, for before/after comparisons (bench/results/ is not committed)
    const stamp = meta.facts.date.replace(/[:.]/g, "-").slice(0, 19);
    fs.mkdirSync(path.join(outDir, "history"), { recursive: true });
    fs.writeFileSync(path.join(outDir, "history", `${stamp}-${meta.mode}.json`), text);
  }
  fs.writeFileSync(path.join(outDir, "latest.md"), md);
  say("");
  say(md);
  if (readme) {
    updateReadme(path.join(here, "README.md"), md);
    say('bench/README.md: "Latest results" updated');
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.render) {
    const { meta, results } = JSON.parse(fs.readFileSync(o.render, "utf8")) as {
      meta: Meta;
      results: SystemResult[];
    };
    const complete = meta.mode === "full" && results.length >= 8 && o.readme;
    writeReport(meta, results, complete, false);
    return;
  }
  const p = plan(o);
  const t0 = Date.now();
  ensureTools();
  build();
  if (o.fairOnly) {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-bench-"));
    return await fairScenario(o, machineFacts(), base, t0);
  }
  if (o.udpOnly) {
    const { seconds, concurrency } = o.udp;
    if (!(seconds > 0 && seconds <= 120)) throw new Error("--udp-seconds wants 0..120");
    if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 256)) {
      throw new Error("--udp-concurrency wants 1..256");
    }
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-bench-"));
    const facts = machineFacts();
    const rows = await runUdp(o.udp, root, base, say);
    const md = renderUdp(o.udp, rows, facts);
    return saveScenario("udp", { plan: o.udp, facts, rows }, md, base);
  }
  const tls = o.tls === "on" || (o.tls === "auto" && cliHasTls(root));
  let systems = allSystems({ tls });
  if (o.only) {
    const unknown = o.only.filter((id) =>
      !systems.some((s) => s.id === id) && !/-(tls|wss)$/.test(id)
    );
    if (unknown.length) {
      throw new Error(
        `unknown system(s) ${unknown.join(", ")}; known: ${systems.map((s) => s.id).join(", ")}`,
      );
    }
    if (o.only.some((id) => /-(tls|wss)$/.test(id))) systems = allSystems({ tls: true });
    systems = systems.filter((s) => o.only!.includes(s.id));
  }
  const facts = machineFacts();
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-bench-"));
  say(`burrow bench (${o.quick ? "quick" : "full"}): ${systems.map((s) => s.id).join(", ")}`);
  say(
    `machine: ${facts.cores} cores, ${facts.cpu}, ${facts.memoryGiB} GiB; node ${facts.versions.node}, deno ${facts.versions.deno}, bun ${facts.versions.bun}; logs in ${base}`,
  );
  const target = await startTarget(path.join(base, "target.log"));
  const results: SystemResult[] = systems.map((sys) => ({
    id: sys.id,
    label: sys.label,
    info: {},
    errors: [],
    runs: { up: [], down: [], par: [], lat: [], rate: [] },
    cpu: { up: [], down: [], par: [], lat: [], rate: [] },
    other: { up: [], down: [], par: [], lat: [], rate: [] },
    median: {},
  }));
  const ctx = (sys: System): Ctx => ({
    target: target.addr,
    dir: freshDir(base, sys.id),
    root,
    burrowLogLevel: o.burrowLogLevel,
    burrowPool: o.burrowPool,
  });
  if (o.wan === "only") {
    await wanScenario(o, systems, ctx, base, facts, t0);
    await stop(target.proc);
    return;
  }
  if (o.paired === "only") {
    try {
      const paired = await pairedScenario(o, p, systems, ctx);
      const md = renderPaired(paired.plan, paired.results);
      const outDir = path.join(here, "results");
      fs.mkdirSync(outDir, { recursive: true });
      const text = JSON.stringify({ facts, ...paired }, null, 2) + "\n";
      fs.writeFileSync(path.join(outDir, "paired-latest.json"), text);
      fs.writeFileSync(path.join(outDir, "paired-latest.md"), md);
      say("");
      say(md);
      say(`wrote bench/results/paired-latest.json and paired-latest.md; logs in ${base}`);
    } finally {
      await stop(target.proc);
    }
    return;
  }
  const failed = new Set<string>();
  let paired: Meta["paired"];
  /** Start `sys`, run `body`, stop it; a failure is recorded and the system left out from then on. */
  const withSystem = async (
    sys: System,
    res: SystemResult,
    body: (r: Running, c: Ctx) => Promise<void>,
  ) => {
    if (failed.has(sys.id)) return;
    const c = ctx(sys);
    let r: Running | null = null;
    try {
      r = await startSystem(sys, c);
      await body(r, c);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      res.errors.push(msg);
      failed.add(sys.id);
      say(`  ${sys.label} FAILED: ${msg}`);
    } finally {
      await r?.stop();
    }
  };
  try {
    if (p.shareInstance) {
      // --quick: one instance per system, memory first, then one round of the rest
      for (const [i, sys] of systems.entries()) {
        say(`== ${sys.label}`);
        await withSystem(sys, results[i]!, async (r, c) => {
          if (sys.memory) await memoryScenario(r, c, p, results[i]!);
          await perfRound(r, c, p, results[i]!, target.proc.pid, 0);
        });
      }
    } else {
      // Memory on a fresh instance of each system. Then the rounds: each round
      // starts every system afresh and runs scenarios a–e once, so a burst of
      // other load on the machine hits one round of several systems (and the
      // median drops it) rather than every repeat of one system.
      say("== memory (fresh instance each)");
      for (const [i, sys] of systems.entries()) {
        if (!sys.memory) continue;
        say(`  ${sys.label}`);
        await withSystem(sys, results[i]!, (r, c) => memoryScenario(r, c, p, results[i]!));
      }
      for (let round = 0; round < p.repeats; round++) {
        say(`== round ${round + 1} of ${p.repeats}`);
        for (const [i, sys] of systems.entries()) {
          await withSystem(
            sys,
            results[i]!,
            (r, c) => perfRound(r, c, p, results[i]!, target.proc.pid, round),
          );
        }
      }
    }
    for (const res of results) summarize(res);
    if (o.paired === "auto" && !o.quick) {
      say("== connections/s paired with ssh -R pty");
      paired = await pairedScenario(o, p, systems, ctx);
    }
  } finally {
    await stop(target.proc);
  }
  const seconds = (Date.now() - t0) / 1000;
  const meta: Meta = {
    mode: o.quick ? "quick" : "full",
    seconds,
    plan: p,
    burrow: { pool: o.burrowPool, limits: BURROW_LIMITS, logLevel: o.burrowLogLevel },
    loadgen:
      "bench/loadgen.c (C, gcc -O2): SOCKS5 step by step with TCP_NODELAY; target bench/target.c (C, epoll)",
    ...(paired ? { paired } : {}),
    facts,
  };
  const complete = !o.quick && !o.only && o.burrowLogLevel === "info" &&
    o.burrowPool.min === BURROW_POOL.min && o.burrowPool.max === BURROW_POOL.max;
  writeReport(meta, results, complete && o.readme, true);
  say(`wrote bench/results/latest.json and latest.md in ${seconds.toFixed(0)} s; logs in ${base}`);
  if (o.wan === "on" || (o.wan === "auto" && !o.quick)) {
    const wanTarget = await startTarget(path.join(base, "target-wan.log"));
    try {
      await wanScenario(
        o,
        systems,
        (sys) => ({ ...ctx(sys), target: wanTarget.addr }),
        base,
        facts,
        Date.now(),
      );
    } finally {
      await stop(wanTarget.proc);
    }
  }
}

/**
 * Connections/s of each plain burrow row among `systems` paired with ssh -R
 * pty (bench/paired.ts); the reference runs even when `--only` left it out.
 */
async function pairedScenario(
  o: Options,
  p: Plan,
  systems: System[],
  ctx: (sys: System) => Ctx,
): Promise<{ plan: PairedPlan; results: PairedResult[] }> {
  const ref = allSystems({ tls: false }).find((s) => s.id === "ssh-pty")!;
  const rows = systems.filter((s) => /^burrow-(node|deno|bun)$/.test(s.id));
  const pp: PairedPlan = {
    pairs: o.pairs,
    sliceSecs: 3,
    warmSecs: 3,
    workers: p.rateWorkers,
  };
  return { plan: pp, results: await runPaired(rows, ref, pp, ctx, startSystem, say) };
}

/** The WAN scenario over the WAN systems among `systems`; writes wan-latest.{json,md}. */
async function wanScenario(
  o: Options,
  systems: System[],
  ctx: (sys: System) => Ctx,
  base: string,
  facts: Facts,
  t0: number,
): Promise<void> {
  const delayMs = o.delayMs ?? 20;
  if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > 1000) {
    throw new Error("--delay-ms wants 0..1000");
  }
  const wanSystems = systems.filter((s) => WAN_SYSTEMS.includes(s.id));
  const p: WanPlan = {
    delayMs,
    rounds: o.wanRounds || (o.quick ? 1 : 2),
    bursts: o.bursts,
    warmCount: o.quick ? 10 : 30,
    settleMs: 1500,
    repeatGapMs: 3000,
  };
  const results = await runWan(wanSystems, p, ctx, startSystem, say);
  const seconds = (Date.now() - t0) / 1000;
  const md = renderWan(p, results, { date: facts.date, commit: facts.commit, seconds });
  saveScenario("wan", { plan: p, facts, seconds, results }, md, base);
}

/** Write one scenario's results/KIND-latest.{json,md} and a copy in results/history/; print it. */
function saveScenario(
  kind: string,
  data: { facts: Facts; [k: string]: unknown },
  md: string,
  base: string,
): void {
  const outDir = path.join(here, "results");
  fs.mkdirSync(path.join(outDir, "history"), { recursive: true });
  const text = JSON.stringify(data, null, 2) + "\n";
  fs.writeFileSync(path.join(outDir, `${kind}-latest.json`), text);
  const stamp = data.facts.date.replace(/[:.]/g, "-").slice(0, 19);
  fs.writeFileSync(path.join(outDir, "history", `${stamp}-${kind}.json`), text);
  fs.writeFileSync(path.join(outDir, `${kind}-latest.md`), md);
  say("");
  say(md);
  say(`wrote bench/results/${kind}-latest.json and ${kind}-latest.md; logs in ${base}`);
}

/** The shared-bottleneck scenario alone (bench/fair.ts); writes fair-latest.{json,md}. */
async function fairScenario(o: Options, facts: Facts, base: string, t0: number): Promise<void> {
  const p: FairPlan = { ...o.fair, delayMs: o.delayMs ?? FAIR_DEFAULTS.delayMs };
  const bad = [
    [p.rate >= 2 ** 16 && p.rate <= 2 ** 33, "--rate wants 64KiB/s..8GiB/s"],
    [p.queue >= 2 ** 12 && p.queue <= 2 ** 30, "--queue wants 4KiB..1GiB"],
    [p.delayMs >= 0 && p.delayMs <= 1000, "--delay-ms wants 0..1000"],
    [Number.isInteger(p.bulk) && p.bulk >= 0 && p.bulk <= 256, "--bulk wants 0..256"],
    [p.loadSecs > 0 && p.loadSecs <= 600, "--fair-seconds wants 0..600"],
    [Number.isInteger(p.rounds) && p.rounds >= 1 && p.rounds <= 20, "--fair-rounds wants 1..20"],
    [!o.fairLimit || o.fairLimit.limit >= 1024, "--limit-rate wants at least 1KiB/s"],
  ] as const;
  for (const [ok, msg] of bad) if (!ok) throw new Error(msg);
  const known = allSystems({ tls: false });
  const all = FAIR_SYSTEMS.map((id) => {
    const sys = known.find((s) => s.id === id.replace(/-nolink$/, ""))!;
    return id.endsWith("-nolink") ? noLink(sys) : sys;
  });
  const unknown = (o.only ?? []).filter((id) => !FAIR_SYSTEMS.includes(id));
  if (unknown.length) {
    throw new Error(`unknown system(s) ${unknown.join(", ")}; known: ${FAIR_SYSTEMS.join(", ")}`);
  }
  const systems = o.only ? all.filter((s) => o.only!.includes(s.id)) : all;
  say(`burrow bench (bottleneck): ${systems.map((s) => s.id).join(", ")}; logs in ${base}`);
  const ctx = (sys: System): Ctx => ({
    target: "",
    dir: freshDir(base, sys.id),
    root,
    burrowLogLevel: o.burrowLogLevel,
    burrowPool: o.burrowPool,
  });
  const results = await runFair(systems, p, ctx, startSystem, say);
  const lp = o.fairLimit;
  const limited = lp ? await runFairLimit(systems, p, lp, ctx, startSystem, say) : [];
  const seconds = (Date.now() - t0) / 1000;
  let md = renderFair(p, results, { date: facts.date, commit: facts.commit, seconds });
  if (lp && limited.length) md += "\n" + renderFairLimit(p, lp, limited);
  saveScenario("fair", { plan: p, facts, seconds, results, limitPlan: lp, limited }, md, base);
}

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    say(`\n${sig}: stopping everything the benchmark started`);
    void stopAll().finally(() => process.exit(130));
  });
}
process.on("exit", () => killAllSync());

main().then(
  async () => {
    await stopAll();
    process.exit(0); // no lingering timer or keep-alive socket holds us
  },
  async (e) => {
    console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    await stopAll();
    process.exit(1);
  },
);
