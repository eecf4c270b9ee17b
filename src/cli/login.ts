/**
 * `burrow login --server URL`: sign in with the identity provider the
 * server names (`GET /login/config`), through the authorization code flow
 * with PKCE and a loopback redirect (prints the URL to open), or the device
 * authorization flow (`--device`, for headless machines); the server
 * verifies the ID token and answers with an issued token, stored 0600 in
 * the user's config directory (`--print` prints it for `curl
 * --proxy-user`). `--refresh` renews it through the provider with the
 * refresh token the provider gave (`offline_access`), so group changes and
 * a person removed from the provider take effect then. The flows are
 * oauth4webapi's. With a confidential client (the server's
 * `oidc.client_secret_file`) the server makes the requests that need the
 * client secret (device authorization, code, device code and refresh
 * grants): `burrow login` hands it what the browser or the device step gave.
 *
 * @module
 */
import type { Command } from "commander";
import * as oauth from "oauth4webapi";
import type { Credential } from "../auth.ts";
import { UsageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { AuthMethod } from "../messages.ts";
import { issuedCredential } from "../token.ts";
import { netFetch } from "../net_fetch.ts";
import type { Start } from "./common.ts";
import type { Host } from "./mod.ts";

interface LoginFlags {
  server?: string;
  device?: boolean;
  print?: boolean;
  refresh?: boolean;
  ca?: string;
  timeout: string;
}

/** What `burrow login` keeps (0600). */
export interface StoredLogin {
  server: string;
  token: string;
  id: string;
  expires_at: string;
  subject: string;
  issuer: string;
  client_id: string;
  refresh_token?: string;
  /** The --ca file the login used, for renewals. */
  ca?: string;
}

/** Where the login is kept: `$XDG_CONFIG_HOME/burrow/login.json`, else `~/.config/burrow/`. */
export function loginPath(host: Host): string {
  const base = host.env("XDG_CONFIG_HOME") || `${host.env("HOME") ?? host.cwd()}/.config`;
  return `${base}/burrow/login.json`;
}

export async function readLogin(host: Host): Promise<StoredLogin | null> {
  try {
    return JSON.parse(await host.readTextFile(loginPath(host))) as StoredLogin;
  } catch {
    return null;
  }
}

interface Session {
  f: typeof fetch;
  /** `f` as oauth4webapi's customFetch. */
  opts: {
    [oauth.customFetch]: (
      url: string,
      o: oauth.CustomFetchOptions<string, unknown>,
    ) => Promise<Response>;
  };
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  scopes: string[];
  server: string;
  /** The server holds a client secret and makes the grants itself. */
  confidential: boolean;
}

/** The server's answer to a sign-in, with the provider's refresh token when there is one. */
interface SignedIn {
  token: string;
  id: string;
  expires_at: string;
  subject: string;
  refresh_token?: string;
}

async function json<T>(r: Response, what: string): Promise<T> {
  const text = await r.text();
  if (!r.ok) {
    let m = text.slice(0, 200);
    try {
      m = (JSON.parse(text) as { message?: string }).message ?? m;
    } catch {
      // not JSON
    }
    throw new UsageError(`${what}: HTTP ${r.status}: ${m}`);
  }
  return JSON.parse(text) as T;
}

async function session(host: Host, server: string, ca?: string): Promise<Session> {
  const roots = ca ? [await host.readTextFile(ca)] : undefined;
  const f = netFetch(host.net, roots);
  const base = server.endsWith("/") ? server : `${server}/`;
  const cfg = await json<
    { issuer: string; client_id: string; scopes: string[]; confidential?: boolean }
  >(
    await f(new URL("login/config", base)).catch((e) => {
      throw new UsageError(`cannot reach ${server}: ${(e as Error).message}`);
    }),
    `${server}/login/config`,
  );
  const issuer = new URL(cfg.issuer);
  const opts = { [oauth.customFetch]: (u: string, o: unknown) => f(u, o as RequestInit) };
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, opts),
  );
  const client = { client_id: cfg.client_id };
  const confidential = cfg.confidential === true;
  return { f, opts, as, client, scopes: cfg.scopes, server: base, confidential };
}

