/**
 * Sign-in through the identity provider (README "Sign in with your identity
 * provider"): `burrow login` runs the provider's flow and hands the server
 * the ID token; the server verifies it (issuer, audience, signature from the
 * provider's JWKS, expiry, nonce) with `jose`, checks that the person may
 * sign in (a person: or group: grant, or `oidc.allow`), and answers with an
 * issued token of kind person (SPEC.md §6.4) that records their groups.
 * With `oidc.client_secret_file` (a confidential client) the server itself
 * trades the code, device code or refresh token at the provider
 * (oidc_grants.ts), as only it holds the secret.
 *
 * @module
 */
import { createRemoteJWKSet, customFetch, type JWTPayload, jwtVerify } from "jose";
import * as oauth from "oauth4webapi";
import type { ServerConfig } from "../config/mod.ts";
import type { OidcConfig } from "../config/oidc.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { SUBJECT_MAX } from "../token.ts";
import type { TokenStore } from "./tokens.ts";

/** Why a sign-in was refused (for the log; the answer says less). */
export class SignInError extends Error {
  override name = "SignInError";
}

/**
 * A sign-in that failed at the provider or in the server's own `oidc:`
 * setup (unreachable, the client secret refused or unreadable), not
 * through the person: the answer says so, and it is not held against them.
 */
export class ProviderError extends Error {
  override name = "ProviderError";
}

/** What a signed-in person gets. */
export interface SignedIn {
  token: string;
  id: string;
  expiresAt: number;
  subject: string;
  groups: string[];
}

/** The provider as one `oidc:` config sees it: its metadata, keys, and how to reach it. */
export interface ProviderSetup {
  as: oauth.AuthorizationServer;
  jwks: ReturnType<typeof createRemoteJWKSet>;
  /** A fetch that trusts `oidc.ca`. */
  fetch: typeof fetch;
}

interface Provider {
  config: OidcConfig;
  ready: Promise<ProviderSetup>;
}

export class OidcLogin {
  #provider: Provider | null = null;

  constructor(
    readonly config: () => ServerConfig,
    readonly tokens: TokenStore,
    /** A fetch that trusts `oidc.ca` (net_fetch.ts). */
    readonly fetchFor: (oidc: OidcConfig) => Promise<typeof fetch>,
    readonly log: Logger,
    readonly metrics: Metrics,
    /** Reads `oidc.client_secret_file` (Host.readSecretFile); absent: none can be read. */
    readonly readSecret?: (path: string) => Promise<string>,
  ) {}

  /**
   * What `burrow login` needs to run the flow; null without `oidc:`.
   * `confidential`: the server trades codes and refresh tokens (it holds
   * the client secret), not `burrow login`.
   */
  publicConfig(): {
    issuer: string;
    client_id: string;
    scopes: string[];
    confidential?: true;
  } | null {
    const o = this.config().oidc;
    if (!o) return null;
    const base = { issuer: o.issuer, client_id: o.clientId, scopes: o.scopes };
    return o.clientSecretFile === null ? base : { ...base, confidential: true };
  }

  /** The client secret of `oidc.client_secret_file`, read now (a changed file counts at once). */
  async clientSecret(o: OidcConfig): Promise<string> {
    if (o.clientSecretFile === null) throw new ProviderError("oidc has no client_secret_file");
    try {
      if (!this.readSecret) throw new Error("no file system to read it from");
      return await this.readSecret(o.clientSecretFile);
    } catch (e) {
      throw new ProviderError(`oidc.client_secret_file: ${(e as Error).message}`);
    }
  }

  /** The provider's metadata and keys for `o`, fetched once per config (again after a failure). */
  provider(o: OidcConfig): Promise<ProviderSetup> {
    if (this.#provider?.config === o) return this.#provider.ready;
    const ready = (async () => {
      const f = await this.fetchFor(o);
      const issuer = new URL(o.issuer);
      let as: oauth.AuthorizationServer;
      try {
        const opts = { [oauth.customFetch]: (u: string, i: unknown) => f(u, i as RequestInit) };
        as = await oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, opts),
        );
      } catch (e) {
        throw new ProviderError(`provider metadata: ${(e as Error).message}`);
      }
      if (!as.jwks_uri) throw new ProviderError("provider metadata has no jwks_uri");
      const jwks = createRemoteJWKSet(new URL(as.jwks_uri), { [customFetch]: f });
      return { as, jwks, fetch: f };
    })();
    // A failure is not kept: the next sign-in asks again.
    ready.catch(() => {
      if (this.#provider?.ready === ready) this.#provider = null;
    });
    this.#provider = { config: o, ready };
    return ready;
  }

  /** Verify `idToken` (and `nonce`, when the flow had one) and issue the person's token. */
  async signIn(idToken: string, nonce: string | null): Promise<SignedIn> {
    const o = this.config().oidc;
    if (!o) throw new SignInError("oidc is not configured");
    let payload: JWTPayload;
    try {
      const { jwks } = await this.provider(o);
      ({ payload } = await jwtVerify(idToken, jwks, {
        issuer: o.issuer,
        audience: o.clientId,
        requiredClaims: ["exp", "iat", "sub"],
      }));
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      throw new SignInError(`ID token: ${(e as Error).message}`);
    }
    if ((payload.nonce ?? null) !== nonce) throw new SignInError("ID token: nonce does not match");
    const subject = payload[o.claims.subject];
    if (typeof subject !== "string" || subject === "") {
      throw new SignInError(`ID token: no ${o.claims.subject} claim`);
    }
    if (o.claims.subject === "email" && payload.email_verified === false) {
      throw new SignInError("ID token: email not verified");
    }
    if (new TextEncoder().encode(subject).length > SUBJECT_MAX) {
      throw new SignInError(`subject longer than ${SUBJECT_MAX} bytes`);
    }
    const raw = payload[o.claims.groups];
    const groups = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === "string") : [];
    this.#admit(o, subject, groups);
    const t = await this.tokens.issue("person", subject, o.ttl, groups);
    return { token: t.token, id: t.id, expiresAt: t.expiresAt, subject, groups };
  }

  /** A person: or group: grant, or `oidc.allow` (email domain, group); never a client's name. */
  #admit(o: OidcConfig, subject: string, groups: string[]): void {
    const c = this.config();
    if (c.clients.has(subject)) throw new SignInError("subject is a configured client's name");
    const granted = c.grants.some((g) =>
      g.person === subject || (g.group !== undefined && groups.includes(g.group))
    );
    const domain = subject.includes("@") ? subject.slice(subject.lastIndexOf("@") + 1) : "";
    const allowed = o.allow.domains.includes(domain.toLowerCase()) ||
      o.allow.groups.some((g) => groups.includes(g));
    if (!granted && !allowed) throw new SignInError("not admitted: no grant and not in oidc.allow");
  }
}
