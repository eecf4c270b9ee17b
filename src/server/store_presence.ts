/**
 * Presence in the PostgreSQL store (store.ts {@link Presence}): this
 * server's lease in `burrow_servers` (renewed every `renewMs`, expiring
 * `ttlMs` after the last renewal, by the database's clock) and its agent
 * sessions in `burrow_sessions`, a row written when a session starts and
 * deleted when it ends: changes made in the same {@link FLUSH_MS} go in one
 * transaction, and an idle session costs nothing. Each write tells the
 * other servers (NOTIFY `presence`), which re-read this server's rows.
 * Each renewal also reads the live leases: a server whose lease expired
 * (killed, cut off) drops out with its sessions, and expired leases are
 * deleted (their sessions with them). After an outage, or when its lease
 * was taken away, a server writes its lease and sessions anew and re-reads
 * everyone's.
 *
 * @module
 */
import type { Sql } from "postgres";
import { StoreError } from "../errors.ts";
import type { LocalChange, PresenceMap, PresenceSession, Remote } from "./presence.ts";
import type { PgStore } from "./store_pg.ts";

/** How long changes to this server's sessions gather before they are written, ms. */
export const FLUSH_MS = 50;
/** Expired leases are deleted every this many renewals. */
const CLEAN_EVERY = 5;

/** A session row as read: its start in ms since the epoch (a float8: a number to postgres.js). */
interface SessionRow {
  session: string;
  agent: string;
  since: number;
}

/** Sessions to write, from session key → agent and start. */
function rows(m: Map<string, PresenceSession>): Array<{ session: string } & PresenceSession> {
  return [...m].map(([session, x]) => ({ session, agent: x.agent, since: x.since }));
}

/** Insert `sessions` of server `id`, their start as given (kept across a resync). */
async function insertSessions(
  tx: Sql,
  id: string,
  sessions: Array<{ session: string } & PresenceSession>,
): Promise<void> {
  await tx`INSERT INTO burrow_sessions (server_id, session, agent, since)
    SELECT ${id}, x.session, x.agent, to_timestamp(x.since / 1000.0)
    FROM json_to_recordset(${JSON.stringify(sessions)}::text::json)
      AS x(session text, agent text, since float8)
    ON CONFLICT DO NOTHING`;
}

/** Writes this server's presence and reads everyone's; see the module doc. */
export class PgPresence {
  #timer: ReturnType<typeof setInterval> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #ticks = 0;
  /** Sessions started (session → agent and start) and ended since the last write. */
  #ups = new Map<string, PresenceSession>();
  #downs = new Set<string>();
  #leaseDirty = false;
  #stopped = false;
  /** Writes go one after the other, so a session's end is never written before its start. */
  #writing: Promise<unknown> = Promise.resolve();

  constructor(
    readonly store: PgStore,
    readonly map: PresenceMap,
    readonly renewMs: number,
    readonly ttlMs: number,
  ) {
    map.onLocal = (c) => this.#local(c);
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.#tick(), this.renewMs);
  }

