/**
 * `npm run bench:audit`: what writing the audit log to PostgreSQL costs the
 * connection rate (issue #30: at least 0.95× of it off). One burrow server
 * with the PostgreSQL store (a cluster of its own, test/pg.ts) and
 * `store.audit: true`, against the same with `audit: false`, both running at
 * once, measured in alternating slices (bench/paired.ts: ABBA order, the
 * median of the pairs' ratios and their range), the rate scenario's load
 * (workers opening short connections with a 64-byte echo; every stream
 * writes its `stream ended` audit line).
 *
 *   npm run bench:audit -- [--runtime node|deno|bun] [--pairs 8] [--slice 3] [--workers 16]
 *
 * Prints the table row for bench/README.md ("Audit log to PostgreSQL").
 * Root (initdb runs as the postgres user); everything on 127.0.0.1.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { net } from "../runtimes/node/mod.ts";
import { startPg } from "../test/pg.ts";
import { build, startTarget, waitReady } from "./loadgen.ts";
import { pairedSummary, runPaired } from "./paired.ts";
import { stop, stopAll } from "./proc.ts";
import { allSystems, BURROW_POOL, type Ctx, type Running, type System } from "./systems.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "node" },
    pairs: { type: "string", default: "8" },
    slice: { type: "string", default: "3" },
    workers: { type: "string", default: "16" },
  },
});
const root = path.resolve(new URL("..", import.meta.url).pathname);
const base = fs.mkdtempSync(path.join(os.tmpdir(), "burrow-bench-audit-"));
const say = (line: string) => console.log(line);
say(`logs in ${base}`);

build();
const pg = await startPg(net);
const target = await startTarget(path.join(base, "target.log"));
const keyFile = path.join(base, "store.key");
fs.writeFileSync(keyFile, "3c".repeat(32) + "\n", { mode: 0o600 });
let seq = 0;
try {
  const plain = allSystems({ tls: false }).find((s) => s.id === `burrow-${values.runtime}`);
  if (!plain) throw new Error(`no system burrow-${values.runtime}`);
  const withAudit = (audit: boolean): System => ({
    ...plain,
    id: `${plain.id}-audit-${audit ? "on" : "off"}`,
    label: `${plain.label}, PostgreSQL store, audit ${audit ? "on" : "off"}`,
    start: (ctx) =>
      plain.start({
        ...ctx,
        burrowConfig: { store: { postgres: pg.url, key_file: keyFile, audit } },
      }),
  });
  const ctx = (sys: System): Ctx => {
    const dir = path.join(base, `${sys.id}-${++seq}`);
    fs.mkdirSync(dir, { recursive: true });
    return {
      target: target.addr,
      dir,
      root,
      burrowLogLevel: "info",
      burrowPool: BURROW_POOL,
    };
  };
  const begin = async (sys: System, c: Ctx): Promise<Running> => {
    const r = await sys.start(c);
    if (!(await waitReady(r.endpoint, 30, path.join(c.dir, "loadgen.log")))) {
      await r.stop();
      throw new Error(`${sys.id}: no stream got through within 30 s (logs in ${c.dir})`);
    }
    return r;
  };
  const plan = {
    pairs: Number(values.pairs),
    sliceSecs: Number(values.slice),
    warmSecs: 3,
    workers: Number(values.workers),
  };
  const [r] = await runPaired([withAudit(true)], withAudit(false), plan, ctx, begin, say);
  const s = pairedSummary(r!);
  const rows = Number(await pg.psql("SELECT count(*) FROM burrow_audit"));
  const f = (v: number | undefined, d: number) => v === undefined ? "–" : v.toFixed(d);
  say(`audit lines in the table: ${rows}`);
  say(
    `| ${values.runtime} | ${f(s.rate, 0)} | ${f(s.refRate, 0)} | ${f(s.ratio, 2)}× | ` +
      `${f(s.min, 2)}–${f(s.max, 2)} | ${plan.pairs} × ${plan.sliceSecs} s | ${rows} |`,
  );
  if (r!.errors.length) process.exitCode = 1;
} finally {
  await stop(target.proc);
  await stopAll();
  await pg.close();
}
