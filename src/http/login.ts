/**
 * The sign-in endpoints (README "Sign in with your identity provider"),
 * served with the rest of the HTTP app on listen.http and listen.https:
 * `GET /login/config` tells `burrow login` the provider, `POST /login/token`
 * trades a verified ID token for an issued token (server/oidc.ts); with a
 * confidential client (`oidc.client_secret_file`) it takes the redirect's
 * query, a device code or a refresh token instead, and `POST /login/device`
 * starts the device flow, since only the server holds the client secret
 * (server/oidc_grants.ts). A refused sign-in answers 401 without the
 * reason; the log has it. A failure at the provider or of the server's own
 * setup (the client secret refused) answers 502 with the reason.
 *
 * @module
 */
import { Hono } from "hono";
import { type OidcLogin, ProviderError, type SignedIn, SignInError } from "../server/oidc.ts";
import { deviceStart, grant, grantOf, PendingError } from "../server/oidc_grants.ts";
import { type HttpEnv, type HttpPeer, peerOf } from "./guard.ts";

/** What the sign-in endpoints use; the server implements it. */
export interface LoginSource {
  readonly oidc: OidcLogin;
  /** Log and count a refused sign-in from `peer`'s source (may block it, as wrong admin tokens do). */
  signInRefused(peer: HttpPeer | undefined, reason: string): void;
  /** Seconds `peer`'s source stays blocked from signing in; 0 when it is not. */
  signInBlocked(peer: HttpPeer | undefined): number;
}

/** An ID token is a few KiB; a bigger body is refused before it is read. */
const MAX_BODY = 64 * 1024;

const answer = (body: unknown, status = 200) =>
  Response.json(body, { status, headers: { "cache-control": "no-store" } });

export function loginApi(src: LoginSource): Hono<HttpEnv> {
  const api = new Hono<HttpEnv>();
  // With listen.https, tokens are handed out over TLS only: listen.http serves
  // sign-in only where it is the only listener (tests, a TLS-terminating proxy).
  api.use("*", async (c, next) => {
    if (src.oidc.config().listen.https && new URL(c.req.url).protocol === "http:") {
      return answer({ error: "not_found", message: "sign in over https (listen.https)" }, 404);
    }
    await next();
  });
  api.get("/config", () => {
    const c = src.oidc.publicConfig();
    return c ? answer(c) : answer({ error: "not_found", message: "no oidc: in server.yaml" }, 404);
  });
  api.post("/token", async (c) => {
    if (!src.oidc.publicConfig()) {
      return answer({ error: "not_found", message: "no oidc: in server.yaml" }, 404);
    }
    const peer = peerOf(c.env);
    const blocked = src.signInBlocked(peer);
    if (blocked > 0) {
      return Response.json(
        { error: "too_many_failures", message: `too many refused sign-ins: retry in ${blocked} s` },
        { status: 429, headers: { "cache-control": "no-store", "retry-after": String(blocked) } },
      );
    }
    if (Number(c.req.header("content-length") ?? MAX_BODY + 1) > MAX_BODY) {
      return answer({
        error: "bad_request",
        message: `send a JSON body of at most ${MAX_BODY} bytes`,
      }, 400);
    }
    let body: Record<string, unknown>;
    try {
      body = await c.req.json();
      if (typeof body !== "object" || body === null) throw new TypeError("not an object");
    } catch {
      return answer({ error: "bad_request", message: 'send JSON: {"id_token": "…"}' }, 400);
    }
    const g = src.oidc.publicConfig()?.confidential ? grantOf(body) : null;
    if (
      g === null &&
      (typeof body.id_token !== "string" || (body.nonce != null && typeof body.nonce !== "string"))
    ) {
      return answer({ error: "bad_request", message: "id_token must be a string" }, 400);
    }
    try {
      const r: { signedIn: SignedIn; refreshToken?: string } = g
        ? await grant(src.oidc, g)
        : { signedIn: await src.oidc.signIn(body.id_token as string, nonceOf(body)) };
      return signedIn(src.oidc, r.signedIn, r.refreshToken);
    } catch (e) {
      return refused(src, peer, e);
    }
  });
  api.post("/device", async (c) => {
    if (!src.oidc.publicConfig()?.confidential) {
      return answer(
        { error: "not_found", message: "no oidc.client_secret_file in server.yaml" },
        404,
      );
    }
    try {
      return answer(await deviceStart(src.oidc));
    } catch (e) {
      return refused(src, peerOf(c.env), e);
    }
  });
  return api;
}

const nonceOf = (body: Record<string, unknown>) => (body.nonce as string | undefined) ?? null;

/** Log the sign-in and answer with the issued token (and the provider's refresh token, if the server traded it). */
function signedIn(oidc: OidcLogin, r: SignedIn, refreshToken?: string): Response {
  oidc.log.info("signed in", {
    subject: r.subject,
    groups: r.groups.join(","),
    token: r.id,
    expires_at: new Date(r.expiresAt * 1000).toISOString(),
  });
  return answer({
    token: r.token,
    id: r.id,
    expires_at: new Date(r.expiresAt * 1000).toISOString(),
    subject: r.subject,
    groups: r.groups,
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
  });
}

/**
 * A failed sign-in: 401 and counted against the source when the person's
 * credentials were refused; 502 with the reason when the provider or the
 * server's own setup failed; 400 while a device step is pending.
 */
function refused(src: LoginSource, peer: HttpPeer | undefined, e: unknown): Response {
  if (e instanceof PendingError) return answer({ error: e.code, message: "sign-in pending" }, 400);
  if (e instanceof ProviderError) {
    src.oidc.log.error("sign-in failed at the provider", { reason: e.message });
    return answer({ error: "provider_error", message: e.message }, 502);
  }
  if (!(e instanceof SignInError)) throw e;
  src.oidc.metrics.inc("burrow_auth_failures_total", "Failed authentications", { role: "oidc" });
  src.signInRefused(peer, e.message);
  return answer(
    { error: "unauthorized", message: "sign-in refused (the server log says why)" },
    401,
  );
}
