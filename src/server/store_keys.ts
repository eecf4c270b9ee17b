/**
 * Signing keys at rest in the PostgreSQL store (SPEC.md §11.2): each
 * private key is sealed with AES-256-GCM (WebCrypto) under the store key,
 * 32 bytes from `BURROW_STORE_KEY` or `store.key_file` (64 hex digits or
 * base64, e.g. `openssl rand -base64 32`). A sealed value is a fresh 12-byte
 * IV followed by the ciphertext and its tag; the additional data names what
 * it is (`signing key <id>`), so a sealed value moved to another row does
 * not open. A known text sealed once per database (`key check`) tells a
 * wrong store key at start, before any key is needed.
 *
 * @module
 */
import { fromBase64, fromHex, randomBytes } from "../auth.ts";
import { ConfigError } from "../errors.ts";

const bs = (u: Uint8Array) => u as Uint8Array<ArrayBuffer>;
const enc = new TextEncoder();

/** The text sealed under the name `key check`. */
export const KEY_CHECK = "burrow state store key check v1";

/** Seals and opens values under the store key. */
export class KeyBox {
  private constructor(readonly key: CryptoKey) {}

  /** The store key from its text (`where` names it in the error); a ConfigError when malformed. */
  static async from(text: string, where: string): Promise<KeyBox> {
    const t = text.trim();
    let raw: Uint8Array | null = /^[0-9a-fA-F]{64}$/.test(t) ? fromHex(t) : null;
    if (raw === null) {
      try {
        raw = fromBase64(t);
      } catch {
        raw = null;
      }
    }
    if (raw === null || raw.length !== 32) {
      throw new ConfigError(
        `${where}: the store key must be 32 bytes, as 64 hex digits or base64 ` +
          "(openssl rand -base64 32)",
      );
    }
    const key = await crypto.subtle.importKey("raw", bs(raw), "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new KeyBox(key);
  }

  /** `text` sealed for `name`: IV || ciphertext || tag. */
  async seal(text: string, name: string): Promise<Uint8Array> {
    const iv = randomBytes(12);
    const ct = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: bs(iv), additionalData: enc.encode(name) },
      this.key,
      enc.encode(text),
    );
    const out = new Uint8Array(12 + ct.byteLength);
    out.set(iv);
    out.set(new Uint8Array(ct), 12);
    return out;
  }

  /** What {@link seal} sealed for `name`, or null (another key, another name, or damaged). */
  async open(sealed: Uint8Array, name: string): Promise<string | null> {
    if (sealed.length < 12 + 16) return null;
    try {
      const pt = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bs(sealed.slice(0, 12)), additionalData: enc.encode(name) },
        this.key,
        bs(sealed.slice(12)),
      );
      return new TextDecoder().decode(pt);
    } catch {
      return null;
    }
  }
}
