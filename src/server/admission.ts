/**
 * Admission (SPEC.md §10.1): who may start a handshake on which port. Each
 * port has its own budget of pending handshakes, and within it each source
 * its own share; failed authentications are counted per port and source, so
 * bad SOCKS5 logins never block the agent port, and one address never takes
 * every other connection's place. A source is an IPv4 address or an IPv6 /64.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { normalizeIP } from "../host.ts";
import { formatIPv6, parseIPv6 } from "../ip.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Conn } from "../net.ts";
import type { ServerConfig } from "../config/mod.ts";

/** The server's listening ports, and the admin API (auth failures only; on both HTTP listeners). */
export type Port = "agents" | "socks" | "clients" | "https" | "admin";

/** The unit limits count by: an IPv4 address, or the /64 of an IPv6 address (`2001:db8::/64`). */
export function sourceOf(host: string): string {
  const ip = normalizeIP(host);
  if (ip === null) return host;
  if (!ip.includes(":")) return ip;
  const b = parseIPv6(ip)!;
  b.fill(0, 8);
  return `${formatIPv6(b)}/64`;
}

interface Failures {
  count: number;
  since: number;
  blockedUntil: number;
}

const MINUTE = 60_000;
/** Failure records kept before expired ones are swept. */
const SWEEP_AT = 10_000;

export class Admission {
  readonly #pending = new Map<Port, { total: number; bySource: Map<string, number> }>();
  readonly #failures = new Map<Port, Map<string, Failures>>();

  constructor(
    readonly config: () => ServerConfig,
    readonly metrics: Metrics,
    readonly log: Logger,
  ) {}

  /** Count and log a limit that triggered. */
  limitHit(limit: string, fields: Record<string, string | number | undefined>): void {
    this.metrics.inc("burrow_limit_hits_total", "Limits that triggered", { limit });
    this.log.warn("limit hit", { limit, ...fields });
  }

  /** Handshakes in progress on `port` (from `source`, if given). */
  pending(port: Port, source?: string): number {
    const p = this.#pending.get(port);
    if (!p) return 0;
    return source === undefined ? p.total : p.bySource.get(source) ?? 0;
  }

  /**
   * Admit `conn` to its handshake on `port`: refused (closed, null) while its
   * source is blocked or over its share, or the port is over its budget. The
   * handshake timeout closes it. Returns the function that ends the handshake
   * phase (idempotent; also called when the connection closes).
   */
  begin(conn: Conn, port: Port): (() => void) | null {
    const source = sourceOf(conn.remote.host);
    const lim = this.config().limits;
    const remote = fmt(conn.remote);
    const f = this.#failures.get(port)?.get(source);
    if (f && f.blockedUntil > Date.now()) {
      this.limitHit("auth_failures", { port, remote });
      conn.close();
      return null;
    }
    let p = this.#pending.get(port);
    if (!p) this.#pending.set(port, p = { total: 0, bySource: new Map() });
    const mine = p.bySource.get(source) ?? 0;
    if (mine >= lim.pendingHandshakesPerSource) {
      this.limitHit("pending_handshakes_per_source", {
        port,
        remote,
        max: lim.pendingHandshakesPerSource,
      });
      conn.close();
      return null;
    }
    if (p.total >= lim.pendingHandshakes) {
      this.limitHit("pending_handshakes", { port, remote, max: lim.pendingHandshakes });
      conn.close();
      return null;
    }
    p.total++;
    p.bySource.set(source, mine + 1);
    const timeoutMs = this.config().handshakeTimeoutMs;
    const timer = setTimeout(() => {
      this.limitHit("handshake_timeout", { port, remote, timeout_ms: timeoutMs });
      conn.close();
    }, timeoutMs);
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      p.total--;
      const n = (p.bySource.get(source) ?? 1) - 1;
      if (n === 0) p.bySource.delete(source);
      else p.bySource.set(source, n);
    };
    conn.closed.then(end);
    return end;
  }

  /** Seconds `host`'s source stays blocked on `port` for failed authentications; 0 if it is not. */
  blockedFor(port: Port, host: string): number {
    const f = this.#failures.get(port)?.get(sourceOf(host));
    const left = f ? f.blockedUntil - Date.now() : 0;
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /** Count a failed authentication from `host` on `port`; block its source there past the limit. */
  authFailed(port: Port, host: string): void {
    const now = Date.now();
    const lim = this.config().limits;
    let table = this.#failures.get(port);
    if (!table) this.#failures.set(port, table = new Map());
    const source = sourceOf(host);
    let f = table.get(source);
    if (!f || (now - f.since > MINUTE && f.blockedUntil < now)) {
      f = { count: 0, since: now, blockedUntil: 0 };
      table.set(source, f);
    }
    f.count++;
    if (f.count >= lim.authFailuresPerMinute && f.blockedUntil < now) {
      f.blockedUntil = now + lim.authBlockMs;
      f.count = 0;
      f.since = now;
      this.limitHit("auth_failures", { port, source, blocked_ms: lim.authBlockMs });
    }
    if (table.size > SWEEP_AT) {
      for (const [s, x] of table) {
        if (now - x.since > MINUTE && x.blockedUntil < now) table.delete(s);
      }
    }
  }
}
