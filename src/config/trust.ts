/**
 * The server config's trust in proxies (`trusted_proxies`, `proxy_protocol`)
 * and the IPv6 prefix shares of `limits.ipv6_shares` (SPEC.md §10.1, §10.3).
 *
 * @module
 */
import { parseIP } from "../ip.ts";
import type { Limits, ServerConfig } from "./server.ts";
import type { Walker } from "./walker.ts";

/** An address range: `base/prefix`. */
export interface Cidr {
  base: string;
  prefix: number;
}

const PORTS = ["agents", "socks", "clients", "https"] as const;

/** `limits.ipv6_shares: {"56": 0.5, "48": 0.75}`: prefix length (1..63) to a share in (0, 1]. */
export function ipv6Shares(w: Walker, v: unknown): Limits["ipv6Shares"] {
  const o = w.obj(v, "limits.ipv6_shares");
  return Object.entries(o).map(([k, share]) => {
    const path = `limits.ipv6_shares.${k}`;
    const prefix = Number(k);
    if (!/^[0-9]+$/.test(k) || prefix < 1 || prefix > 63) {
      w.fail(path, "must be a prefix length in 1..63 (a /64 is a source of its own)");
    }
    if (typeof share !== "number" || !(share > 0 && share <= 1)) {
      w.fail(path, "must be a share greater than 0 and at most 1");
    }
    return { prefix, share };
  }).sort((a, b) => b.prefix - a.prefix);
}

/** `trusted_proxies: [CIDR…]`: an address alone is its own /32 or /128. */
export function trustedProxies(w: Walker, v: unknown): Cidr[] {
  return w.list(v, "trusted_proxies").map((item, i) => {
    const path = `trusted_proxies[${i}]`;
    const [base = "", bits, ...more] = w.str(item, path).split("/");
    const ip = parseIP(base);
    const max = ip?.kind === "ipv4" ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (
      !ip || more.length > 0 || (bits !== undefined && !/^[0-9]{1,3}$/.test(bits)) || prefix > max
    ) {
      w.fail(path, "must be an IP address or a CIDR such as 10.0.0.0/8 or fd00::/8");
    }
    return { base, prefix };
  });
}

/**
 * `proxy_protocol: [agents, socks, clients, https]`: listeners that expect a
 * PROXY header (on a TLS listener, before the TLS handshake).
 */
export function proxyProtocol(
  w: Walker,
  v: unknown,
  cfg: ServerConfig,
): ServerConfig["proxyProtocol"] {
  const out = new Set<(typeof PORTS)[number]>();
  w.list(v, "proxy_protocol").forEach((item, i) => {
    const path = `proxy_protocol[${i}]`;
    const port = PORTS.find((p) => p === item);
    if (!port) w.fail(path, `must be one of ${PORTS.join(", ")}`);
    out.add(port);
  });
  if (out.size > 0 && cfg.trustedProxies.length === 0) {
    w.fail("proxy_protocol", "needs trusted_proxies: the proxies allowed to send the header");
  }
  return out;
}
