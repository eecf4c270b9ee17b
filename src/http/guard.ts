/**
 * Checks the HTTP app makes before any route, from where a request came
 * ({@link HttpPeer}, the app's env): the Host guard against DNS rebinding on
 * `listen.http`, and whether `/metrics` is open by default.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";
import { parseHost } from "../http1.ts";
import type { Addr } from "../net.ts";
import { normalizeIP } from "../host.ts";

/**
 * Where a request came from: the Hono app's env (bindings), given by every
 * server that serves the app (the HTTPS port, and each runtime adapter's
 * `serveHttp` for `listen.http`). In-process callers (tests) may pass none.
 */
export interface HttpPeer {
  /** The client's address: the connection's remote address. */
  readonly remote: Addr;
  /** Which listener took the request. */
  readonly listener: "http" | "https";
  /** The address that listener is bound to. */
  readonly bound: Addr;
}

/** The app's env type for Hono; read it with {@link peerOf}. */
export type HttpEnv = { Bindings: HttpPeer };

/** A request's peer from the app's env: undefined for an in-process call that gave none. */
export function peerOf(env: HttpPeer | undefined): HttpPeer | undefined {
  return env?.remote ? env : undefined;
}

/** What the guard reads from the config in force. */
export interface GuardSource {
  readonly config: { readonly tls: { mode: string; names?: string[] } };
}

/**
 * Whether `/metrics` is open by default for `peer`: on `listen.http` bound to
 * a loopback address only, and for in-process calls (no peer). Never on
 * `listen.https`: it faces the outside even when a proxy in front makes it
 * listen on loopback.
 */
export function metricsOpenByDefault(peer: HttpPeer | undefined): boolean {
  if (!peer) return true;
  if (peer.listener !== "http") return false;
  const h = peer.bound.host;
  if (h === "localhost") return true;
  const ip = normalizeIP(h);
  return ip !== null && (ip === "::1" || ip.startsWith("127."));
}

/**
 * On `listen.http`, refuse (421) a Host that is not an IP literal,
 * `localhost`, a name in `tls.names` or the listener's own host: a page on
 * another site must not reach the API through a name it rebinds to 127.0.0.1.
 * A malformed Host is refused with 400 on every listener.
 */
export function hostGuard(src: GuardSource): MiddlewareHandler<HttpEnv> {
  return async (c, next) => {
    const peer = peerOf(c.env);
    if (!peer) return await next();
    let host: string;
    let ip: boolean;
    try {
      ({ host, ip } = parseHost(c.req.header("host") ?? new URL(c.req.url).host));
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      return c.text(`${e.message}\n`, 400);
    }
    if (peer.listener === "http" && !ip && host !== "localhost") {
      const tls = src.config.tls;
      const names = [
        peer.bound.host.toLowerCase(),
        ...(tls.names ?? []).map((n) => n.toLowerCase()),
      ];
      if (!names.includes(host)) {
        return c.text(
          `Host ${host} is not a name of this server: use an IP address, localhost or a ` +
            "name in tls.names (DNS rebinding guard)\n",
          421,
        );
      }
    }
    await next();
  };
}
