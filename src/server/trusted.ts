/**
 * Trusted proxies (`trusted_proxies`, `proxy_protocol`; SPEC.md §10.3): on a
 * listener named in `proxy_protocol`, every connection must come from a
 * trusted proxy and start with a PROXY header, whose source then replaces
 * the connection's remote address before admission, so limits, logs, the
 * audit log and the admin API all see the real source. On the HTTPS port,
 * `X-Forwarded-For` from a trusted proxy does the same for WebSocket links
 * and the HTTP app ({@link forwardedFor}).
 *
 * @module
 */
import { fmt } from "../addr.ts";
import type { Cidr, ServerConfig } from "../config/mod.ts";
import { EofError, NetError, ProxyHeaderError, TimeoutError } from "../errors.ts";
import { normalizeIP } from "../host.ts";
import { inCidr } from "../ip.ts";
import type { Addr, Conn } from "../net.ts";
import { readProxyHeader } from "../proxyproto.ts";
import type { Port } from "./admission.ts";
import type { ServerContext } from "./context.ts";

/** Whether `host` is one of `trusted`. */
export function isTrusted(trusted: readonly Cidr[], host: string): boolean {
  return trusted.some((c) => inCidr(host, c.base, c.prefix));
}

/**
 * Whether a connection on `port` starts with a PROXY header: its port is
 * named in `proxy_protocol`, or its TLS start waits for the header
 * (`startTls`). Otherwise {@link proxied} returns it as it is.
 */
export function expectsHeader(
  ctx: ServerContext,
  port: Exclude<Port, "admin" | "login">,
  startTls = false,
): boolean {
  return startTls || ctx.config().proxyProtocol.has(port);
}

/**
 * `conn` as the rest of the server sees it on `port`: unchanged where
 * `proxy_protocol` does not name the port; else with the PROXY header's
 * source as its remote address, or null (closed, counted and logged) when
 * it comes from an untrusted address or its header is missing, bad or late.
 * `startTls`: `conn` is of a `deferTls` listener, the header is required
 * whatever the config says now (the listener was made for it), and TLS
 * starts right after it.
 */
export async function proxied(
  ctx: ServerContext,
  port: Exclude<Port, "admin" | "login">,
  conn: Conn,
  startTls = false,
): Promise<Conn | null> {
  const cfg = ctx.config();
  if (!expectsHeader(ctx, port, startTls)) return conn;
  const refuse = (reason: string, error?: string) => {
    ctx.metrics.inc(
      "burrow_proxy_header_refusals_total",
      "Connections refused for their PROXY header",
      {
        port,
        reason,
      },
    );
    ctx.log.warn("PROXY header refused, closing", {
      port,
      remote: fmt(conn.remote),
      reason,
      ...(error ? { error } : {}),
    });
    conn.close();
    return null;
  };
  if (!isTrusted(cfg.trustedProxies, conn.remote.host)) return refuse("untrusted");
  try {
    const r = await readProxyHeader(conn, cfg.handshakeTimeoutMs, startTls);
    ctx.log.debug("PROXY header", {
      port,
      proxy: fmt(conn.remote),
      remote: fmt(r.conn.remote),
      version: r.header.version,
    });
    return r.conn;
  } catch (e) {
    if (e instanceof TimeoutError) {
      ctx.admission.limitHit("proxy_header_timeout", {
        port,
        remote: fmt(conn.remote),
        timeout_ms: cfg.handshakeTimeoutMs,
      });
      conn.close();
      return null;
    }
    if (e instanceof ProxyHeaderError) {
      if (e.limit) {
        ctx.admission.limitHit(e.limit, { port, remote: fmt(conn.remote), error: e.message });
      }
      return refuse(e.limit ? "size" : "bad", e.message);
    }
    if (e instanceof EofError || e instanceof NetError) {
      ctx.log.debug("connection ended before its PROXY header", { port, error: e.message });
      conn.close();
      return null;
    }
    throw e;
  }
}

/**
 * The real source of an HTTP request on a connection from `remote`: when
 * `remote` is a trusted proxy, the rightmost address of `header` (the
 * X-Forwarded-For values) that is not itself trusted (the leftmost, if all
 * are); an entry that is not an IP address ends the walk at the last
 * address before it. Otherwise, or without the header, `remote` itself.
 * The port of a forwarded address is unknown: 0.
 */
export function forwardedFor(cfg: ServerConfig, remote: Addr, header: string | null): Addr {
  const trusted = cfg.trustedProxies;
  if (header === null || !isTrusted(trusted, remote.host)) return remote;
  let real = remote;
  const hops = header.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = normalizeIP(hops[i]!.trim());
    if (ip === null) break;
    real = { host: ip, port: 0 };
    if (!isTrusted(trusted, ip)) break;
  }
  return real;
}
