/**
 * The WAN scenario: stream setup at distance and under bursts. The agent
 * side's link to the server side (burrow's agent → server, and for ssh -R
 * the `ssh` client → sshd) goes through a delay relay (bench/delay.ts) that
 * delays every chunk by a fixed one-way delay each way (default 20 ms, RTT
 * 40 ms) and charges new connections the TCP handshake's round trip. The
 * load generator, the SOCKS port and the target stay on loopback.
 *
 * Per system and round: a fresh start, `warm` sequential connects (connect +
 * SOCKS5 handshake + 1-byte echo, pool warm); then for each burst size a
 * fresh start (the pool at its resting size, as on an agent that has been
 * idle) and one burst of N simultaneous streams ("first burst"), then, a few
 * seconds later on the same instance, the same burst again ("repeat": what a
 * pool that learns from the first burst can do). Figures: p50 / p99 / max
 * per burst, median over the rounds, errors summed.
 */
import path from "node:path";
import { startDelayRelay } from "./delay.ts";
import { type LoadgenResult, runLoadgen } from "./loadgen.ts";
import { sleep } from "./proc.ts";
import { median } from "./stats.ts";
import type { Ctx, Running, System } from "./systems.ts";

export interface WanPlan {
  delayMs: number;
  rounds: number;
  bursts: number[];
  warmCount: number;
  /** Pause after start before a burst: the pool fills to its resting size. */
  settleMs: number;
  /** Pause between the first burst and its repeat. */
  repeatGapMs: number;
}

export interface WanResult {
  id: string;
  label: string;
  errors: string[];
  warm: LoadgenResult[];
  bursts: Record<string, LoadgenResult[]>;
  /** The same burst again, `repeatGapMs` after the first, on the same instance. */
  again: Record<string, LoadgenResult[]>;
  /** Connections the relay accepted per burst run (pool connections opened cold, + control). */
  linkConns: Record<string, number[]>;
}

export const WAN_SYSTEMS = [
  "ssh-pty",
  "burrow-node",
  "burrow-deno",
  "burrow-bun",
  "burrow-node-tls",
  "burrow-deno-tls",
  "burrow-bun-tls",
  "burrow-node-wss",
  "burrow-deno-wss",
  "burrow-bun-wss",
];

/**
 * Run the WAN scenario over `systems`. `begin` starts a system with the
 * given context and waits until a stream gets through; every relay is
 * closed after its system stops.
 */
export async function runWan(
  systems: System[],
  p: WanPlan,
  ctx: (sys: System) => Ctx,
  begin: (sys: System, c: Ctx) => Promise<Running>,
  say: (line: string) => void,
): Promise<WanResult[]> {
  const out: WanResult[] = systems.map((s) => ({
    id: s.id,
    label: s.label,
    errors: [],
    warm: [],
    bursts: Object.fromEntries(p.bursts.map((n) => [String(n), []])),
    again: Object.fromEntries(p.bursts.map((n) => [String(n), []])),
    linkConns: Object.fromEntries(p.bursts.map((n) => [String(n), []])),
  }));
  const once = async (
    sys: System,
    res: WanResult,
    body: (r: Running, c: Ctx, accepted: () => number) => Promise<void>,
  ) => {
    const relays: Array<Awaited<ReturnType<typeof startDelayRelay>>> = [];
    const c: Ctx = {
      ...ctx(sys),
      link: async (port) => {
        const r = await startDelayRelay({ toPort: port, delayMs: p.delayMs });
        relays.push(r);
        return r.port;
      },
    };
    let r: Running | null = null;
    try {
      r = await begin(sys, c);
      await body(r, c, () => relays.reduce((a, x) => a + x.accepted, 0));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      res.errors.push(msg);
      say(`  ${sys.label} FAILED: ${msg.split("\n")[0]}`);
    } finally {
      await r?.stop();
      for (const x of relays) await x.close();
    }
  };
  for (let round = 0; round < p.rounds; round++) {
    say(`== WAN round ${round + 1} of ${p.rounds} (one-way delay ${p.delayMs} ms)`);
    for (const [i, sys] of systems.entries()) {
      const res = out[i]!;
      const line: string[] = [];
      await once(sys, res, async (r, c) => {
        await sleep(p.settleMs);
        const { results } = await runLoadgen(
          "lat",
          r.endpoint,
          ["--count", String(p.warmCount), "--warmup", "5"],
          120,
          path.join(c.dir, "loadgen.log"),
        );
        const x = results[0];
        if (x) {
          res.warm.push(x);
          line.push(`warm p50 ${x.p50_ms} max ${x.max_ms}`);
          if (x.error) res.errors.push(`warm: ${x.errors} error(s), first: ${x.error}`);
        } else res.errors.push("warm: no result");
      });
      for (const n of p.bursts) {
        await once(sys, res, async (r, c, accepted) => {
          await sleep(p.settleMs);
          const burst = () =>
            runLoadgen(
              "burst",
              r.endpoint,
              ["--streams", String(n), "--timeout", "20"],
              60,
              path.join(c.dir, "loadgen.log"),
            );
          const before = accepted();
          const x = (await burst()).results[0];
          res.linkConns[String(n)]!.push(accepted() - before);
          await sleep(p.repeatGapMs);
          const y = (await burst()).results[0];
          for (const [z, into, what] of [[x, res.bursts, ""], [y, res.again, " again"]] as const) {
            if (z) {
              into[String(n)]!.push(z);
              line.push(`${n}${what}: p50 ${z.p50_ms} max ${z.max_ms} err ${z.errors}`);
              if (z.error) {
                res.errors.push(`burst ${n}${what}: ${z.errors} error(s), first: ${z.error}`);
              }
            } else res.errors.push(`burst ${n}${what}: no result`);
          }
        });
      }
      say(`  ${sys.label}: ${line.join("; ")}`);
    }
  }
  return out;
}

