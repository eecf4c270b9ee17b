/**
 * The PostgreSQL state store (store.ts; `store: {postgres: …}`): one
 * database for a fleet of servers, through postgres.js.
 *
 * - At start: the migrations (store_schema.ts), the store key checked
 *   against the database (store_keys.ts), LISTEN on channel `burrow`, the
 *   presence lease (store_presence.ts).
 * - Every write that other servers must see sends a NOTIFY in its
 *   transaction (JSON: `s` the sending server, `w` what changed, `ids`),
 *   delivered at commit to every listening server.
 * - An outage (a query fails for want of a connection, or the listening
 *   connection drops) is logged once (`state store unreachable`); writes
 *   are refused at once with a StoreError until a probe, every
 *   {@link PROBE_MS}, LISTENs again. Then every server re-reads the tables
 *   (NOTIFY has no replay), writes its presence again and its waiting audit
 *   lines, and logs `state store reachable again`.
 * - Every minute: expired tokens, people and retired keys are pruned; every
 *   hour, audit lines older than `store.audit_retention`.
 *
 * @module
 */
import postgres, { type Sql } from "postgres";
import type { StoreConfig } from "../config/store.ts";
import { ConfigError, StoreError } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { PresenceMap } from "./presence.ts";
import { AuditQueue } from "./store_audit.ts";
import { KEY_CHECK, type KeyBox } from "./store_keys.ts";
import { PgPresence } from "./store_presence.ts";
import { migrate } from "./store_schema.ts";
import { PgTokens } from "./store_pg_tokens.ts";
import { type AuditLine, type Store, type StoreChange, type StoreContext } from "./store.ts";

/** How often an unreachable store is tried again, ms. */
export const PROBE_MS = 1000;
const HOUSEKEEPING_MS = 60_000;

export interface PgStoreOptions {
  url: string;
  /** From `store.password_file`; null: the URL's, or none. */
  password: string | null;
  box: KeyBox;
  /** `store:`, its lease timing (`lease`, `lease_renew`) too. */
  config: StoreConfig;
}

/** A notification on channel `burrow`. */
export interface Note {
  /** The server that made the change. */
  s: string;
  w: "tokens" | "keys" | "presence" | "servers";
  ids?: string[];
}

/** Whether `e` means the database cannot be reached (rather than a query it refused). */
export function unreachable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = String((e as { code?: unknown }).code ?? "");
  // connection, authentication, no such database, resources, shutdown
  if (e.name === "PostgresError") return /^(08|28|3D|53|57)/.test(code);
  // sockets (ECONNREFUSED, ECONNRESET, EAI_AGAIN…) and postgres.js's own connection errors
  return /^E[A-Z_]+$/.test(code) ||
    /^(CONNECTION_(CLOSED|DESTROYED|ENDED)|CONNECT_TIMEOUT)$/.test(code);
}

/** `postgres://user@host:port/db` without its password, for messages. */
function where(url: string): string {
  try {
    const u = new URL(url);
    u.password = "";
    return u.toString();
  } catch {
    return "store.postgres";
  }
}

/** The PostgreSQL store; see the module doc. */
export class PgStore implements Store {
  readonly kind = "postgres";
  readonly sql: Sql;
  readonly #listen: Sql;
  readonly presence: PresenceMap = new PresenceMap();
  readonly tokens: PgTokens;
  readonly audits: boolean;
  readonly #pg: PgPresence;
  readonly #audit: AuditQueue;
  readonly #changes = new Set<(c: StoreChange) => void>();
  #up = false;
  #downSince: number | null = null;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #house: ReturnType<typeof setInterval> | undefined;
  #houseTicks = 0;
  #closing = false;
  #opened = false;
  log: Logger = silent;
  #metrics: Metrics | undefined;