/** POST `body` to the server's `login/<path>`. */
const post = (s: Session, path: string, body: Record<string, string>) =>
  s.f(new URL(`login/${path}`, s.server), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** Hand the server `body` (an ID token, or with a confidential client a grant): its answer. */
async function signIn(s: Session, body: Record<string, string>): Promise<SignedIn> {
  return await json<SignedIn>(await post(s, "token", body), "the server refused the sign-in");
}

/** Hand the server the provider's ID token; the provider's refresh token is kept. */
async function signInWith(
  s: Session,
  r: oauth.TokenEndpointResponse,
  nonce: string | null,
): Promise<SignedIn> {
  if (!r.id_token) throw new UsageError("the provider gave no ID token (is openid in scopes?)");
  const a = await signIn(s, { id_token: r.id_token, ...(nonce ? { nonce } : {}) });
  return r.refresh_token ? { ...a, refresh_token: r.refresh_token } : a;
}

/** Poll `attempt` at the device flow's interval until it is no longer pending. */
async function poll<T>(
  d: { interval?: number; expires_in: number },
  attempt: () => Promise<T | "authorization_pending" | "slow_down">,
): Promise<T> {
  let interval = (d.interval ?? 5) * 1000;
  const end = Date.now() + d.expires_in * 1000;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, interval));
    const r = await attempt();
    if (r === "slow_down") interval += 5000;
    else if (r !== "authorization_pending") return r;
  }
  throw new UsageError("the sign-in code expired: run burrow login again");
}

/** The device authorization flow: print where to go, poll until the person has signed in. */
async function deviceFlow(s: Session): Promise<SignedIn> {
  if (s.confidential) {
    const d = await json<oauth.DeviceAuthorizationResponse>(
      await post(s, "device", {}),
      "the server could not start the sign-in",
    );
    show(d);
    return await poll(d, async () => {
      const res = await post(s, "token", { device_code: d.device_code });
      if (res.status !== 400) return await json<SignedIn>(res, "the server refused the sign-in");
      const e = await res.json() as { error?: string; message?: string };
      if (e.error === "authorization_pending" || e.error === "slow_down") return e.error;
      throw new UsageError(`the server refused the sign-in: ${e.message ?? e.error}`);
    });
  }
  const auth = oauth.None();
  const d = await oauth.processDeviceAuthorizationResponse(
    s.as,
    s.client,
    await oauth.deviceAuthorizationRequest(
      s.as,
      s.client,
      auth,
      { scope: s.scopes.join(" ") },
      s.opts,
    ),
  );
  show(d);
  const r = await poll(d, async () => {
    try {
      return await oauth.processDeviceCodeResponse(
        s.as,
        s.client,
        await oauth.deviceCodeGrantRequest(s.as, s.client, auth, d.device_code, s.opts),
      );
    } catch (e) {
      const code = (e as { error?: string }).error;
      if (code === "slow_down" || code === "authorization_pending") return code;
      throw e;
    }
  });
  return await signInWith(s, r, null);
}

function show(d: oauth.DeviceAuthorizationResponse): void {
  console.error(`To sign in, open ${d.verification_uri_complete ?? d.verification_uri}`);
  console.error(`and enter the code ${d.user_code}`);
}

