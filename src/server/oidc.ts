/**
 * Sign-in through the identity provider (README "Sign in with your identity
 * provider"): `burrow login` runs the provider's flow and hands the server
 * the ID token; the server verifies it (issuer, audience, signature from the
 * provider's JWKS, expiry, nonce) with `jose`, checks that the person may
 * sign in (a person: or group: grant, or `oidc.allow`), and answers with an
 * issued token of kind person (SPEC.md §6.4) that records their groups.
 *
 * @module
 */
import { createRemoteJWKSet, customFetch, type JWTPayload, jwtVerify } from "jose";
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

/** What a signed-in person gets. */
export interface SignedIn {
  token: string;
  id: string;
  expiresAt: number;
  subject: string;
  groups: string[];
}

/** The provider's metadata and keys, for one `oidc:` config. */
interface Provider {
  config: OidcConfig;
  jwks: Promise<ReturnType<typeof createRemoteJWKSet>>;
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
  ) {}

  /** What `burrow login` needs to run the flow; null without `oidc:`. */
  publicConfig(): { issuer: string; client_id: string; scopes: string[] } | null {
    const o = this.config().oidc;
    return o && { issuer: o.issuer, client_id: o.clientId, scopes: o.scopes };
  }

  #keys(o: OidcConfig): Provider["jwks"] {
    if (this.#provider?.config === o) return this.#provider.jwks;
    const jwks = (async () => {
      const f = await this.fetchFor(o);
      const meta = await f(new URL(".well-known/openid-configuration", withSlash(o.issuer)));
      if (!meta.ok) throw new SignInError(`provider metadata: HTTP ${meta.status}`);
      const m = await meta.json() as { issuer?: string; jwks_uri?: string };
      if (m.issuer !== o.issuer) {
        throw new SignInError(`provider metadata names issuer ${m.issuer}`);
      }
      if (!m.jwks_uri) throw new SignInError("provider metadata has no jwks_uri");
      return createRemoteJWKSet(new URL(m.jwks_uri), { [customFetch]: f });
    })();
    // A failure is not kept: the next sign-in asks again.
    jwks.catch(() => {
      if (this.#provider?.jwks === jwks) this.#provider = null;
    });
    this.#provider = { config: o, jwks };
    return jwks;
  }

  /** Verify `idToken` (and `nonce`, when the flow had one) and issue the person's token. */
  async signIn(idToken: string, nonce: string | null): Promise<SignedIn> {
    const o = this.config().oidc;
    if (!o) throw new SignInError("oidc is not configured");
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, await this.#keys(o), {
        issuer: o.issuer,
        audience: o.clientId,
        requiredClaims: ["exp", "iat", "sub"],
      }));
    } catch (e) {
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

const withSlash = (u: string) => u.endsWith("/") ? u : `${u}/`;
