/**
 * The embedded state store (store.ts), the default: issued tokens, their
 * revocations, the people they name and the signing keys in one file of
 * the state directory (`tokens.json`, 0600), each token until it expires;
 * presence is this server's alone; the audit log is the log. Without a file
 * (tests) everything stays in memory.
 *
 * @module
 */
import { PresenceMap } from "./presence.ts";
import type { Store, StoreChange, TokenData, TokenTable } from "./store.ts";
import type { KeyRecord, PersonRecord, TokenRecord } from "./tokens.ts";

/** Where the embedded store keeps its file; absent: in memory only (tests). */
export interface TokenFile {
  read(): Promise<string | null>;
  write(text: string): Promise<void>;
}

const copyKey = (k: KeyRecord): KeyRecord => ({ ...k });
const copyPerson = (p: PersonRecord): PersonRecord => ({ ...p, groups: [...p.groups] });

/** Tokens and keys in one JSON file, rewritten whole at each change. */
class FileTokens implements TokenTable {
  readonly #keys = new Map<number, KeyRecord>();
  readonly #tokens = new Map<string, TokenRecord>();
  readonly #people = new Map<string, PersonRecord>();
  #loaded: Promise<void> | undefined;
  #saving: Promise<void> = Promise.resolve();

  constructor(readonly file: TokenFile | null, readonly now: () => number) {}

  #load(): Promise<void> {
    this.#loaded ??= (async () => {
      const text = this.file ? await this.file.read() : null;
      if (text === null) return;
      const data = JSON.parse(text) as Partial<TokenData>;
      for (const k of data.keys ?? []) this.#keys.set(k.id, k);
      for (const t of data.tokens ?? []) this.#tokens.set(t.id, t);
      for (const p of data.people ?? []) this.#people.set(p.subject, p);
    })();
    return this.#loaded;
  }

  async load(): Promise<TokenData> {
    await this.#load();
    this.#prune();
    return {
      keys: [...this.#keys.values()].map(copyKey),
      tokens: [...this.#tokens.values()].map((t) => ({ ...t })),
      people: [...this.#people.values()].map(copyPerson),
    };
  }

  async get(ids: readonly string[]): Promise<TokenData> {
    await this.#load();
    const tokens = ids.flatMap((id) => {
      const t = this.#tokens.get(id);
      return t ? [{ ...t }] : [];
    });
    const people = tokens.flatMap((t) => {
      const p = t.kind === "person" ? this.#people.get(t.subject) : undefined;
      return p ? [copyPerson(p)] : [];
    });
    return { keys: [], tokens, people };
  }

  async keys(): Promise<KeyRecord[]> {
    await this.#load();
    return [...this.#keys.values()].map(copyKey);
  }

  async addKey(key: KeyRecord, rotate: boolean): Promise<KeyRecord[]> {
    await this.#load();
    const current = [...this.#keys.values()].some((k) => !k.retired);
    if (rotate || !current) {
      if (rotate) { for (const k of this.#keys.values()) k.retired = true; }
      this.#keys.set(key.id, copyKey(key));
      this.#prune();
      await this.#save();
    }
    return this.keys();
  }

  async issued(token: TokenRecord, person: PersonRecord | null): Promise<void> {
    await this.#load();
    this.#tokens.set(token.id, { ...token });
    const key = this.#keys.get(token.keyId);
    if (key) key.until = Math.max(key.until, token.expiresAt);
    if (person) this.#people.set(person.subject, copyPerson(person));
    this.#prune();
    await this.#save();
  }

  async revoked(ids: readonly string[]): Promise<void> {
    await this.#load();
    for (const id of ids) {
      const t = this.#tokens.get(id);
      if (t) t.revoked = true;
    }
    this.#prune();
    await this.#save();
  }

  /** Drop expired tokens, retired keys whose tokens have all expired, people without a token. */
  #prune(): void {
    const now = this.now();
    for (const [id, t] of this.#tokens) if (t.expiresAt <= now) this.#tokens.delete(id);
    for (const [id, k] of this.#keys) if (k.retired && k.until <= now) this.#keys.delete(id);
    const live = new Set<string>();
    for (const t of this.#tokens.values()) if (t.kind === "person") live.add(t.subject);
    for (const p of this.#people.keys()) if (!live.has(p)) this.#people.delete(p);
  }

  /** Write what is now; writes happen one after the other, in order. */
  #save(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const data = {
      keys: [...this.#keys.values()],
      tokens: [...this.#tokens.values()],
      people: [...this.#people.values()],
    };
    const text = JSON.stringify(data, null, 1) + "\n";
    const done = this.#saving.then(() => file.write(text));
    this.#saving = done.catch(() => {});
    return done;
  }
}

/** The embedded store; see the module doc. */
export class FileStore implements Store {
  readonly kind = "file";
  readonly up = true;
  readonly audits = false;
  readonly tokens: FileTokens;
  readonly presence: PresenceMap = new PresenceMap();

  constructor(
    file: TokenFile | null = null,
    now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.tokens = new FileTokens(file, now);
  }

  async open(): Promise<void> {}
  async close(): Promise<void> {}
  audit(): void {}
  onChange(_fn: (c: StoreChange) => void): () => void {
    return () => {}; // nothing changes elsewhere
  }
}
