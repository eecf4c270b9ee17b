/**
 * A real PostgreSQL 15 for a test file (Debian's package): its own cluster
 * made by `initdb` and run by `pg_ctl` as the postgres user (initdb refuses
 * root; the tests run as root and switch with `runuser`), in a temporary
 * directory the postgres user owns, on a free port of 127.0.0.1, its unix
 * socket in that directory, pg_stat_statements loaded. `stop()`/`start()`
 * take it down and up again on the same port and data (outage tests);
 * `close()` stops it and removes everything.
 *
 * ```ts
 * const pg = await startPg(net);
 * try { … pg.url … } finally { await pg.close(); }
 * ```
 */
import { spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import type { Net } from "../src/net.ts";
import { freePort, runtimeNet } from "./helpers.ts";

const PG_BIN = "/usr/lib/postgresql/15/bin";

export interface Pg {
  /** `postgres://postgres@127.0.0.1:<port>/burrow` (trust authentication). */
  url: string;
  port: number;
  /** Run SQL in database `burrow` through psql (unaligned, tuples only); its output. */
  psql(sql: string): Promise<string>;
  /** Stop the server (`pg_ctl stop -m fast`); the data stays. */
  stop(): Promise<void>;
  /** Start it again, on the same port. */
  start(): Promise<void>;
  /** Stop it and remove its directory. */
  close(): Promise<void>;
}

/** Run `cmd` without blocking the event loop; fail with its output unless it exits 0. */
function must(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${cmd} ${args.join(" ")}: exit ${code}\n${stderr}${stdout}`));
    });
  });
}

/**
 * A cluster for the tests of one file: started before the first (node:test's
 * `before`), closed after the last; `pg` is set from then on.
 */
export function pgForFile(): { readonly pg: Pg } {
  const box: { pg?: Pg } = {};
  before(async () => {
    box.pg = await startPg(await runtimeNet());
  });
  after(async () => {
    await box.pg?.close();
  });
  return {
    get pg() {
      if (!box.pg) throw new Error("PostgreSQL is not started yet");
      return box.pg;
    },
  };
}

/** A PostgreSQL cluster of its own; see the module doc. The caller must close() it. */
export async function startPg(net: Net): Promise<Pg> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-pg-"));
  const id = await must("id", ["postgres"]);
  const [uid, gid] = [Number(/uid=(\d+)/.exec(id)![1]), Number(/gid=(\d+)/.exec(id)![1])];
  chmodSync(dir, 0o755);
  const pg = join(dir, "pg");
  mkdirSync(pg);
  chownSync(pg, uid, gid);
  const data = join(pg, "data");
  const as = (bin: string, ...args: string[]) =>
    must("runuser", ["-u", "postgres", "--", join(PG_BIN, bin), ...args]);
  const port = await freePort(net);
  const opts = `-p ${port} -k ${pg} -c listen_addresses=127.0.0.1 -c fsync=off ` +
    "-c shared_preload_libraries=pg_stat_statements -c max_connections=200";
  const start = () => as("pg_ctl", "-D", data, "-o", opts, "-l", join(pg, "log"), "-w", "start");
  const psqlAs = (db: string, sql: string) =>
    must("runuser", [
      "-u",
      "postgres",
      "--",
      "psql",
      "-h",
      pg,
      "-p",
      String(port),
      "-d",
      db,
      "-X",
      "-q",
      "-A",
      "-t",
      "-v",
      "ON_ERROR_STOP=1",
      "-c",
      sql,
    ]);
  try {
    await as("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
    await start();
    await psqlAs("postgres", "CREATE DATABASE burrow");
    await psqlAs("burrow", "CREATE EXTENSION pg_stat_statements");
  } catch (e) {
    await as("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/burrow`,
    port,
    psql: (sql) => psqlAs("burrow", sql),
    async stop() {
      await as("pg_ctl", "-D", data, "-m", "fast", "-w", "stop");
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async close() {
      if (running) await as("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").catch(() => {});
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
