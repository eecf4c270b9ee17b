/**
 * The bandwidth-limit scenario (issue #26), through the same shared
 * bottleneck as bench/fair.ts: two clients of one agent, `bench` (no limit)
 * and `limited` (`bandwidth: {down: …}` in the server's config). Per system
 * and round: `bench` downloads alone with N streams; then `limited` pulls at
 * its limit with its own streams while `bench` downloads again. The
 * issue's figure: what `bench` keeps next to its limited neighbour, against
 * what it gets alone (≥ 0.8×); and the neighbour's rate against its limit.
 * On loopback two cores are the limit, so only the bottleneck tells whether
 * a limited neighbour's held-back streams cost the others anything.
 *
 * @module
 */
import crypto from "node:crypto";
import path from "node:path";
import { createBottleneck, type FairPlan, throughBottleneck } from "./fair.ts";
import { runLoadgen, startTarget } from "./loadgen.ts";
import { sleep, stop } from "./proc.ts";
import { median } from "./stats.ts";
import type { Ctx, Running, System } from "./systems.ts";

export interface LimitPlan {
  /** The limited client's `down` limit, bytes/s. */
  limit: number;
  /** Its download streams. */
  streams: number;
  /** Each download's length, s. */
  seconds: number;
}

export const LIMIT_DEFAULTS: LimitPlan = { limit: 4 * 2 ** 20, streams: 4, seconds: 8 };

export interface LimitRun {
  /** `bench` alone, MiB/s. */
  alone: number;
  /** `bench` next to the limited neighbour, MiB/s. */
  beside: number;
  /** The neighbour, MiB/s. */
  neighbour: number;
  /** Packets the queue toward the server dropped while `bench` was alone, and beside. */
  dropsAlone: number;
  dropsBeside: number;
}

export interface LimitResult {
  id: string;
  label: string;
  errors: string[];
  runs: LimitRun[];
}

/** Run the scenario over the burrow systems of `systems` (ssh -R has no limits to set). */
export async function runFairLimit(
  systems: System[],
  p: FairPlan,
  lp: LimitPlan,
  ctx: (sys: System) => Ctx,
  begin: (sys: System, c: Ctx) => Promise<Running>,
  say: (line: string) => void,
): Promise<LimitResult[]> {
  const burrow = systems.filter((s) => s.id.startsWith("burrow-"));
  const out = burrow.map((s): LimitResult => ({ id: s.id, label: s.label, errors: [], runs: [] }));
  if (burrow.length === 0) return out;
  const bn = createBottleneck(p);
  try {
    const log = path.join(ctx(burrow[0]!).dir, "target-limit.log");
    const target = await startTarget(log, bn.wrap);
    try {
      for (let round = 0; round < p.rounds; round++) {
        say(`== limited neighbour round ${round + 1} of ${p.rounds} (namespace ${bn.ns})`);
        for (const [i, sys] of burrow.entries()) {
          const base = { ...ctx(sys), target: target.addr };
          const { ctx: c, close } = throughBottleneck(base, bn, p);
          try {
            out[i]!.runs.push(await limitOnce(sys, p, lp, c, begin, say, () => bn.drops()[1]));
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            out[i]!.errors.push(msg);
            say(`  ${sys.label} FAILED: ${msg.split("\n")[0]}`);
          } finally {
            await close();
          }
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

async function limitOnce(
  sys: System,
  p: FairPlan,
  lp: LimitPlan,
  base: Ctx,
  begin: (sys: System, c: Ctx) => Promise<Running>,
  say: (line: string) => void,
  drops: () => number,
): Promise<LimitRun> {
  const token = crypto.randomBytes(18).toString("base64url");
  const c: Ctx = {
    ...base,
    burrowClients: [{ name: "limited", token, bandwidth: { down: `${lp.limit}B/s` } }],
  };
  const r = await begin(sys, c);
  try {
    await sleep(1000); // the pool fills to its resting size
    const down = async (user: "bench" | "limited", streams: number, tag: string) => {
      const ep = user === "bench" ? r.endpoint : { ...r.endpoint, user, pass: token };
      const { results } = await runLoadgen(
        "par",
        ep,
        ["--streams", String(streams), "--seconds", String(lp.seconds), "--timeout", "20"],
        lp.seconds + 60,
        path.join(c.dir, `loadgen-${tag}.log`),
      );
      const x = results[0];
      if (!x || Number(x.errors) > 0) {
        throw new Error(`${tag}: ${x?.error ?? "no result"} (see ${c.dir})`);
      }
      return Number(x.mib_s);
    };
    const d0 = drops();
    const alone = await down("bench", p.bulk, "alone");
    const d1 = drops();
    const [neighbour, beside] = await Promise.all([
      down("limited", lp.streams, "neighbour"),
      down("bench", p.bulk, "beside"),
    ]);
    const [dropsAlone, dropsBeside] = [d1 - d0, drops() - d1];
    say(
      `  ${sys.label}: bench alone ${alone} MiB/s, beside the limited neighbour ${beside} MiB/s (${
        (beside / alone).toFixed(2)
      }×); neighbour ${neighbour} MiB/s of its ${
        (lp.limit / 2 ** 20).toFixed(2)
      } MiB/s; packets dropped toward the server ${dropsAlone} alone, ${dropsBeside} beside`,
    );
    return { alone, beside, neighbour, dropsAlone, dropsBeside };
  } finally {
    await r.stop();
  }
}

/** The scenario's report in markdown (medians over the rounds). */
export function renderFairLimit(p: FairPlan, lp: LimitPlan, results: LimitResult[]): string {
  const mib = (x: number) => `${+(x / 2 ** 20).toFixed(2)} MiB/s`;
  const lines = [
    `A limited neighbour, through the same bottleneck (${
      mib(p.rate)
    } each way): client \`bench\` downloads with ${p.bulk} streams ` +
    `for ${lp.seconds} s alone, then again while client \`limited\` (\`bandwidth: {down: ${
      mib(lp.limit)
    }}\`) downloads ` +
    `with ${lp.streams} streams through the same agent; ${p.rounds} round(s) (median).`,
    "",
    "| system | bench alone MiB/s | bench beside the neighbour MiB/s | ÷ alone [≥ 0.8×] | neighbour MiB/s | ÷ its limit | drops alone | drops beside |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    const m = (k: keyof LimitRun) => median(r.runs.map((x) => x[k]));
    const [alone, beside, nb] = [m("alone"), m("beside"), m("neighbour")];
    const f = (x: number | undefined, d = 1) => x === undefined ? "–" : x.toFixed(d);
    const ratio = alone && beside !== undefined ? `${(beside / alone).toFixed(2)}×` : "–";
    const ofLimit = nb === undefined ? "–" : `${((nb * 2 ** 20) / lp.limit).toFixed(2)}×`;
    const drops = `${f(m("dropsAlone"), 0)} | ${f(m("dropsBeside"), 0)}`;
    lines.push(
      `| ${r.label} | ${f(alone)} | ${f(beside)} | ${ratio} | ${f(nb)} | ${ofLimit} | ${drops} |`,
    );
  }
  const errs = results.filter((r) => r.errors.length).map((r) =>
    `${r.label}: ${r.errors.slice(0, 3).map((e) => e.split("\n")[0]).join("; ")}`
  );
  if (errs.length) lines.push("", "Errors: " + errs.join(" | "));
  return lines.join("\n") + "\n";
}
