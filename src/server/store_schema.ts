/**
 * The PostgreSQL store's schema (store_pg.ts): numbered migrations, applied
 * in order at start, each once, recorded in `burrow_schema_migrations`.
 * They run in one transaction under an advisory lock, so servers starting
 * at once apply each migration exactly once and all start on the same
 * schema. A migration is never edited once released: a change is a new one.
 *
 * @module
 */
import type { Sql } from "postgres";
import { StoreError } from "../errors.ts";

/** The advisory lock that serialises migrations (any constant unique to burrow). */
const MIGRATION_LOCK = 0x6275_7272_6f77; // "burrow"

/** The migrations, by version. Every table is prefixed `burrow_`. */
export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE burrow_meta (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE burrow_keys (
  id bigint PRIMARY KEY,
  public_key text NOT NULL,
  private_key bytea NOT NULL,
  created bigint NOT NULL,
  retired boolean NOT NULL DEFAULT false,
  until bigint NOT NULL DEFAULT 0
);
CREATE TABLE burrow_tokens (
  id text PRIMARY KEY,
  kind text NOT NULL,
  subject text NOT NULL,
  key_id bigint NOT NULL,
  issued_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  revoked boolean NOT NULL DEFAULT false
);
CREATE INDEX burrow_tokens_expires ON burrow_tokens (expires_at);
CREATE TABLE burrow_people (
  subject text PRIMARY KEY,
  groups jsonb NOT NULL,
  signed_in bigint NOT NULL
);
CREATE TABLE burrow_servers (
  id text PRIMARY KEY,
  advertise text,
  started timestamptz NOT NULL DEFAULT now(),
  expires timestamptz NOT NULL
);
CREATE TABLE burrow_sessions (
  server_id text NOT NULL REFERENCES burrow_servers (id) ON DELETE CASCADE,
  session text NOT NULL,
  agent text NOT NULL,
  since timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (server_id, session)
);
CREATE TABLE burrow_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL,
  server_id text NOT NULL,
  level text NOT NULL,
  msg text NOT NULL,
  fields jsonb NOT NULL
);
CREATE INDEX burrow_audit_at ON burrow_audit (at);
`,
  },
];

/** Apply the migrations not yet applied; resolves with those applied now. */
export async function migrate(sql: Sql): Promise<number[]> {
  const known = Math.max(...MIGRATIONS.map((m) => m.version));
  return await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS burrow_schema_migrations (
      version integer PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now())`;
    const rows = await tx<{ version: number }[]>`SELECT version FROM burrow_schema_migrations`;
    const done = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...done);
    if (newest > known) {
      throw new StoreError(
        `the store's schema is version ${newest}, newer than this burrow knows (${known}): ` +
          "upgrade burrow on this server",
      );
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await tx.unsafe(m.sql);
      await tx`INSERT INTO burrow_schema_migrations (version) VALUES (${m.version})`;
      applied.push(m.version);
    }
    return applied;
  });
}
