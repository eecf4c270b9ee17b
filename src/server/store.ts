/**
 * The state store (README "A fleet of servers"; SPEC.md §11.2): what a
 * server keeps beyond its config and shares with the other servers of a
 * fleet. One interface, two implementations:
 *
 * - the embedded store (store_file.ts, the default): issued tokens, their
 *   revocations and the signing keys in `state_dir/tokens.json` (0600);
 *   presence is this server's own; the audit log is the log. One server
 *   needs nothing more.
 * - PostgreSQL (store_pg.ts, `store: {postgres: …}`): the same tables for
 *   every server of the fleet, versioned schema migrations applied at start
 *   (store_schema.ts), signing keys encrypted at rest (store_keys.ts),
 *   presence leases (store_presence.ts), the audit log in batches
 *   (store_audit.ts), and every change announced to every server at once by
 *   LISTEN/NOTIFY; after a reconnect each server re-reads the tables
 *   (NOTIFY has no replay).
 *
 * A server serves from memory: what it read at start and what changes tell
 * it. While the store is unreachable ({@link Store.up} false) streams that
 * policy already allows go on; what must be written (issuing a token,
 * revoking one, rotating the key) is refused with a {@link StoreError}; the
 * outage is logged once, and the server catches up when the store is back.
 *
 * **Presence** ({@link Presence}) is how servers find agents and each other:
 * one lease per server (its id, its peer address, an expiry renewed every
 * `store.lease_renew`, 2 s, and lasting `store.lease`, 10 s), and one row
 * per agent session (its agent, its start), written only when
 * the session starts or ends. Readers see only live leases; a server that
 * died (kill -9) drops out when its lease expires, its sessions with it.
 *
 * @module
 */
import type { Fields, Level, Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { KeyRecord, PersonRecord, TokenRecord } from "./tokens.ts";

/** Issued tokens, the people they name, and the signing keys (private keys in clear, in memory). */
export interface TokenData {
  keys: KeyRecord[];
  tokens: TokenRecord[];
  people: PersonRecord[];
}

/** Tokens and keys as the store keeps them; every write is refused with a StoreError when down. */
export interface TokenTable {
  /** Everything not yet expired. */
  load(): Promise<TokenData>;
  /** The tokens with these ids and the people they name (`keys` empty). */
  get(ids: readonly string[]): Promise<TokenData>;
  /** The signing keys. */
  keys(): Promise<KeyRecord[]>;
  /**
   * Add signing key `key`. `rotate`: it becomes the current key and the
   * others retire. Otherwise it is added only if there is no current key
   * (the first key; another server may have made one at the same time).
   * Resolves with the keys now.
   */
  addKey(key: KeyRecord, rotate: boolean): Promise<KeyRecord[]>;
  /** Record a token just issued (and, for a person, their sign-in). */
  issued(token: TokenRecord, person: PersonRecord | null): Promise<void>;
  /** Mark these tokens revoked. */
  revoked(ids: readonly string[]): Promise<void>;
}

/** A change another server made, or `all` after a reconnect (re-read everything). */
export type StoreChange =
  | { what: "tokens"; ids: string[] }
  | { what: "keys" }
  | { what: "all" };

/** A live server of the fleet. */
export interface LiveServer {
  /** Its id: random per process start (hex). */
  id: string;
  /** Where other servers reach it (`peer.advertise`, host:port), or null. */
  advertise: string | null;
}

/** One session of an agent, on a live server. */
export interface AgentPlace {
  /** The id of the server holding the session. */
  server: string;
  /** That server's peer address, or null. */
  advertise: string | null;
  /** The session's key (hex, SPEC.md §2.1), unique per server. */
  session: string;
  /** When it started, ms since the epoch (the holding server's clock). */
  since: number;
}

/**
 * Where agents are. Reads are synchronous, from memory, kept current by the
 * store (at once for changes announced by NOTIFY; lease expiry within one
 * renewal). This server's own entries are current at once.
 */
export interface Presence {
  /** This server's id in the fleet (random per start). */
  readonly serverId: string;
  /** The live servers, this one included, by id order. */
  servers(): readonly LiveServer[];
  /** Each agent with a session on a live server: its sessions, this server's first. */
  agents(): ReadonlyMap<string, readonly AgentPlace[]>;
  /** Calls `fn` after {@link servers} or {@link agents} changed; returns the unsubscribe. */
  onChange(fn: () => void): () => void;
  /** Set this server's peer address (null: none); renewed with the lease. */
  advertise(addr: string | null): void;
  /** A session of agent `agent` started here (written once, in a batch). */
  up(agent: string, session: string): void;
  /** That session ended. */
  down(agent: string, session: string): void;
}

/** One line of the audit log. */
export interface AuditLine {
  /** ms since the epoch. */
  at: number;
  level: Level;
  msg: string;
  fields: Fields;
}

/** What a store uses of its server. */
export interface StoreContext {
  log: Logger;
  metrics: Metrics;
}

/** The state store; see the module doc. */
export interface Store {
  readonly kind: "file" | "postgres";
  /**
   * Connect, migrate, check the key that encrypts signing keys, take the
   * lease. A ConfigError when the key is missing or wrong, a StoreError
   * when the store cannot be reached.
   */
  open(ctx?: StoreContext): Promise<void>;
  /** Flush the audit queue (bounded in time), give up the lease, disconnect. */
  close(): Promise<void>;
  /** Whether the store answers now (false during an outage). */
  readonly up: boolean;
  readonly tokens: TokenTable;
  readonly presence: Presence;
  /** Whether {@link audit} keeps lines (the PostgreSQL store with `store.audit`). */
  readonly audits: boolean;
  /** Queue an audit line; never waits, never throws. */
  audit(line: AuditLine): void;
  /** Calls `fn` for each change made elsewhere; returns the unsubscribe. */
  onChange(fn: (c: StoreChange) => void): () => void;
}