const f = (x: number | undefined, d = 0) => x === undefined ? "–" : x.toFixed(d);
const ratio = (x: number | undefined, y: number | undefined) =>
  x === undefined || y === undefined || y === 0 ? "–" : `${(x / y).toFixed(2)}×`;

/** Median figures of one system. */
export function wanSummary(r: WanResult, bursts: number[]) {
  const num = (xs: LoadgenResult[], k: string) => xs.map((x) => Number(x[k]));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return {
    warmP50: median(num(r.warm, "p50_ms")),
    warmP99: median(num(r.warm, "p99_ms")),
    warmErrors: sum(num(r.warm, "errors")),
    bursts: Object.fromEntries(
      bursts.map((n) => [n, burstSummary(r.bursts[String(n)] ?? [], r.linkConns[String(n)] ?? [])]),
    ),
    again: Object.fromEntries(bursts.map((n) => [n, burstSummary(r.again[String(n)] ?? [], [])])),
  };
}

function burstSummary(xs: LoadgenResult[], linkConns: number[]) {
  const num = (xs: LoadgenResult[], k: string) => xs.map((x) => Number(x[k]));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return {
    p50: median(num(xs, "p50_ms")),
    p99: median(num(xs, "p99_ms")),
    max: median(num(xs, "max_ms")),
    worst: xs.length ? Math.max(...num(xs, "max_ms")) : undefined,
    errors: sum(num(xs, "errors")),
    runs: xs.length,
    linkConns: median(linkConns),
  };
}

/** The WAN report in markdown. */
export function renderWan(
  p: WanPlan,
  results: WanResult[],
  meta: { date: string; commit: string; seconds: number },
): string {
  const rtt = 2 * p.delayMs;
  const sums = new Map(results.map((r) => [r.id, wanSummary(r, p.bursts)]));
  const ssh = sums.get("ssh-pty");
  const lines: string[] = [];
  lines.push(
    `WAN run ${meta.date.slice(0, 16).replace("T", " ")} UTC, commit ${meta.commit}, ${
      meta.seconds.toFixed(0)
    } s: one-way delay ${p.delayMs} ms (RTT ${rtt} ms) on the agent↔server link, ${p.rounds} round(s) (median; "worst" = the largest max of any round); warm = ${p.warmCount} sequential connects after 5 untimed.`,
    "",
  );
  for (const which of ["bursts", "again"] as const) {
    lines.push(
      which === "bursts"
        ? "**First burst on a fresh instance** (pool at its resting size) and warm sequential connects"
        : `**The same burst again, ${p.repeatGapMs / 1000} s later on the same instance**`,
      "",
    );
    const head = which === "bursts" ? ["system", "warm p50 ms", "(RTT)"] : ["system"];
    for (const n of p.bursts) head.push(`burst ${n} p50 / p99 / max ms`, `worst`, `err`);
    lines.push(`| ${head.join(" | ")} |`, `| --- |${head.slice(1).map(() => " ---: |").join("")}`);
    for (const r of results) {
      const s = sums.get(r.id)!;
      const row = which === "bursts"
        ? [r.label, f(s.warmP50, 1), s.warmP50 === undefined ? "–" : (s.warmP50 / rtt).toFixed(2)]
        : [r.label];
      for (const n of p.bursts) {
        const b = s[which][n]!;
        row.push(`${f(b.p50)} / ${f(b.p99)} / ${f(b.max)}`, f(b.worst), String(b.errors));
      }
      lines.push(`| ${row.join(" | ")} |`);
    }
    lines.push("");
  }
  lines.push("**Ratio to ssh -R (pty) through the same relay** (less is better)", "");
  const rhead = ["system", "warm p50"];
  for (const n of p.bursts) rhead.push(`${n} p50`, `${n} max`, `${n} again max`);
  lines.push(`| ${rhead.join(" | ")} |`, `| --- |${rhead.slice(1).map(() => " ---: |").join("")}`);
  for (const r of results) {
    const s = sums.get(r.id)!;
    const row = [r.label, ratio(s.warmP50, ssh?.warmP50)];
    for (const n of p.bursts) {
      row.push(
        ratio(s.bursts[n]!.p50, ssh?.bursts[n]?.p50),
        ratio(s.bursts[n]!.max, ssh?.bursts[n]?.max),
        ratio(s.again[n]!.max, ssh?.again[n]?.max),
      );
    }
    lines.push(`| ${row.join(" | ")} |`);
  }
  const conns = results.filter((r) => r.id.startsWith("burrow")).map((r) => {
    const s = sums.get(r.id)!;
    return `${r.label} ${p.bursts.map((n) => f(s.bursts[n]!.linkConns)).join(" / ")}`;
  });
  if (conns.length) {
    lines.push(
      "",
      `Connections opened over the link during each burst (${
        p.bursts.join(" / ")
      }; burrow: pool connections opened cold): ${conns.join("; ")}.`,
    );
  }
  const errs = results.filter((r) => r.errors.length).map((r) =>
    `${r.label}: ${r.errors.slice(0, 3).map((e) => e.split("\n")[0]).join("; ")}`
  );
  if (errs.length) lines.push("", "Errors: " + errs.join(" | "));
  return lines.join("\n") + "\n";
}
