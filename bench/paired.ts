/**
 * Paired connection rate: burrow against ssh -R (pty) with both running at
 * once, measured in short alternating slices, so that both see the same
 * machine. The rounds of bench/run.ts measure each system minutes apart;
 * on a shared machine whose speed drifts by ±10 % within minutes, a ratio of
 * their medians moves as much as the thing it is meant to show. Here each
 * ratio comes from two slices seconds apart, in ABBA order (the order of a
 * pair alternates, so a steady drift favours neither side), and the figure
 * is the median of the pairs' ratios, with their range.
 *
 * Per burrow system: start it and the reference, warm both with the same
 * load, then `pairs` pairs of `sliceSecs` rate runs (the rate scenario's
 * load: workers opening short connections with a 64-byte echo). The idle
 * system of a slice holds its idle pool and control connection, nothing
 * more.
 */
import path from "node:path";
import { type LoadgenResult, runLoadgen } from "./loadgen.ts";
import { median } from "./stats.ts";
import type { Ctx, Running, System } from "./systems.ts";

export interface PairedPlan {
  /** Pairs of slices (one slice of each system per pair). */
  pairs: number;
  sliceSecs: number;
  /** Unmeasured load on each system before the first pair (JIT warm-up). */
  warmSecs: number;
  workers: number;
}

export interface PairedResult {
  id: string;
  label: string;
  ref: string;
  refLabel: string;
  errors: string[];
  /** conn/s of each slice, in pair order. */
  rates: number[];
  refRates: number[];
  /** rates[i] / refRates[i]. */
  ratios: number[];
  /** Failed connections over all slices. */
  connErrors: number;
  refConnErrors: number;
}

/**
 * `pairs` pairs of `a()` and `b()` one after the other, in ABBA order (which
 * goes first alternates, so a steady drift favours neither); each pair as
 * [a's, b's].
 */
export async function abba<T>(
  pairs: number,
  a: () => Promise<T>,
  b: () => Promise<T>,
): Promise<Array<[T, T]>> {
  const out: Array<[T, T]> = [];
  for (let i = 0; i < pairs; i++) {
    if (i % 2 === 0) {
      const x = await a();
      out.push([x, await b()]);
    } else {
      const y = await b();
      out.push([await a(), y]);
    }
  }
  return out;
}

/** The summary of one paired run: medians, the ratio's median and range. */
export function pairedSummary(r: PairedResult) {
  const ratios = r.ratios.filter((x) => Number.isFinite(x));
  return {
    rate: median(r.rates),
    refRate: median(r.refRates),
    ratio: median(ratios),
    min: ratios.length ? Math.min(...ratios) : undefined,
    max: ratios.length ? Math.max(...ratios) : undefined,
  };
}

/**
 * Run each of `systems` paired with `ref`. `begin` starts a system and
 * waits until a stream gets through; both are stopped after their pairs.
 */
export async function runPaired(
  systems: System[],
  ref: System,
  p: PairedPlan,
  ctx: (sys: System) => Ctx,
  begin: (sys: System, c: Ctx) => Promise<Running>,
  say: (line: string) => void,
): Promise<PairedResult[]> {
  const out: PairedResult[] = [];
  for (const sys of systems) {
    const res: PairedResult = {
      id: sys.id,
      label: sys.label,
      ref: ref.id,
      refLabel: ref.label,
      errors: [],
      rates: [],
      refRates: [],
      ratios: [],
      connErrors: 0,
      refConnErrors: 0,
    };
    out.push(res);
    say(`  ${sys.label} paired with ${ref.label}`);
    let a: Running | null = null;
    let b: Running | null = null;
    try {
      const ca = ctx(sys), cb = ctx(ref);
      a = await begin(sys, ca);
      b = await begin(ref, cb);
      const slice = async (r: Running, c: Ctx, secs: number): Promise<LoadgenResult> => {
        const args = ["--seconds", String(secs), "--workers", String(p.workers)];
        const log = path.join(c.dir, "loadgen.log");
        const { results } = await runLoadgen("rate", r.endpoint, args, secs + 40, log);
        const x = results[0];
        if (!x) throw new Error(`${c.dir}: no rate result (see ${log})`);
        return x;
      };
      await slice(a, ca, p.warmSecs);
      await slice(b, cb, p.warmSecs);
      const sliced = await abba(
        p.pairs,
        () => slice(a!, ca, p.sliceSecs),
        () => slice(b!, cb, p.sliceSecs),
      );
      for (const [x, y] of sliced) {
        const rate = Number(x.conn_s), refRate = Number(y.conn_s);
        res.rates.push(rate);
        res.refRates.push(refRate);
        res.ratios.push(refRate > 0 ? rate / refRate : NaN);
        res.connErrors += Number(x.errors) || 0;
        res.refConnErrors += Number(y.errors) || 0;
      }
      const s = pairedSummary(res);
      say(
        `  ${sys.label} ${s.rate?.toFixed(0)} conn/s, ${ref.label} ${s.refRate?.toFixed(0)}: ` +
          `ratio ${s.ratio?.toFixed(2)} (${s.min?.toFixed(2)}–${
            s.max?.toFixed(2)
          }) over ${p.pairs} pairs`,
      );
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      res.errors.push(msg);
      say(`  ${sys.label} paired FAILED: ${msg}`);
    } finally {
      await b?.stop();
      await a?.stop();
    }
  }
  return out;
}

/** The markdown section for bench/results/latest.md and bench/README.md. */
export function renderPaired(p: PairedPlan, results: PairedResult[]): string {
  if (results.length === 0) return "";
  const ref = results[0]!.refLabel;
  const out: string[] = [
    `**Connections/s paired with ${ref}** (both running; ${p.pairs} pairs of ${p.sliceSecs} s ` +
    `slices in ABBA order, ${p.workers} workers; the median of the pairs' ratios, and their range)`,
    "",
    `| system | conn/s | ${ref} conn/s | ratio, median | range | errors | ≥ 1.0× |`,
    "|---|---:|---:|---:|---:|---:|:-:|",
  ];
  for (const r of results) {
    const s = pairedSummary(r);
    const f = (v: number | undefined, d: number) => v === undefined ? "–" : v.toFixed(d);
    out.push(
      `| ${r.label} | ${f(s.rate, 0)} | ${f(s.refRate, 0)} | ${f(s.ratio, 2)}× | ${f(s.min, 2)}–${
        f(s.max, 2)
      } | ${r.connErrors} / ${r.refConnErrors} | ${
        r.errors.length ? "failed" : s.ratio !== undefined && s.ratio >= 1 ? "✓" : "✗"
      } |`,
    );
  }
  out.push("");
  return out.join("\n");
}
