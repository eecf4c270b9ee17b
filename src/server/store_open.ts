/**
 * The state store a server's config asks for (store.ts): the embedded one
 * in `state_dir`, or PostgreSQL with its password and the store key. The
 * PostgreSQL client is loaded only when it is used.
 *
 * @module
 */
import type { ServerConfig } from "../config/mod.ts";
import { ConfigError } from "../errors.ts";
import { FileStore, type TokenFile } from "./store_file.ts";
import { KeyBox } from "./store_keys.ts";
import type { Store } from "./store.ts";

/** What making a store reads from its host. */
export interface StoreHost {
  readTextFile(path: string): Promise<string>;
  env(name: string): string | undefined;
  /** The embedded store's file (`state_dir/tokens.json`). */
  tokenFile: TokenFile;
}

/** The environment variable that holds the store key when `store.key_file` is not set. */
export const STORE_KEY_ENV = "BURROW_STORE_KEY";

/**
 * The store `config.store` names, not yet open. A ConfigError when the
 * store key is missing or malformed, or a credential file cannot be read.
 */
export async function storeFor(config: ServerConfig, host: StoreHost): Promise<Store> {
  const s = config.store;
  if (s.postgres === null) return new FileStore(host.tokenFile);
  const read = async (path: string, key: string) => {
    try {
      return (await host.readTextFile(path)).trim();
    } catch (e) {
      throw new ConfigError(`${key}: cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const keyText = s.keyFile !== null
    ? await read(s.keyFile, "store.key_file")
    : host.env(STORE_KEY_ENV);
  if (!keyText) {
    throw new ConfigError(
      `store.postgres needs the store key that encrypts signing keys: set ${STORE_KEY_ENV} or ` +
        "store.key_file (32 bytes: openssl rand -base64 32)",
    );
  }
  const box = await KeyBox.from(
    keyText,
    s.keyFile !== null ? `store.key_file (${s.keyFile})` : STORE_KEY_ENV,
  );
  const password = s.passwordFile !== null
    ? await read(s.passwordFile, "store.password_file")
    : null;
  const { PgStore } = await import("./store_pg.ts");
  return new PgStore({ url: s.postgres, password, box, config: s });
}
