/**
 * The user name and password check that every proxy front shares (the
 * SOCKS5 port's RFC 1929, HTTP CONNECT's Proxy-Authorization): the user name
 * is `client`, `client@agent` or `@agent`, split at its last `@` (SPEC.md
 * §7.1); the password a static token (§6.2) or an issued token (§6.4),
 * which names the client itself.
 *
 * @module
 */
import { randomBytes } from "../auth.ts";
import type { ServerConfig } from "../config/mod.ts";
import { ProtocolError } from "../errors.ts";
import type { MessageOf } from "../messages.ts";
import { type IssuedToken, parseToken, tokenText } from "../token.ts";
import { err, ok, type Result } from "../result.ts";
import type { Wire } from "../wire.ts";
import { checkSocksPassword, negotiate } from "./login.ts";
import type { TokenStore } from "./tokens.ts";

/**
 * `client`, `client@agent`, `@agent`: split at the last `@` (SPEC.md §7.1),
 * as a credential with no issued token yet.
 */
export function splitUser(user: string): Credential {
  const at = user.lastIndexOf("@");
  return at < 0
    ? { client: user, agent: "", token: null }
    : { client: user.slice(0, at), agent: user.slice(at + 1), token: null };
}

/** Why a user name and password were refused, for the log (never for the peer). */
export type CredentialRefusal =
  | "unknown client"
  | "bad token"
  | "unknown key"
  | "bad signature"
  | "expired"
  | "revoked"
  | "token of another client"
  | "unknown person";

/** Who logged in: the client (an issued token's subject), the agent named, the issued token. */
export type Credential = { client: string; agent: string; token: IssuedToken | null };

/** Why not, and the id of the issued token refused (for the log). */
export type CredentialFailure = { reason: CredentialRefusal; token?: string };

export type CredentialCheck = Result<Credential, CredentialFailure>;

/**
 * Check `user` and `password`. An issued token is checked by `tokens` (each
 * refusal at the same cost); any other password as the static token of the
 * named client (an unknown client against a decoy, at the same cost).
 * Synchronous when the answer is known at once.
 */
export function checkCredential(
  config: ServerConfig,
  tokens: TokenStore,
  user: string,
  password: string,
): CredentialCheck | Promise<CredentialCheck> {
  const who = splitUser(user); // filled in place: one object per check, as before
  const { client } = who;
  const issued = tokens.check(password);
  if (issued !== null) {
    // A person is known while a token of theirs lives; a configured client's
    // name is never a person's (its grants would be theirs).
    const personOk = (s: string) => tokens.person(s) !== undefined && !config.clients.has(s);
    const done = (r: Awaited<typeof issued>): CredentialCheck => {
      if (!r.ok) return err({ reason: r.error.reason, token: r.error.token.id });
      const t = r.value;
      const no = (reason: CredentialRefusal) => err({ reason, token: t.id });
      if (t.kind === "client" ? !config.clients.has(t.subject) : !personOk(t.subject)) {
        return no(t.kind === "client" ? "unknown client" : "unknown person");
      }
      if (client !== "" && client !== t.subject) return no("token of another client");
      who.client = t.subject;
      who.token = t;
      return ok(who);
    };
    return "then" in issued ? issued.then(done) : done(issued);
  }
  const id = config.clients.get(client);
  const checked = checkSocksPassword(id, password);
  if (checked === true) return ok(who); // the common case, without a closure
  const done = (good: boolean): CredentialCheck =>
    good ? ok(who) : err({ reason: id ? "bad token" : "unknown client" });
  return typeof checked === "boolean" ? done(checked) : checked.then(done);
}

/**
 * CHALLENGE + AUTH for auth method issued_token (SPEC.md §6.2): the proof
 * is an issued token's bytes, checked as a SOCKS5 password would be, with
 * the hello's name (empty: the token's subject). Resolves with who logged
 * in, or calls `failed` and throws ProtocolError `auth_failed`.
 */
export async function verifyIssuedLogin(
  wire: Wire,
  hello: MessageOf<"CLIENT_HELLO">,
  config: ServerConfig,
  tokens: TokenStore,
  failed: (why: CredentialRefusal, token?: string) => void,
): Promise<{ version: number; client: string; token: IssuedToken }> {
  const version = negotiate(hello, "client");
  await wire.send({ type: "CHALLENGE", version, nonce: randomBytes(32) });
  const { proof } = await wire.expect("AUTH");
  const text = tokenText(proof.subarray(0, proof.length - 64), proof.subarray(proof.length - 64));
  // Not a token at all: refused without a static check (this method takes tokens only).
  const r: CredentialCheck = parseToken(text) === null
    ? err({ reason: "bad token" })
    : await checkCredential(config, tokens, hello.name, text);
  if (!r.ok || !r.value.token) {
    failed(r.ok ? "bad token" : r.error.reason, r.ok ? undefined : r.error.token);
    throw new ProtocolError("auth_failed", "authentication failed");
  }
  return { version, client: r.value.client, token: r.value.token };
}
