/**
 * The server's issued tokens (SPEC.md §6.4): signing keys with rotation,
 * issuing, revoking, and the check of a token presented as a password.
 * Keys, the tokens issued and their revocations are kept in one file of the
 * state directory (`tokens.json`, 0600), each token until it expires.
 *
 * @module
 */
import { fromBase64, fromHex, generateKeyPair, randomBytes, toHex } from "../auth.ts";
import { err, ok, type Result } from "../result.ts";
import {
  type IssuedToken,
  keyIdOf,
  parseToken,
  signingData,
  tokenBody,
  type TokenKindName,
  tokenText,
} from "../token.ts";

/** Where the store is kept; absent: in memory only (tests). */
export interface TokenFile {
  read(): Promise<string | null>;
  write(text: string): Promise<void>;
}

/** One issued token as the admin API lists it. */
export interface TokenRecord {
  id: string;
  kind: TokenKindName;
  subject: string;
  keyId: number;
  /** Unix seconds. */
  issuedAt: number;
  expiresAt: number;
  revoked: boolean;
}

/** A person as their last sign-in recorded them (SPEC.md §6.4): their groups. */
export interface PersonRecord {
  subject: string;
  groups: string[];
  /** Unix seconds. */
  signedIn: number;
}

interface KeyRecord {
  id: number;
  publicKey: string;
  privateKey: string;
  /** Unix seconds; a retired key is dropped once `until` has passed. */
  created: number;
  retired: boolean;
  /** The latest expiry of a token it signed. */
  until: number;
}

interface LiveKey {
  record: KeyRecord;
  verify: Promise<CryptoKey>;
  sign: Promise<CryptoKey> | null;
}

/** Why a token was refused (the log's `reason`). */
export type TokenRefusal = "unknown key" | "bad signature" | "expired" | "revoked";

/** A valid token, or why it is refused (with the token, for the log). */
export type TokenCheck = Result<IssuedToken, { reason: TokenRefusal; token: IssuedToken }>;

/** How many verified token texts are remembered (their signature not verified again). */
const REMEMBERED = 4096;

const bs = (u: Uint8Array) => u as Uint8Array<ArrayBuffer>;
const importVerify = (raw: string) =>
  crypto.subtle.importKey("raw", bs(fromBase64(raw)), { name: "Ed25519" }, false, ["verify"]);
const importSign = (pkcs8: string) =>
  crypto.subtle.importKey("pkcs8", bs(fromBase64(pkcs8)), { name: "Ed25519" }, false, ["sign"]);

/** Issued tokens and their keys; see the module doc. */
export class TokenStore {
  readonly #keys = new Map<number, LiveKey>();
  readonly #tokens = new Map<string, TokenRecord>();
  readonly #remembered = new Map<string, IssuedToken>();
  readonly #people = new Map<string, PersonRecord>();
  /** Counts changes to people's groups (cached grant answers go stale). */
  peopleVersion = 0;
  #decoy: Promise<CryptoKey> | undefined;
  #loaded: Promise<void> | undefined;
  #saving: Promise<void> = Promise.resolve();
  /** What closes each open stream, by token id ({@link attach}). */
  readonly #open = new Map<string, Set<() => void>>();
  /** The token of each live stream opened with one. */
  readonly #streams = new Map<number, string>();
  /** Whether a revocation closes the token's open streams (`tokens.revoke_closes_streams`). */
  closeOnRevoke: () => boolean = () => true;

  constructor(
    readonly file: TokenFile | null = null,
    readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  /** Read the file (once). */
  load(): Promise<void> {
    this.#loaded ??= this.#load();
    return this.#loaded;
  }

  async #load(): Promise<void> {
    const text = this.file ? await this.file.read() : null;
    if (text !== null) {
      const data = JSON.parse(text) as {
        keys?: KeyRecord[];
        tokens?: TokenRecord[];
        people?: PersonRecord[];
      };
      for (const k of data.keys ?? []) this.#addKey(k);
      for (const t of data.tokens ?? []) this.#tokens.set(t.id, t);
      for (const p of data.people ?? []) this.#people.set(p.subject, p);
    }
    this.#prune();
  }

