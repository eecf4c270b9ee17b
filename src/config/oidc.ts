/**
 * The server config's `oidc:` section: the identity provider people sign in
 * with (README "Sign in with your identity provider").
 *
 * @module
 */
import { readDuration } from "../time.ts";
import type { Walker } from "./walker.ts";

export interface OidcConfig {
  /** The provider's issuer URL (https). */
  issuer: string;
  /** The client id registered at the provider (the ID token's audience). */
  clientId: string;
  /**
   * A file with the client secret of a confidential client (`client_secret_file`),
   * as given; null: a public client (PKCE only).
   */
  clientSecretFile: string | null;
  /** A file with PEM roots to trust for the provider (`ca`), as given. */
  ca: string | null;
  scopes: string[];
  /** Which claims name the person and their groups. */
  claims: { subject: string; groups: string };
  /** Who may sign in without a person: or group: grant: email domains, groups. */
  allow: { domains: string[]; groups: string[] };
  /** How long a person's token is valid, seconds (default 12 h). */
  ttl: number;
}

/** `oidc: {issuer, client_id, client_secret_file?, ca?, scopes, claims, allow, ttl}`; absent: null. */
export function oidcConfig(w: Walker, v: unknown): OidcConfig | null {
  if (v === undefined || v === null) return null;
  const o = w.obj(v, "oidc");
  const keys = ["issuer", "client_id", "client_secret_file", "ca", "scopes", "claims", "allow"];
  w.known(o, "oidc", [...keys, "ttl"]);
  const issuer = w.str(o.issuer, "oidc.issuer");
  let url: URL | null = null;
  try {
    url = new URL(issuer);
  } catch {
    // below
  }
  if (url?.protocol !== "https:") w.fail("oidc.issuer", "must be an https:// URL");
  const strs = (x: unknown, path: string, def: string[]) =>
    x === undefined ? def : w.list(x, path).map((s, i) => w.str(s, `${path}[${i}]`));
  const claims = w.obj(o.claims, "oidc.claims");
  w.known(claims, "oidc.claims", ["subject", "groups"]);
  const allow = w.obj(o.allow, "oidc.allow");
  w.known(allow, "oidc.allow", ["domains", "groups"]);
  const t = readDuration(o.ttl === undefined ? "12h" : w.str(o.ttl, "oidc.ttl"));
  if (!t.ok) w.fail("oidc.ttl", t.error);
  const ttl = Math.floor(t.value / 1000);
  if (ttl < 1 || ttl > 366 * 86400) w.fail("oidc.ttl", "must be between 1s and 8784h");
  const scopes = strs(o.scopes, "oidc.scopes", ["openid", "email", "profile", "offline_access"]);
  if (!scopes.includes("openid")) w.fail("oidc.scopes", "must include openid");
  return {
    issuer,
    clientId: w.str(o.client_id, "oidc.client_id"),
    clientSecretFile: o.client_secret_file === undefined
      ? null
      : w.str(o.client_secret_file, "oidc.client_secret_file"),
    ca: o.ca === undefined ? null : w.str(o.ca, "oidc.ca"),
    scopes,
    claims: {
      subject: claims.subject === undefined
        ? "email"
        : w.str(claims.subject, "oidc.claims.subject"),
      groups: claims.groups === undefined ? "groups" : w.str(claims.groups, "oidc.claims.groups"),
    },
    allow: {
      domains: strs(allow.domains, "oidc.allow.domains", []).map((d) => d.toLowerCase()),
      groups: strs(allow.groups, "oidc.allow.groups", []),
    },
    ttl,
  };
}
