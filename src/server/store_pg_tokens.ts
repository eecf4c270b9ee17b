/**
 * Tokens and signing keys in the PostgreSQL store (store_pg.ts): the
 * tables `burrow_tokens`, `burrow_people` and `burrow_keys`, private keys
 * sealed by the store key (store_keys.ts). Each write sends its NOTIFY in
 * its transaction; a new key is added under an advisory lock, so servers
 * issuing their first token at once agree on one key.
 *
 * @module
 */
import type { Sql } from "postgres";
import { StoreError } from "../errors.ts";
import type { KeyBox } from "./store_keys.ts";
import type { PgStore } from "./store_pg.ts";
import type { TokenData, TokenTable } from "./store.ts";
import type { KeyRecord, PersonRecord, TokenRecord } from "./tokens.ts";

/** The advisory lock that serialises key changes. */
const KEY_LOCK = 0x6275_7272_6f78;
/** Token ids per NOTIFY (its payload is at most 8000 bytes). */
const IDS_PER_NOTE = 100;

interface TokenRow {
  id: string;
  kind: TokenRecord["kind"];
  subject: string;
  key_id: string;
  issued_at: string;
  expires_at: string;
  revoked: boolean;
}

interface KeyRow {
  id: string;
  public_key: string;
  private_key: Uint8Array;
  created: string;
  retired: boolean;
  until: string;
}

const now = () => Math.floor(Date.now() / 1000);
const keyName = (id: number) => `signing key ${id}`;

function token(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    kind: r.kind,
    subject: r.subject,
    keyId: Number(r.key_id),
    issuedAt: Number(r.issued_at),
    expiresAt: Number(r.expires_at),
    revoked: r.revoked,
  };
}

function person(r: { subject: string; groups: unknown; signed_in: string }): PersonRecord {
  const groups = Array.isArray(r.groups) ? r.groups.filter((g) => typeof g === "string") : [];
  return { subject: r.subject, groups, signedIn: Number(r.signed_in) };
}

/** Tokens and keys in PostgreSQL; see the module doc. */
export class PgTokens implements TokenTable {
  constructor(readonly store: PgStore, readonly box: KeyBox) {}

  load(): Promise<TokenData> {
    return this.store.run("read the tokens", async (sql) => {
      const t = now();
      const tokens = await sql<TokenRow[]>`SELECT * FROM burrow_tokens WHERE expires_at > ${t}
        ORDER BY issued_at, id`;
      const people = await sql<Parameters<typeof person>[0][]>`SELECT * FROM burrow_people`;
      return { keys: await this.#keys(sql), tokens: tokens.map(token), people: people.map(person) };
    });
  }

  get(ids: readonly string[]): Promise<TokenData> {
    if (ids.length === 0) return Promise.resolve({ keys: [], tokens: [], people: [] });
    return this.store.run("read tokens", async (sql) => {
      const tokens = (await sql<TokenRow[]>`SELECT * FROM burrow_tokens
        WHERE id IN ${sql(ids as string[])}`).map(token);
      const subjects = [
        ...new Set(tokens.filter((x) => x.kind === "person").map((x) => x.subject)),
      ];
      const people = subjects.length === 0 ? [] : await sql<Parameters<typeof person>[0][]>`
        SELECT * FROM burrow_people WHERE subject IN ${sql(subjects)}`;
      return { keys: [], tokens, people: people.map(person) };
    });
  }

  keys(): Promise<KeyRecord[]> {
    return this.store.run("read the signing keys", (sql) => this.#keys(sql));
  }

  /** Every key, opened with the store key; a StoreError if one does not open. */
  async #keys(sql: Sql): Promise<KeyRecord[]> {
    const rows = await sql<KeyRow[]>`SELECT * FROM burrow_keys ORDER BY created, id`;
    const out: KeyRecord[] = [];
    for (const r of rows) {
      const id = Number(r.id);
      const privateKey = await this.box.open(new Uint8Array(r.private_key), keyName(id));
      if (privateKey === null) {
        throw new StoreError(
          `signing key ${id} in the state store does not open with the store key`,
        );
      }
      out.push({
        id,
        publicKey: r.public_key,
        privateKey,
        created: Number(r.created),
        retired: r.retired,
        until: Number(r.until),
      });
    }
    return out;
  }

  async addKey(key: KeyRecord, rotate: boolean): Promise<KeyRecord[]> {
    const sealed = await this.box.seal(key.privateKey, keyName(key.id));
    return this.store.run("rotate the signing key", (sql) =>
      sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${KEY_LOCK})`;
        const current = await tx`SELECT id FROM burrow_keys WHERE NOT retired LIMIT 1`;
        if (rotate || current.length === 0) {
          if (rotate) await tx`UPDATE burrow_keys SET retired = true WHERE NOT retired`;
          await tx`INSERT INTO burrow_keys (id, public_key, private_key, created, retired, until)
            VALUES (${key.id}, ${key.publicKey}, ${sealed}, ${key.created}, false, 0)
            ON CONFLICT (id) DO NOTHING`;
          await this.store.notify(tx as unknown as Sql, { w: "keys" });
        }
        return this.#keys(tx as unknown as Sql);
      }) as Promise<KeyRecord[]>);
  }

  issued(t: TokenRecord, p: PersonRecord | null): Promise<void> {
    return this.store.run("issue a token", async (sql) => {
      await sql.begin(async (tx) => {
        await tx`INSERT INTO burrow_tokens
          (id, kind, subject, key_id, issued_at, expires_at, revoked)
          VALUES (${t.id}, ${t.kind}, ${t.subject}, ${t.keyId}, ${t.issuedAt}, ${t.expiresAt}, false)`;
        await tx`UPDATE burrow_keys SET until = GREATEST(until, ${t.expiresAt}) WHERE id = ${t.keyId}`;
        if (p) {
          await tx`INSERT INTO burrow_people (subject, groups, signed_in)
            VALUES (${p.subject}, ${JSON.stringify(p.groups)}::text::jsonb, ${p.signedIn})
            ON CONFLICT (subject) DO UPDATE SET groups = EXCLUDED.groups,
              signed_in = EXCLUDED.signed_in`;
        }
        await this.store.notify(tx as unknown as Sql, { w: "tokens", ids: [t.id] });
      });
    });
  }

  revoked(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.store.run("revoke a token", async (sql) => {
      await sql.begin(async (tx) => {
        await tx`UPDATE burrow_tokens SET revoked = true WHERE id IN ${tx(ids as string[])}`;
        for (let i = 0; i < ids.length; i += IDS_PER_NOTE) {
          const part = ids.slice(i, i + IDS_PER_NOTE);
          await this.store.notify(tx as unknown as Sql, { w: "tokens", ids: part });
        }
      });
    });
  }

  /** Drop expired tokens, people without a live token, retired keys past their last token. */
  async prune(sql: Sql): Promise<void> {
    const t = now();
    await sql`DELETE FROM burrow_tokens WHERE expires_at <= ${t}`;
    await sql`DELETE FROM burrow_people p WHERE NOT EXISTS (SELECT 1 FROM burrow_tokens t
      WHERE t.kind = 'person' AND t.subject = p.subject)`;
    await sql`DELETE FROM burrow_keys WHERE retired AND until <= ${t}`;
  }
}
