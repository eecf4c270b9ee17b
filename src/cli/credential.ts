/**
 * The credential `burrow agent` and `burrow client` log in with: its flags,
 * and where it comes from (flags > config file > environment).
 *
 * @module
 */
import type { Command } from "commander";
import { type Credential, ed25519Credential, tokenCredential } from "../auth.ts";
import { issuedCredential } from "../token.ts";
import { UsageError } from "../errors.ts";
import type { Host } from "./mod.ts";

export interface CredentialFlags {
  token?: string | undefined;
  tokenFile?: string | undefined;
  key?: string | undefined;
  keyFile?: string | undefined;
}

/**
 * The environment variables a credential may come from, for containers and
 * systemd (`Environment=BURROW_KEY_FILE=%d/key` with `LoadCredential=`).
 * They count only when neither flags nor the config file name a credential:
 * flags > config file > environment. A `*_FILE` variable names a file.
 */
export const CREDENTIAL_ENV = {
  token: "BURROW_TOKEN",
  tokenFile: "BURROW_TOKEN_FILE",
  key: "BURROW_KEY",
  keyFile: "BURROW_KEY_FILE",
} as const;

/** The credential the flags (and config file) give, else the one the environment gives. */
export function credentialSource(host: Host, given: CredentialFlags): CredentialFlags {
  const named = (f: CredentialFlags) =>
    [f.token, f.tokenFile, f.key, f.keyFile].some((v) => v !== undefined && v !== "");
  if (named(given)) return given;
  const env = (name: string) => host.env(name) || undefined; // empty counts as unset
  return {
    token: env(CREDENTIAL_ENV.token),
    tokenFile: env(CREDENTIAL_ENV.tokenFile),
    key: env(CREDENTIAL_ENV.key),
    keyFile: env(CREDENTIAL_ENV.keyFile),
  };
}

/**
 * An Ed25519 key (preferred) or a token, from flags or files, or else from
 * the environment ({@link CREDENTIAL_ENV}).
 */
export async function loadCredential(
  host: Host,
  who: string,
  given: CredentialFlags,
): Promise<Credential> {
  const f = credentialSource(host, given);
  const read = async (path: string) => {
    try {
      return (await host.readTextFile(path)).trim();
    } catch (e) {
      throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
    }
  };
  let key = f.key ?? (f.keyFile ? await read(f.keyFile) : undefined);
  // Accept the file `burrow keygen` prints as it is.
  const m = key ? /^private_key:\s*(\S+)\s*$/m.exec(key) : null;
  if (m) key = m[1];
  let token = f.token ?? (f.tokenFile ? await read(f.tokenFile) : undefined);
  // Accept the output of `burrow token` as it is, too.
  const t = token ? /^token:\s*(\S+)\s*$/m.exec(token) : null;
  if (t) token = t[1];
  if (key) {
    try {
      const c = ed25519Credential(key);
      await c.prove(new Uint8Array(1)); // fail now, not at the first handshake
      return c;
    } catch {
      throw new UsageError(
        `the ${who}'s key is not a base64 PKCS#8 Ed25519 private key (see \`burrow keygen\`)`,
      );
    }
  }
  // An issued token (SPEC.md §6.4) logs in with method issued_token, a static one with its HMAC.
  if (token) return issuedCredential(token) ?? tokenCredential(token);
  throw new UsageError(
    `${who} needs a credential: --key/--key-file (Ed25519) or --token/--token-file, ` +
      `or BURROW_KEY_FILE/BURROW_KEY/BURROW_TOKEN_FILE/BURROW_TOKEN in the environment`,
  );
}

/** The credential flags of `agent` and `client`. */
export function credentialOptions(cmd: Command): Command {
  return cmd
    .option(
      "--token <token>",
      "shared token (prefer --token-file: flags show in ps) (env: BURROW_TOKEN)",
    )
    .option("--token-file <file>", "file holding the shared token (env: BURROW_TOKEN_FILE)")
    .option("--key <base64>", "Ed25519 private key from `burrow keygen` (env: BURROW_KEY)")
    .option("--key-file <file>", "file holding the Ed25519 private key (env: BURROW_KEY_FILE)");
}