/** The authorization code flow with PKCE through a loopback redirect (RFC 8252). */
async function codeFlow(host: Host, s: Session, ms: number): Promise<SignedIn> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  let got: (u: URL) => void = () => {};
  const arrived = new Promise<URL>((r) => got = r);
  const http = await host.serveHttp({ host: "127.0.0.1", port: 0 }, (req) => {
    const u = new URL(req.url);
    if (u.pathname !== "/callback") return new Response("not found", { status: 404 });
    got(u);
    return new Response("Signed in: you can close this window and return to burrow.\n");
  });
  try {
    const redirect = `http://127.0.0.1:${http.addr.port}/callback`;
    const url = new URL(s.as.authorization_endpoint!);
    url.search = new URLSearchParams({
      client_id: s.client.client_id,
      response_type: "code",
      redirect_uri: redirect,
      scope: s.scopes.join(" "),
      state,
      nonce,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      // OIDC Core §11: a refresh token (offline_access) is asked for with prompt=consent.
      ...(s.scopes.includes("offline_access") ? { prompt: "consent" } : {}),
    }).toString();
    console.error(`To sign in, open ${url.href}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const back = await Promise.race([
      arrived,
      new Promise<never>((_, no) =>
        timer = setTimeout(() => no(new UsageError("no sign-in within the time allowed")), ms)
      ),
    ]).finally(() => clearTimeout(timer));
    const params = oauth.validateAuthResponse(s.as, s.client, back, state);
    if (s.confidential) { // the server trades the code: it holds the client secret
      const callback = back.search;
      return await signIn(s, {
        callback,
        state,
        code_verifier: verifier,
        redirect_uri: redirect,
        nonce,
      });
    }
    const r = await oauth.processAuthorizationCodeResponse(
      s.as,
      s.client,
      await oauth.authorizationCodeGrantRequest(
        s.as,
        s.client,
        oauth.None(),
        params,
        redirect,
        verifier,
        s.opts,
      ),
      { expectedNonce: nonce, requireIdToken: true },
    );
    return await signInWith(s, r, nonce);
  } finally {
    await http.close();
  }
}

/** Keep the server's answer `t` (0600); `old`: the refresh token kept before. */
async function keep(
  host: Host,
  s: Session,
  t: SignedIn,
  print: boolean,
  old: string | undefined,
  ca: string | undefined,
): Promise<StoredLogin> {
  const refresh = t.refresh_token ?? old;
  const stored: StoredLogin = {
    server: s.server,
    token: t.token,
    id: t.id,
    expires_at: t.expires_at,
    subject: t.subject,
    issuer: s.as.issuer,
    client_id: s.client.client_id,
    ...(refresh ? { refresh_token: refresh } : {}),
    ...(ca ? { ca: ca.startsWith("/") ? ca : `${host.cwd()}/${ca}` } : {}),
  };
  await host.writeSecretFile(loginPath(host), JSON.stringify(stored, null, 1) + "\n");
  console.error(`signed in as ${t.subject} until ${t.expires_at} (${loginPath(host)})`);
  if (print) host.print(t.token);
  return stored;
}

/** Renew `old` through the provider's refresh token; the new login is kept. */
async function refresh(host: Host, old: StoredLogin, print: boolean, server?: string, ca?: string) {
  const token = old.refresh_token;
  if (!token) {
    throw new UsageError("no refresh token kept (the provider gave none): run burrow login");
  }
  const s = await session(host, server ?? old.server, ca ?? old.ca);
  const t = s.confidential ? await signIn(s, { refresh_token: token }) : await signInWith(
    s,
    await oauth.processRefreshTokenResponse(
      s.as,
      s.client,
      await oauth.refreshTokenGrantRequest(s.as, s.client, oauth.None(), token, s.opts),
    ),
    null,
  );
  return keep(host, s, t, print, token, ca ?? old.ca);
}

/**
 * The client proxy's credential from the kept login (`burrow client` with
 * no credential of its own): the current token at every login, renewed
 * through the provider before it expires when a refresh token was kept.
 * Null without a kept login. `stop` ends the renewals.
 */
export async function loginCredential(
  host: Host,
  log: Logger,
): Promise<{ credential: Credential; stop(): void } | null> {
  let login = await readLogin(host);
  if (!login) return null;
  let current = issuedCredential(login.token);
  if (!current) return null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped || !login?.refresh_token) return;
    const left = Date.parse(login.expires_at) - Date.now();
    // Renew when a fifth of its life (at most 5 minutes) is left; retry each 10 s on failure.
    timer = setTimeout(renew, Math.max(1000, left - Math.min(300_000, left / 5)));
  };
  const renew = async () => {
    try {
      login = await refresh(host, login!, false);
      current = issuedCredential(login.token) ?? current;
      log.info("login renewed", {
        subject: login.subject,
        token: login.id,
        expires_at: login.expires_at,
      });
      schedule();
    } catch (e) {
      log.warn("login renewal failed", { error: (e as Error).message });
      if (!stopped && Date.parse(login!.expires_at) > Date.now()) timer = setTimeout(renew, 10_000);
    }
  };
  schedule();
  log.info("using the kept login", {
    subject: login.subject,
    token: login.id,
    expires_at: login.expires_at,
  });
  return {
    credential: { method: AuthMethod.issued_token, prove: (d) => current!.prove(d) },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

async function runLogin(host: Host, f: LoginFlags): Promise<void> {
  const ms = Number(f.timeout);
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError("--timeout must be milliseconds > 0");
  if (f.refresh) {
    const old = await readLogin(host);
    if (!old) throw new UsageError("no kept login: run burrow login --server …");
    await refresh(host, old, f.print === true, f.server, f.ca);
    return;
  }
  if (!f.server) throw new UsageError("burrow login needs --server (the server's https:// URL)");
  const s = await session(host, f.server, f.ca);
  const t = f.device ? await deviceFlow(s) : await codeFlow(host, s, ms);
  await keep(host, s, t, f.print === true, undefined, f.ca);
}

/** Adds `login` to the program. */
export function loginCommand(program: Command, host: Host, start: Start): void {
  program.command("login")
    .description("Sign in with your identity provider; keeps an issued token (0600).")
    .option("--server <url>", "the server's HTTP endpoint, e.g. https://burrow.example.com")
    .option("--device", "device authorization flow: sign in on another device (headless machines)")
    .option("--print", "print the token (for curl --proxy-user :TOKEN)")
    .option("--refresh", "renew the kept token through the provider (needs offline_access)")
    .option("--ca <file>", "PEM roots to trust for the server and the provider")
    .option("--timeout <ms>", "give up waiting for the browser after this long", "300000")
    .action((opts: LoginFlags) => start(runLogin(host, opts)));
}
