/**
 * Admission (SPEC.md §10.1): who may start a handshake on which port. Each
 * port has its own budget of pending handshakes, and within it each source
 * its own share; failed authentications are counted per port and source, so
 * bad SOCKS5 logins never block the agent port, and one address never takes
 * every other connection's place. A source is an IPv4 address or an IPv6 /64;
 * the wider IPv6 prefixes of `limits.ipv6_shares` (a /56, a /48) may hold only
 * their share of a port's pending handshakes and of its failure budget, so a
 * few /64s of one allocation cannot take a port's every place either.
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
export type Port = "agents" | "socks" | "clients" | "https" | "admin" | "login";

/** The unit limits count by: an IPv4 address, or the /64 of an IPv6 address (`2001:db8::/64`). */
export function sourceOf(host: string): string {
  const ip = normalizeIP(host);
  if (ip === null) return host;
  if (!ip.includes(":")) return ip;
  const b = parseIPv6(ip)!;
  b.fill(0, 8);
  return `${formatIPv6(b)}/64`;
}

/** The wider IPv6 prefix of `host` (its `prefix` bits, as `2001:db8::/56`), or null for IPv4. */
export function prefixOf(host: string, prefix: number): string | null {
  const ip = normalizeIP(host);
  if (ip === null || !ip.includes(":")) return null;
  const b = parseIPv6(ip)!;
  const full = prefix >> 3;
  if (prefix & 7) b[full] = b[full]! & (0xff << (8 - (prefix & 7)));
  b.fill(0, prefix & 7 ? full + 1 : full);
  return `${formatIPv6(b)}/${prefix}`;
}

/** A unit a limit counts: the source, or one of its wider IPv6 prefixes with its share. */
interface Unit {
  key: string;
  share: number | null;
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
    const lim = this.config().limits;
    const units = this.#units(conn.remote.host);
    const blocked = this.#blocked(port, units);
    if (blocked) {
      this.limitHit(blocked.share === null ? "auth_failures" : "auth_failures_per_prefix", {
        port,
        remote: fmt(conn.remote),
        ...(blocked.share === null ? {} : { prefix: blocked.key }),
      });
      conn.close();
      return null;
    }
    let p = this.#pending.get(port);
    if (!p) this.#pending.set(port, p = { total: 0, bySource: new Map() });
    for (const u of units) {
      const max = u.share === null
        ? lim.pendingHandshakesPerSource
        : Math.max(1, Math.floor(u.share * lim.pendingHandshakes));
      if ((p.bySource.get(u.key) ?? 0) >= max) {
        const limit = u.share === null
          ? "pending_handshakes_per_source"
          : "pending_handshakes_per_prefix";
        const remote = fmt(conn.remote);
        this.limitHit(limit, { port, remote, ...(u.share === null ? {} : { prefix: u.key }), max });
        conn.close();
        return null;
      }
    }
    if (p.total >= lim.pendingHandshakes) {
      const remote = fmt(conn.remote);
      this.limitHit("pending_handshakes", { port, remote, max: lim.pendingHandshakes });
      conn.close();
      return null;
    }
    p.total++;
    for (const u of units) p.bySource.set(u.key, (p.bySource.get(u.key) ?? 0) + 1);
    return this.#timed(conn, port, () => {
      p.total--;
      for (const u of units) {
        const n = (p.bySource.get(u.key) ?? 1) - 1;
        if (n === 0) p.bySource.delete(u.key);
        else p.bySource.set(u.key, n);
      }
    });
  }

  /** The handshake timeout on `conn`; the idempotent end of the handshake phase, which calls `release`. */
  #timed(conn: Conn, port: Port, release: () => void): () => void {
    const timeoutMs = this.config().handshakeTimeoutMs;
    const timer = setTimeout(() => {
      // The address is formatted only when a limit is hit (not once per connection).
      this.limitHit("handshake_timeout", { port, remote: fmt(conn.remote), timeout_ms: timeoutMs });
      conn.close();
    }, timeoutMs);
    return endOnce(conn, timer, release);
  }

  /** What limits count `host` as: its source, and for IPv6 its wider prefixes. */
  #units(host: string): Unit[] {
    const source = sourceOf(host);
    const units: Unit[] = [{ key: source, share: null }];
    if (!source.endsWith("/64")) return units; // IPv4
    for (const { prefix, share } of this.config().limits.ipv6Shares) {
      const key = prefixOf(host, prefix);
      if (key !== null) units.push({ key, share });
    }
    return units;
  }

  /** The first of `units` blocked on `port` now, if any. */
  #blocked(port: Port, units: Unit[]): Unit | undefined {
    const table = this.#failures.get(port);
    if (!table || table.size === 0) return undefined; // no failure counted on this port
    const now = Date.now();
    for (const u of units) if ((table.get(u.key)?.blockedUntil ?? 0) > now) return u;
    return undefined;
  }

  /** Seconds `host` stays blocked on `port` (its source or a wider IPv6 prefix); 0 if it is not. */
  blockedFor(port: Port, host: string): number {
    const table = this.#failures.get(port);
    const now = Date.now();
    let left = 0;
    for (const u of this.#units(host)) {
      left = Math.max(left, (table?.get(u.key)?.blockedUntil ?? 0) - now);
    }
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /**
   * Count a failed authentication from `host` on `port`; block its source
   * there past `auth_failures_per_minute`, and an IPv6 prefix of
   * `ipv6_shares` past its share of `auth_failure_budget` (per minute).
   */
  authFailed(port: Port, host: string): void {
    const now = Date.now();
    const lim = this.config().limits;
    let table = this.#failures.get(port);
    if (!table) this.#failures.set(port, table = new Map());
    for (const u of this.#units(host)) {
      let f = table.get(u.key);
      if (!f || (now - f.since > MINUTE && f.blockedUntil < now)) {
        f = { count: 0, since: now, blockedUntil: 0 };
        table.set(u.key, f);
      }
      f.count++;
      const max = u.share === null
        ? lim.authFailuresPerMinute
        : Math.max(1, Math.floor(u.share * lim.authFailureBudget));
      if (f.count >= max && f.blockedUntil < now) {
        f.blockedUntil = now + lim.authBlockMs;
        f.count = 0;
        f.since = now;
        const limit = u.share === null ? "auth_failures" : "auth_failures_per_prefix";
        this.limitHit(limit, { port, source: u.key, max, blocked_ms: lim.authBlockMs });
      }
    }
    if (table.size > SWEEP_AT) {
      for (const [s, x] of table) {
        if (now - x.since > MINUTE && x.blockedUntil < now) table.delete(s);
      }
    }
  }
}

/**
 * The end of a handshake phase: clears `timer` and calls `release`, once, at
 * its first call or when `conn` closes. The connection's handler and its
 * `closed` hold the end as long as it lasts (a stream's whole life), so once
 * called it lets go of the timer and of `release` and what they hold; a
 * function of its own, so that it holds nothing else.
 */
function endOnce(
  conn: Conn,
  timer: ReturnType<typeof setTimeout>,
  release: () => void,
): () => void {
  let t: typeof timer | undefined = timer;
  let r: (() => void) | undefined = release;
  const end = () => {
    if (!r) return;
    const then = r;
    clearTimeout(t);
    t = r = undefined;
    then();
  };
  conn.closed.then(end);
  return end;
}
