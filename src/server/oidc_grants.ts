/**
 * The grants of a confidential client (`oidc.client_secret_file`, README
 * "Sign in with your identity provider"): `burrow login` runs the browser or
 * device step and hands the server what came back; the server, which alone
 * holds the client secret, makes the request at the provider's token or
 * device authorization endpoint, authenticated with client_secret_basic
 * (oauth4webapi), and signs the person in with the ID token it gets
 * (oidc.ts `signIn`).
 *
 * @module
 */
import * as oauth from "oauth4webapi";
import type { OidcConfig } from "../config/oidc.ts";
import { type OidcLogin, ProviderError, type SignedIn, SignInError } from "./oidc.ts";

/** What `burrow login` hands over: the redirect's query, a device code, or a refresh token. */
export type Grant =
  | { callback: string; state: string; code_verifier: string; redirect_uri: string; nonce: string }
  | { device_code: string }
  | { refresh_token: string };

/** The person has not finished the device step yet (`slow_down`: poll less often). */
export class PendingError extends Error {
  override name = "PendingError";
  constructor(readonly code: "authorization_pending" | "slow_down") {
    super(code);
  }
}

const CODE_FIELDS = ["callback", "state", "code_verifier", "redirect_uri", "nonce"] as const;

/** `body` as a {@link Grant}, or null when it is none (each field a string of at most 8 KiB). */
export function grantOf(body: Record<string, unknown>): Grant | null {
  const str = (k: string) => {
    const v = body[k];
    return typeof v === "string" && v !== "" && v.length <= 8192 ? v : null;
  };
  const [callback, state, code_verifier, redirect_uri, nonce] = CODE_FIELDS.map(str);
  if (callback && state && code_verifier && redirect_uri && nonce) {
    return { callback, state, code_verifier, redirect_uri, nonce };
  }
  const device = str("device_code");
  if (device !== null) return { device_code: device };
  const refresh = str("refresh_token");
  return refresh === null ? null : { refresh_token: refresh };
}

/** The provider's setup, the client and its authentication, for one request. */
async function client(login: OidcLogin) {
  const o: OidcConfig | null = login.config().oidc;
  if (!o || o.clientSecretFile === null) throw new SignInError("oidc is not a confidential client");
  const [p, secret] = await Promise.all([login.provider(o), login.clientSecret(o)]);
  const opts = { [oauth.customFetch]: (u: string, i: RequestInit) => p.fetch(u, i) };
  return {
    as: p.as,
    client: { client_id: o.clientId },
    auth: oauth.ClientSecretBasic(secret),
    opts,
  };
}

/** Start the device authorization flow at the provider for `burrow login --device`. */
export async function deviceStart(login: OidcLogin): Promise<oauth.DeviceAuthorizationResponse> {
  const c = await client(login);
  const scope = login.config().oidc!.scopes.join(" ");
  try {
    return await oauth.processDeviceAuthorizationResponse(
      c.as,
      c.client,
      await oauth.deviceAuthorizationRequest(c.as, c.client, c.auth, { scope }, c.opts),
    );
  } catch (e) {
    throw refusal(e);
  }
}

/** Make `g` at the provider's token endpoint and sign the person in with its ID token. */
export async function grant(
  login: OidcLogin,
  g: Grant,
): Promise<{ signedIn: SignedIn; refreshToken?: string }> {
  const { as, client: cl, auth, opts } = await client(login);
  let r: oauth.TokenEndpointResponse;
  try {
    if ("callback" in g) {
      const params = oauth.validateAuthResponse(as, cl, new URLSearchParams(g.callback), g.state);
      r = await oauth.processAuthorizationCodeResponse(
        as,
        cl,
        await oauth.authorizationCodeGrantRequest(
          as,
          cl,
          auth,
          params,
          g.redirect_uri,
          g.code_verifier,
          opts,
        ),
        { expectedNonce: g.nonce, requireIdToken: true },
      );
    } else if ("device_code" in g) {
      r = await oauth.processDeviceCodeResponse(
        as,
        cl,
        await oauth.deviceCodeGrantRequest(as, cl, auth, g.device_code, opts),
      );
    } else {
      r = await oauth.processRefreshTokenResponse(
        as,
        cl,
        await oauth.refreshTokenGrantRequest(as, cl, auth, g.refresh_token, opts),
      );
    }
  } catch (e) {
    throw refusal(e);
  }
  if (!r.id_token) throw new SignInError("the provider gave no ID token (is openid in scopes?)");
  const signedIn = await login.signIn(r.id_token, "callback" in g ? g.nonce : null);
  return r.refresh_token ? { signedIn, refreshToken: r.refresh_token } : { signedIn };
}

/**
 * What a failed request at the provider means: the client secret refused
 * (the server's setup), the device step pending, or the person's grant
 * refused (a used code, a revoked refresh token, a denied consent).
 */
function refusal(e: unknown): Error {
  if (e instanceof SignInError || e instanceof ProviderError) return e;
  const secretRefused = (why: string) =>
    new ProviderError(
      `the provider refused the client secret of oidc.client_secret_file (${why})`,
    );
  if (e instanceof oauth.ResponseBodyError) {
    if (e.error === "authorization_pending" || e.error === "slow_down") {
      return new PendingError(e.error);
    }
    const why = e.error_description ? `${e.error}: ${e.error_description}` : e.error;
    if (e.error === "invalid_client" || e.status === 401) return secretRefused(why);
    return new SignInError(`provider: ${why}`);
  }
  if (e instanceof oauth.WWWAuthenticateChallengeError) {
    const why = e.cause[0]?.parameters.error ?? `HTTP ${e.status}`;
    return e.status === 401 ? secretRefused(why) : new ProviderError(`provider: ${why}`);
  }
  if (e instanceof oauth.AuthorizationResponseError) {
    return new SignInError(`authorization response: ${e.error}`);
  }
  if (e instanceof oauth.OperationProcessingError) return new SignInError(`provider: ${e.message}`);
  return new ProviderError(`cannot reach the provider: ${(e as Error).message}`);
}
