/**
 * The verifying side of a login (SPEC.md §2.1, §2.3, §4, §6): version
 * negotiation, CHALLENGE, AUTH, and the RFC 1929 password check of the SOCKS5
 * port. Unknown names and unconfigured methods are checked against a decoy
 * credential, so a login takes the same work whether the name exists or not:
 * timing does not tell which names are configured.
 *
 * @module
 */
import {
  ed25519Verifier,
  generateKeyPair,
  randomBytes,
  tokenCredential,
  tokenVerifier,
  transcript,
  type Verifier,
} from "../auth.ts";
import type { Identity } from "../config/mod.ts";
import { ProtocolError } from "../errors.ts";
import { AuthMethod, type MessageOf, VERSION_MAX, VERSION_MIN } from "../messages.ts";
import { err, ok, type Result } from "../result.ts";
import type { Wire } from "../wire.ts";

/** The protocol version for a HELLO's offered range, or ProtocolError `unsupported_version`. */
export function negotiate(
  hello: Pick<MessageOf<"AGENT_HELLO">, "minVersion" | "maxVersion">,
  who: string,
): number {
  const v = Math.min(VERSION_MAX, hello.maxVersion);
  if (hello.minVersion > hello.maxVersion || v < Math.max(VERSION_MIN, hello.minVersion)) {
    throw new ProtocolError(
      "unsupported_version",
      `Cannot negotiate: the server speaks protocol ${
        VERSION_MIN === VERSION_MAX ? VERSION_MIN : `${VERSION_MIN}..${VERSION_MAX}`
      }, the ${who} offered ${hello.minVersion}..${hello.maxVersion}`,
    );
  }
  return v;
}

let decoyEd25519: Promise<Verifier> | undefined;
const decoyToken = tokenVerifier(randomBytes(32));

/** A verifier of `method` that accepts nothing and costs what a real one does. */
function decoy(method: number): Promise<Verifier> {
  if (method !== AuthMethod.ed25519) return Promise.resolve(decoyToken);
  decoyEd25519 ??= generateKeyPair().then((k) => ed25519Verifier(k.publicKey));
  return decoyEd25519;
}

export interface LoginResult {
  version: number;
  nonce: Uint8Array;
  verifier: Verifier;
}

/** Why a login failed, for the log (never sent to the peer). */
export type LoginFailure = "unknown name" | "auth method not configured" | "bad proof";

/**
 * CHALLENGE + AUTH on `wire` for `hello`. Resolves with what accepted the
 * proof, or calls `failed` and throws ProtocolError `auth_failed`.
 */
export async function verifyLogin(
  wire: Wire,
  hello: MessageOf<"AGENT_HELLO" | "CLIENT_HELLO">,
  role: "agent" | "client",
  ids: ReadonlyMap<string, Identity>,
  failed: (why: LoginFailure) => void,
): Promise<LoginResult> {
  const version = negotiate(hello, role);
  const nonce = randomBytes(32);
  await wire.send({ type: "CHALLENGE", version, nonce });
  const auth = await wire.expect("AUTH");
  const data = transcript(role, version, nonce, hello.name);
  const r = await checkProof(ids.get(hello.name), hello.authMethod, data, auth.proof);
  if (!r.ok) {
    failed(r.error);
    throw new ProtocolError("auth_failed", "authentication failed");
  }
  return { version, nonce, verifier: r.value };
}

/**
 * Check `proof` over `data` with `identity`'s verifier for `method`. Without
 * one (unknown name, method not configured), the same work is done against
 * `decoyOf(method)`, which accepts nothing.
 */
export async function checkProof(
  identity: Identity | undefined,
  method: number,
  data: Uint8Array,
  proof: Uint8Array,
  decoyOf: (method: number) => Promise<Verifier> = decoy,
): Promise<Result<Verifier, LoginFailure>> {
  const verifier = identity?.verifiers.get(method);
  const good = await (verifier ?? await decoyOf(method)).verify(data, proof);
  if (good && verifier) return ok(verifier);
  return err(!identity ? "unknown name" : !verifier ? "auth method not configured" : "bad proof");
}

const PROBE = new TextEncoder().encode("burrow-v1 socks5 password");

/**
 * RFC 1929 check of `password` for `id` (SPEC.md §8). An unknown client, or
 * one without a token, is checked against a decoy token at the same cost.
 * A boolean when the answer is known at once (a password that passed before).
 */
export function checkSocksPassword(
  id: Identity | undefined,
  password: string,
  decoyOf: (method: number) => Promise<Verifier> = decoy,
): boolean | Promise<boolean> {
  if (id?.checkPassword) return id.checkPassword(password);
  return decoyCheck(password, decoyOf);
}

async function decoyCheck(
  password: string,
  decoyOf: (method: number) => Promise<Verifier>,
): Promise<boolean> {
  const d = await decoyOf(AuthMethod.token);
  await d.verify(PROBE, await tokenCredential(password).prove(PROBE));
  return false;
}