  #addKey(record: KeyRecord): void {
    this.#keys.set(record.id, {
      record,
      verify: importVerify(record.publicKey),
      sign: record.retired ? null : importSign(record.privateKey),
    });
  }

  #current(): LiveKey | undefined {
    let cur: LiveKey | undefined;
    for (const k of this.#keys.values()) if (!k.record.retired) cur = k;
    return cur;
  }

  /** A new signing key; the one before signs no more, but is accepted until its tokens expire. */
  async rotate(): Promise<number> {
    await this.load();
    return this.#rotate();
  }

  async #rotate(): Promise<number> {
    const old = this.#current();
    let pair: { publicKey: string; privateKey: string };
    let id: number;
    do {
      pair = await generateKeyPair();
      id = keyIdOf(fromBase64(pair.publicKey));
    } while (this.#keys.has(id));
    if (old) {
      old.record.retired = true;
      old.sign = null;
    }
    this.#addKey({ id, ...pair, created: this.now(), retired: false, until: 0 });
    this.#prune();
    await this.#save();
    return id;
  }

  /**
   * Sign a token for `subject`, valid `ttl` seconds from now. For a person,
   * `groups` are those of this sign-in: they replace what an earlier one
   * recorded (SPEC.md §7.2).
   */
  async issue(
    kind: TokenKindName,
    subject: string,
    ttl: number,
    groups: readonly string[] = [],
  ): Promise<{ id: string; token: string; expiresAt: number }> {
    await this.load();
    // The first key is made when the first token is issued: a server that
    // issues none writes nothing to its state directory.
    const key = this.#current() ?? (await this.#rotate(), this.#current()!);
    const issuedAt = this.now();
    const idBytes = randomBytes(16);
    const body = tokenBody({
      kind,
      keyId: key.record.id,
      id: idBytes,
      issuedAt,
      expiresAt: issuedAt + ttl,
      subject,
    });
    const sig = await crypto.subtle.sign(
      { name: "Ed25519" },
      await key.sign!,
      bs(signingData(body)),
    );
    const id = toHex(idBytes);
    const expiresAt = issuedAt + ttl;
    key.record.until = Math.max(key.record.until, expiresAt);
    this.#tokens.set(id, {
      id,
      kind,
      subject,
      keyId: key.record.id,
      issuedAt,
      expiresAt,
      revoked: false,
    });
    if (kind === "person") {
      this.#people.set(subject, { subject, groups: [...groups], signedIn: issuedAt });
      this.peopleVersion++;
    }
    this.#prune();
    await this.#save();
    return { id, token: tokenText(body, new Uint8Array(sig)), expiresAt };
  }

  /** A person with a live token, as their last sign-in recorded them. */
  person(subject: string): PersonRecord | undefined {
    return this.#people.get(subject);
  }

  /** Tokens not yet expired, oldest first. */
  list(): TokenRecord[] {
    this.#prune();
    return [...this.#tokens.values()].map((t) => ({ ...t }));
  }

  /** Tokens not yet expired and not revoked. */
  get active(): number {
    let n = 0;
    for (const t of this.#tokens.values()) if (!t.revoked && t.expiresAt > this.now()) n++;
    return n;
  }

  /** Revoke the tokens `which` selects; their ids (none: nothing matched). */
  async revoke(which: (t: TokenRecord) => boolean): Promise<string[]> {
    await this.load();
    this.#prune();
    const ids: string[] = [];
    for (const t of this.#tokens.values()) {
      if (!t.revoked && which(t)) {
        t.revoked = true;
        ids.push(t.id);
      }
    }
    if (ids.length === 0) return ids;
    await this.#save();
    if (this.closeOnRevoke()) {
      for (const id of ids) for (const close of this.#open.get(id) ?? []) close();
    }
    return ids;
  }

  /**
   * Open stream `stream` of token `id`, closed by `close` when the token is
   * revoked; returns its detach (when the stream ends).
   */
  attach(id: string, stream: number, close: () => void): () => void {
    let set = this.#open.get(id);
    if (!set) this.#open.set(id, set = new Set());
    set.add(close);
    this.#streams.set(stream, id);
    return () => {
      set.delete(close);
      this.#streams.delete(stream);
      if (set.size === 0 && this.#open.get(id) === set) this.#open.delete(id);
    };
  }

  /** The token a live stream was opened with, if any. */
  tokenOf(stream: number): string | undefined {
    return this.#streams.get(stream);
  }

  /** Who a token is, for audit lines: its id, and a person's groups. */
  who(t: IssuedToken): Record<string, string> {
    const groups = t.kind === "person" ? this.person(t.subject)?.groups : undefined;
    return groups ? { token: t.id, groups: groups.join(",") } : { token: t.id };
  }

  /** Whether the token with this id is revoked. */
  revoked(id: string): boolean {
    return this.#tokens.get(id)?.revoked === true;
  }

  /**
   * Check a token presented as a password; null when `text` is not a token
   * (SPEC.md §6.4). The signature is verified every time a text is new (under
   * a decoy key when the key is unknown), then expiry and revocation are
   * looked up, so each refusal costs the same. Synchronous when the answer
   * is known at once (not a token; a token that passed before).
   */
  check(text: string): TokenCheck | null | Promise<TokenCheck> {
    const known = this.#remembered.get(text);
    if (known) return this.#valid(known, true);
    const t = parseToken(text);
    return t && this.#verify(text, t);
  }

  async #verify(text: string, t: IssuedToken): Promise<TokenCheck> {
    await this.load();
    const key = this.#keys.get(t.keyId);
    const verifyKey = key ? await key.verify : await this.#decoyKey();
    const good = await crypto.subtle.verify(
      { name: "Ed25519" },
      verifyKey,
      bs(t.signature),
      bs(signingData(t.signed)),
    );
    const r = this.#valid(t, good && key !== undefined);
    if (r.ok) this.#remember(text, t);
    return key
      ? (good ? r : err({ reason: "bad signature", token: t }))
      : err({ reason: "unknown key", token: t });
  }

  /** Expiry, revocation and the key, on every use. */
  #valid(t: IssuedToken, signed: boolean): TokenCheck {
    const expired = t.expiresAt <= this.now();
    const revoked = this.revoked(t.id);
    const keyGone = !this.#keys.has(t.keyId);
    if (signed && !expired && !revoked && !keyGone) return ok(t);
    const reason: TokenRefusal = keyGone
      ? "unknown key"
      : !signed
      ? "bad signature"
      : expired
      ? "expired"
      : "revoked";
    return err({ reason, token: t });
  }

  #remember(text: string, t: IssuedToken): void {
    if (this.#remembered.size >= REMEMBERED) {
      this.#remembered.delete(this.#remembered.keys().next().value!);
    }
    this.#remembered.set(text, t);
  }

  #decoyKey(): Promise<CryptoKey> {
    this.#decoy ??= generateKeyPair().then((k) => importVerify(k.publicKey));
    return this.#decoy;
  }

  /** Drop expired tokens, and retired keys whose tokens have all expired. */
  #prune(): void {
    const now = this.now();
    for (const [id, t] of this.#tokens) if (t.expiresAt <= now) this.#tokens.delete(id);
    for (const [id, k] of this.#keys) {
      if (k.record.retired && k.record.until <= now) this.#keys.delete(id);
    }
    const live = new Set<string>();
    for (const t of this.#tokens.values()) if (t.kind === "person") live.add(t.subject);
    for (const p of this.#people.keys()) {
      if (!live.has(p)) {
        this.#people.delete(p);
        this.peopleVersion++;
      }
    }
    for (const [text, t] of this.#remembered) {
      if (t.expiresAt <= now || !this.#keys.has(t.keyId)) this.#remembered.delete(text);
    }
  }

  /** Write what is now; writes happen one after the other, in order. */
  #save(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const keys = [...this.#keys.values()].map((k) => k.record);
    const data = { keys, tokens: [...this.#tokens.values()], people: [...this.#people.values()] };
    const text = JSON.stringify(data, null, 1) + "\n";
    const done = this.#saving.then(() => file.write(text));
    this.#saving = done.catch(() => {});
    return done;
  }
}

/** A token id as the admin API and the CLI take it: 32 hex digits, or null. */
export function tokenId(s: string): string | null {
  return s.length === 32 && fromHex(s) ? s.toLowerCase() : null;
}

/** A token as the admin API and the dashboard show it (never its text). */
export function tokenView(t: TokenRecord): TokenView {
  const iso = (s: number) => new Date(s * 1000).toISOString();
  return {
    id: t.id,
    kind: t.kind,
    subject: t.subject,
    issued_at: iso(t.issuedAt),
    expires_at: iso(t.expiresAt),
    revoked: t.revoked,
    key_id: t.keyId.toString(16).padStart(8, "0"),
  };
}

export interface TokenView {
  id: string;
  kind: TokenKindName;
  subject: string;
  issued_at: string;
  expires_at: string;
  revoked: boolean;
  key_id: string;
}