  constructor(readonly opts: PgStoreOptions) {
    const base = {
      max: 4,
      connect_timeout: 5,
      idle_timeout: 60,
      backoff: () => 0.25,
      onnotice: () => {},
      connection: { application_name: `burrow ${this.presence.serverId}` },
      ...(opts.password !== null ? { password: opts.password } : {}),
    };
    this.sql = postgres(opts.url, base);
    this.#listen = postgres(
      opts.url,
      {
        ...base,
        max: 1,
        idle_timeout: undefined,
        max_lifetime: null,
        onnotify: (_channel: string, payload: string) => this.#notified(payload),
        onclose: () => this.#lost(new Error("the listening connection closed")),
      } as Parameters<typeof postgres>[1],
    );
    this.tokens = new PgTokens(this, opts.box);
    this.#pg = new PgPresence(
      this,
      this.presence,
      opts.config.leaseRenewMs,
      opts.config.leaseMs,
    );
    this.audits = opts.config.audit;
    this.#audit = new AuditQueue(
      opts.config.auditQueue,
      (lines) => this.#writeAudit(lines),
      () => this.#up,
      (first) => this.#auditDropped(first),
    );
  }

  get up(): boolean {
    return this.#up;
  }

  /** This server's id (its presence lease). */
  get serverId(): string {
    return this.presence.serverId;
  }

  async open(ctx?: StoreContext): Promise<void> {
    if (ctx) {
      this.log = ctx.log.with({ store: "postgres" });
      this.#metrics = ctx.metrics;
      this.#gauges(ctx.metrics);
    }
    try {
      const applied = await migrate(this.sql);
      if (applied.length > 0) this.log.info("state store schema migrated", { to: applied.at(-1) });
      await this.#checkKey();
      await this.#listen`LISTEN burrow`;
      this.#up = true;
      await this.#pg.resync();
      await this.#housekeeping(true);
    } catch (e) {
      this.#up = false;
      if (e instanceof ConfigError || e instanceof StoreError || !unreachable(e)) throw e;
      throw new StoreError(
        `cannot reach the state store at ${where(this.opts.url)}: ${(e as Error).message}`,
      );
    }
    this.#opened = true;
    this.#pg.start();
    this.#audit.start();
    this.#house = setInterval(() => void this.#housekeeping(false), HOUSEKEEPING_MS);
    this.log.info("state store open", { server_id: this.serverId, at: where(this.opts.url) });
  }

  /** The store key must open the database's key check (sealed by the first server). */
  async #checkKey(): Promise<void> {
    const box = this.opts.box;
    const sealed = await box.seal(KEY_CHECK, "key check");
    await this.sql`INSERT INTO burrow_meta (name, value) VALUES ('key check', ${sealed})
      ON CONFLICT (name) DO NOTHING`;
    const [row] = await this.sql<{ value: Uint8Array }[]>`
      SELECT value FROM burrow_meta WHERE name = 'key check'`;
    if (!row || await box.open(new Uint8Array(row.value), "key check") !== KEY_CHECK) {
      throw new ConfigError(
        "the store key (BURROW_STORE_KEY or store.key_file) is not the one the state store's " +
          "signing keys are encrypted with",
      );
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#probe);
    clearInterval(this.#house);
    await this.#audit.stop(2000);
    await this.#pg.stop();
    this.#up = false;
    await Promise.all([this.sql.end({ timeout: 1 }), this.#listen.end({ timeout: 1 })]);
  }

  audit(line: AuditLine): void {
    if (this.audits) this.#audit.push(line);
  }

  onChange(fn: (c: StoreChange) => void): () => void {
    this.#changes.add(fn);
    return () => this.#changes.delete(fn);
  }

  /**
   * Run `fn` against the database for `what` (the error names it). Refused
   * at once while the store is down; a failure for want of a connection
   * starts an outage. Either way a StoreError.
   */
  async run<T>(what: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    if (!this.#up) {
      const since = new Date(this.#downSince ?? Date.now()).toISOString();
      throw new StoreError(`cannot ${what}: the state store is unreachable (since ${since})`);
    }
    try {
      return await fn(this.sql);
    } catch (e) {
      if (!unreachable(e)) throw e;
      this.#lost(e);
      throw new StoreError(`cannot ${what}: the state store is unreachable`);
    }
  }

  /** Send notification `n` (within a transaction: at its commit). */
  notify(sql: Sql, n: Omit<Note, "s">): Promise<unknown> {
    const text = JSON.stringify({ s: this.serverId, ...n });
    return sql`SELECT pg_notify('burrow', ${text})`;
  }

  /** The store stopped answering: log it once, refuse writes, probe until it is back. */
  #lost(e: unknown): void {
    if (this.#closing || !this.#opened) return;
    this.#up = false;
    if (this.#downSince !== null) return this.#scheduleProbe(); // the same outage
    this.#downSince = Date.now();
    this.log.warn("state store unreachable", {
      error: e instanceof Error ? e.message : String(e),
      retry_ms: PROBE_MS,
    });
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    clearTimeout(this.#probe);
    this.#probe = setTimeout(() => void this.#tryBack(), PROBE_MS);
  }

  /** LISTEN again, then re-read everything; on failure, try again later. */
  async #tryBack(): Promise<void> {
    if (this.#closing) return;
    try {
      await this.#listen`LISTEN burrow`;
      this.#up = true;
      await this.#pg.resync();
    } catch {
      this.#up = false;
      return this.#scheduleProbe();
    }
    const ms = Date.now() - (this.#downSince ?? Date.now());
    this.#downSince = null;
    this.log.info("state store reachable again", { down_ms: ms });
    this.#emit({ what: "all" });
    void this.#audit.flush();
  }

  #notified(payload: string): void {
    let n: Note;
    try {
      n = JSON.parse(payload) as Note;
    } catch {
      return; // not ours
    }
    if (typeof n !== "object" || n === null || n.s === this.serverId) return;
    if (n.w === "tokens" && Array.isArray(n.ids)) this.#emit({ what: "tokens", ids: n.ids });
    else if (n.w === "keys") this.#emit({ what: "keys" });
    else if (n.w === "presence" || n.w === "servers") this.#pg.notified(n.s, n.w);
  }

  #emit(c: StoreChange): void {
    for (const fn of [...this.#changes]) fn(c);
  }

  async #writeAudit(lines: AuditLine[]): Promise<void> {
    const json = JSON.stringify(
      lines.map((l) => ({ at: l.at, level: l.level, msg: l.msg, fields: l.fields })),
      (_k, v) => typeof v === "string" ? v.replaceAll("\u0000", "\ufffd") : v,
    );
    try {
      await this.run(
        "write audit lines",
        (sql) =>
          sql`INSERT INTO burrow_audit (at, server_id, level, msg, fields)
          SELECT to_timestamp(x.at / 1000.0), ${this.serverId}, x.level, x.msg, x.fields
          FROM json_to_recordset(${json}::text::json) AS x(at float8, level text, msg text, fields jsonb)`,
      );
    } catch (e) {
      if (e instanceof StoreError) throw e; // kept for later
      this.log.error("audit lines refused by the state store", {
        lines: lines.length,
        error: (e as Error).message,
      });
    }
  }

  #auditDropped(first: boolean): void {
    const m = this.#metrics;
    m?.inc("burrow_audit_dropped_total", "Audit lines not written to the state store");
    if (!first) return;
    m?.inc("burrow_limit_hits_total", "Limits that triggered", { limit: "audit_queue" });
    this.log.warn("limit hit", { limit: "audit_queue", max: this.opts.config.auditQueue });
  }

  /** Prune expired tokens (each minute) and old audit lines (at start, then each hour). */
  async #housekeeping(first: boolean): Promise<void> {
    if (!this.#up) return;
    const audit = first || ++this.#houseTicks % 60 === 0;
    const retention = this.opts.config.auditRetention;
    await this.run("prune", async (sql) => {
      await this.tokens.prune(sql);
      if (audit) {
        await sql`DELETE FROM burrow_audit WHERE at < now() - make_interval(secs => ${retention})`;
      }
    }).catch((e) => {
      if (!(e instanceof StoreError)) {
        this.log.error("state store pruning failed", { error: String(e) });
      }
    });
  }

  #gauges(m: Metrics): void {
    m.gauge("burrow_store_up", "Whether the state store answers (1) or not (0)", () => [
      [{ store: "postgres" }, this.#up ? 1 : 0],
    ]);
    m.gauge("burrow_audit_queued", "Audit lines waiting for the state store", () => [
      [{}, this.#audit.size],
    ]);
  }
}