  /** Give up the lease (and so the sessions): the other servers see it at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    if (!this.store.up) return;
    await this.store.run("give up the lease", (sql) =>
      sql.begin(async (tx) => {
        await tx`DELETE FROM burrow_servers WHERE id = ${this.map.serverId}`;
        await this.store.notify(tx as unknown as Sql, { w: "servers" });
      })).catch(() => {});
  }

  #local(c: LocalChange): void {
    if (c.what === "up") {
      this.#downs.delete(c.session);
      this.#ups.set(c.session, { agent: c.agent, since: c.since });
    } else if (c.what === "down") {
      if (!this.#ups.delete(c.session)) this.#downs.add(c.session);
    } else {
      this.#leaseDirty = true;
    }
    this.#soon ??= setTimeout(() => {
      this.#soon = undefined;
      void this.#serial(() => this.#flush());
    }, FLUSH_MS);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const done = this.#writing.then(fn);
    this.#writing = done.catch(() => {});
    return done;
  }

  /** Write the sessions that started and ended; while down, {@link resync} writes them later. */
  async #flush(): Promise<void> {
    if (!this.store.up || this.#stopped) return;
    const ups = rows(this.#ups);
    const downs = [...this.#downs];
    const lease = this.#leaseDirty;
    this.#ups = new Map();
    this.#downs = new Set();
    this.#leaseDirty = false;
    const id = this.map.serverId;
    await this.store.run("write presence", (sql) =>
      sql.begin(async (tx) => {
        if (lease) {
          await tx`UPDATE burrow_servers SET advertise = ${this.map.address} WHERE id = ${id}`;
        }
        if (ups.length > 0) await insertSessions(tx as unknown as Sql, id, ups);
        if (downs.length > 0) {
          await tx`DELETE FROM burrow_sessions WHERE server_id = ${id}
            AND session IN ${tx(downs)}`;
        }
        await this.store.notify(tx as unknown as Sql, { w: lease ? "servers" : "presence" });
      })).catch((e) => {
        // An outage: resync writes everything when the store is back.
        if (!(e instanceof StoreError)) {
          this.store.log.error("presence write failed", { error: String(e) });
        }
      });
  }

  /**
   * Write this server's lease and sessions anew, then read every live
   * server's (at start, after an outage, or when the lease was lost).
   */
  resync(): Promise<void> {
    return this.#serial(() => this.#resync());
  }

  async #resync(): Promise<void> {
    const id = this.map.serverId;
    this.#ups = new Map();
    this.#downs = new Set();
    this.#leaseDirty = false;
    const local = rows(this.map.local);
    await this.store.run("write presence", (sql) =>
      sql.begin(async (tx) => {
        await tx`INSERT INTO burrow_servers (id, advertise, expires)
          VALUES (${id}, ${this.map.address}, now() + make_interval(secs => ${this.ttlMs / 1000}))
          ON CONFLICT (id) DO UPDATE SET advertise = EXCLUDED.advertise,
            expires = EXCLUDED.expires`;
        await tx`DELETE FROM burrow_sessions WHERE server_id = ${id}`;
        if (local.length > 0) await insertSessions(tx as unknown as Sql, id, local);
        await this.store.notify(tx as unknown as Sql, { w: "servers" });
      }));
    await this.#readAll();
  }

  /** Every live server and its sessions, replacing what was known. */
  async #readAll(): Promise<void> {
    const all = await this.store.run("read presence", async (sql) => {
      const servers = await sql<{ id: string; advertise: string | null }[]>`
        SELECT id, advertise FROM burrow_servers WHERE expires > now()`;
      const sessions = await sql<(SessionRow & { server_id: string })[]>`
        SELECT s.server_id, s.session, s.agent, (extract(epoch FROM s.since) * 1000)::float8 AS since
        FROM burrow_sessions s JOIN burrow_servers v ON v.id = s.server_id WHERE v.expires > now()`;
      const m = new Map<string, Remote>();
      for (const s of servers) m.set(s.id, { advertise: s.advertise, sessions: new Map() });
      for (const s of sessions) {
        m.get(s.server_id)?.sessions.set(s.session, { agent: s.agent, since: s.since });
      }
      return m;
    });
    this.map.replaceRemotes(all);
  }

  /** Another server's sessions (it told us they changed), or the live leases. */
  notified(server: string, what: "presence" | "servers"): void {
    if (!this.store.up) return;
    // A lease that changed may come with sessions that changed: read the sender's too.
    const work = what === "servers"
      ? this.#readLeases().then(() => this.#readServer(server))
      : this.#readServer(server);
    work.catch(() => {}); // an outage: resync re-reads everything
  }

  async #readServer(server: string): Promise<void> {
    if (server === this.map.serverId) return;
    const r = await this.store.run("read presence", async (sql) => {
      const [lease] = await sql<{ advertise: string | null }[]>`
        SELECT advertise FROM burrow_servers WHERE id = ${server} AND expires > now()`;
      if (!lease) return null;
      const rows = await sql<SessionRow[]>`
        SELECT session, agent, (extract(epoch FROM since) * 1000)::float8 AS since
        FROM burrow_sessions WHERE server_id = ${server}`;
      return {
        advertise: lease.advertise,
        sessions: new Map(rows.map((x) => [x.session, { agent: x.agent, since: x.since }])),
      };
    });
    if (r) this.map.setRemote(server, r.advertise, r.sessions);
    else this.map.dropRemote(server);
  }

  /** The live leases: servers gone are dropped, new ones read with their sessions. */
  async #readLeases(): Promise<void> {
    const live = await this.store.run(
      "read presence",
      (sql) =>
        sql<{ id: string; advertise: string | null }[]>`
        SELECT id, advertise FROM burrow_servers WHERE expires > now()`,
    );
    const ids = new Set(live.map((s) => s.id));
    for (const id of this.map.remotes()) if (!ids.has(id)) this.map.dropRemote(id);
    const known = new Set(this.map.remotes());
    for (const s of live) {
      if (s.id === this.map.serverId) continue;
      if (known.has(s.id)) this.map.setRemote(s.id, s.advertise);
      else await this.#readServer(s.id);
    }
  }

  /** Renew the lease (lost: write everything anew), read the leases, now and then clean. */
  async #tick(): Promise<void> {
    if (!this.store.up || this.#stopped) return;
    const id = this.map.serverId;
    const clean = ++this.#ticks % CLEAN_EVERY === 0;
    try {
      const renewed = await this.store.run("renew the lease", async (sql) => {
        const r = await sql`UPDATE burrow_servers
          SET expires = now() + make_interval(secs => ${this.ttlMs / 1000})
          WHERE id = ${id} RETURNING id`;
        if (clean) await sql`DELETE FROM burrow_servers WHERE expires < now()`;
        return r.length > 0;
      });
      if (!renewed) {
        this.store.log.warn("presence lease was lost; writing it again", { server_id: id });
        await this.#serial(() => this.#resync());
      } else {
        await this.#readLeases();
      }
    } catch (e) {
      if (!(e instanceof StoreError)) {
        this.store.log.error("presence renewal failed", { error: String(e) });
      }
    }
  }
}
