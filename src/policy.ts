/**
 * Target rules (SPEC.md §7): parsing the text form used in config files and
 * flags, and matching targets against them.
 *
 * Text form: `HOST[:PORTS][/PROTO]`, optionally prefixed by `CLIENT=` (agent
 * side, rule for one client only).
 *   HOST  = `*` | `*.suffix` | `name` | `1.2.3.4` | `10.0.0.0/8` | `[fd00::1]` | `[fd00::/8]`
 *   PORTS = `*` | `80` | `8000-8100` | `80,443,8000-8100`  (default `*`)
 *   PROTO = `tcp` | `udp`  (default `tcp`; a suffix, as Docker and firewalls
 *           write it: a prefix `udp:` would read as a host named "udp")
 *
 * A rule allows its protocol only (SPEC.md §5.7): {@link matchRule} takes
 * the target's protocol, TCP unless said otherwise.
 *
 * @module
 */
import { normalizeHostName, normalizeIP, normalizeTarget, unmapIPv4 } from "./host.ts";
import { inCidr, ipKind } from "./ip.ts";
import { type Rule, RuleProtocol, type Target } from "./messages.ts";
import { RuleError } from "./errors.ts";

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** The transport a rule allows and a target is reached over. */
export type Protocol = keyof typeof RuleProtocol;

/**
 * `text` without its `/tcp` or `/udp` suffix, and the protocol (TCP without
 * one). A final `/` segment of letters can only be a protocol: a host name
 * has no `/`, and a CIDR's prefix length is digits.
 */
function splitProtocol(text: string, rule: string): [string, Protocol] {
  const m = /\/([A-Za-z]+)$/.exec(text);
  if (!m) return [text, "tcp"];
  const name = m[1]!.toLowerCase();
  if (name !== "tcp" && name !== "udp") {
    throw new RuleError(`Cannot parse rule "${rule}": unknown protocol "${m[1]}" (tcp or udp)`);
  }
  return [text.slice(0, m.index), name];
}

/**
 * The normalized form of a host pattern (`*`, `*.suffix` or a host name, see
 * host.ts), or `null` if it is none: `*.Corp.` becomes `*.corp`.
 */
export function normalizePattern(pattern: string): string | null {
  if (pattern === "*") return pattern;
  if (pattern.startsWith("*.")) {
    const suffix = normalizeHostName(pattern.slice(2));
    return suffix === null ? null : `*.${suffix}`;
  }
  return normalizeHostName(pattern);
}

/**
 * A rule received from a peer (ANNOUNCE) in normalized form, or `null` if its
 * host pattern is not one (such a rule could never match a valid target).
 */
export function normalizeRule(r: Rule): Rule | null {
  if (r.kind !== "host") return r;
  const pattern = normalizePattern(r.pattern);
  if (pattern === null) return null;
  return pattern === r.pattern ? r : { ...r, pattern };
}

function parsePorts(text: string, rule: string): Array<[number, number]> {
  if (text === "*" || text === "") return [[0, 65535]];
  return text.split(",").map((part) => {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || lo > 65535 || hi > 65535 || lo > hi) {
      throw new RuleError(`Cannot parse rule "${rule}": bad port range "${part}"`);
    }
    return [lo, hi];
  });
}

/** Parse one rule text into wire rules (one per port range). */
export function parseRule(text: string, defaultClient = ""): Rule[] {
  let client = defaultClient;
  let rest = text.trim();
  const eq = rest.indexOf("=");
  if (eq >= 0) {
    client = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
    if (!NAME.test(client)) {
      throw new RuleError(`Cannot parse rule "${text}": bad client name "${client}"`);
    }
  }
  const [spec, protocol] = splitProtocol(rest, text);
  rest = spec;
  let host: string;
  let ports = "*";
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw new RuleError(`Cannot parse rule "${text}": missing "]"`);
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      throw new RuleError(`Cannot parse rule "${text}": expected ":" after "]"`);
    }
    ports = after.slice(1) || "*";
  } else {
    const colon = rest.lastIndexOf(":");
    host = colon >= 0 ? rest.slice(0, colon) : rest;
    if (colon >= 0) ports = rest.slice(colon + 1);
  }
  if (host === "") throw new RuleError(`Cannot parse rule "${text}": empty host`);
  const ranges = parsePorts(ports, text);
  const slash = host.indexOf("/");
  const base = slash >= 0 ? host.slice(0, slash) : host;
  const kind = ipKind(base);
  let shape: { kind: "host"; pattern: string } | {
    kind: "cidr4" | "cidr6";
    addr: string;
    prefix: number;
  };
  if (kind) {
    const max = kind === "ipv4" ? 32 : 128;
    const prefix = slash >= 0 ? Number(host.slice(slash + 1)) : max;
    if (!/^\d{1,3}$/.test(slash >= 0 ? host.slice(slash + 1) : "0") || prefix > max) {
      throw new RuleError(`Cannot parse rule "${text}": bad prefix length`);
    }
    if (kind === "ipv6" && prefix >= 96 && unmapIPv4(base) !== null) {
      throw new RuleError(
        `Cannot parse rule "${text}": IPv4-mapped addresses are matched as IPv4; write the IPv4 rule instead`,
      );
    }
    shape = { kind: kind === "ipv4" ? "cidr4" : "cidr6", addr: base, prefix };
  } else {
    const pattern = slash >= 0 ? null : normalizePattern(host);
    if (pattern === null) {
      throw new RuleError(
        `Cannot parse rule "${text}": "${host}" is not a host pattern, IP address or CIDR`,
      );
    }
    shape = { kind: "host", pattern };
  }
  const proto = RuleProtocol[protocol];
  return ranges.map(([portMin, portMax]) =>
    ({ client, portMin, portMax, protocol: proto, ...shape }) as Rule
  );
}

/** Text form of a rule, as parseRule reads it. */
export function formatRule(r: Rule): string {
  const ports = r.portMin === 0 && r.portMax === 65535
    ? "*"
    : r.portMin === r.portMax
    ? `${r.portMin}`
    : `${r.portMin}-${r.portMax}`;
  const host = r.kind === "host"
    ? r.pattern
    : r.kind === "cidr4"
    ? `${r.addr}/${r.prefix}`
    : `[${r.addr}/${r.prefix}]`;
  const proto = r.protocol === RuleProtocol.udp ? "/udp" : "";
  return `${r.client ? `${r.client}=` : ""}${host}:${ports}${proto}`;
}

/** `pattern` and `host` are normalized (see host.ts). */
function hostMatches(pattern: string, host: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1));
  return host === pattern;
}

/** A normalized IP matches a CIDR rule of its own family only. */
function ipInRule(ip: string, r: Extract<Rule, { kind: "cidr4" | "cidr6" }>): boolean {
  return ip.includes(":") === (r.kind === "cidr6") && inCidr(ip, r.addr, r.prefix);
}

/**
 * How a rule treats a domain target under a CIDR rule:
 * - "never": it does not match (the server's grants: it cannot resolve names);
 * - "defer": it matches, the agent checks resolved addresses (announcements);
 * - a list of resolved addresses: it matches if one of them is inside.
 */
export type DomainMode = "never" | "defer" | string[];

/**
 * Does `target`, reached over `protocol`, match rule `r` (ignoring the
 * rule's client)? `target` must be normalized (host.ts `normalizeTarget`:
 * the router and the agent do that once per CONNECT); resolved addresses in
 * `domains` are normalized here (IPv4-mapped ones count as IPv4).
 */
export function matchRule(
  r: Rule,
  target: Target,
  domains: DomainMode = "never",
  protocol: Protocol = "tcp",
): boolean {
  if (r.protocol !== RuleProtocol[protocol]) return false;
  if (target.port < r.portMin || target.port > r.portMax) return false;
  if (r.kind === "host") return hostMatches(r.pattern, target.host);
  if (target.type !== "domain") return ipInRule(target.host, r);
  if (domains === "never") return false;
  if (domains === "defer") return true;
  return domains.some((ip) => {
    const n = normalizeIP(ip);
    return n !== null && ipInRule(n, r);
  });
}

/** Rules that apply to `client` (its own and those for every client). */
export function rulesFor(rules: readonly Rule[], client: string): Rule[] {
  return rules.filter((r) => r.client === "" || r.client === client);
}

/**
 * Is `target`, reached over `protocol`, allowed for `client` by any of
 * `rules`? `target` is normalized here first; one without a canonical form
 * is allowed by nothing.
 */
export function allowed(
  rules: readonly Rule[],
  client: string,
  target: Target,
  domains: DomainMode = "never",
  protocol: Protocol = "tcp",
): boolean {
  const n = normalizeTarget(target);
  if (!n.ok) return false;
  return rules.some((r) =>
    (r.client === "" || r.client === client) && matchRule(r, n.target, domains, protocol)
  );
}

/**
 * May `client` open a stream of `protocol` to `target` under `rules`
 * (SPEC.md §7.2)? A TCP stream: its target as {@link allowed} says. A UDP
 * association (SPEC.md §2.5), whose target is only the client's requested
 * address: when any UDP rule applies to the client; each datagram's target
 * is checked on its own ({@link allowed} with "udp").
 */
export function opens(
  rules: readonly Rule[],
  client: string,
  target: Target,
  domains: DomainMode,
  protocol: Protocol = "tcp",
): boolean {
  if (protocol === "tcp") return allowed(rules, client, target, domains);
  return rules.some((r) =>
    (r.client === "" || r.client === client) && r.protocol === RuleProtocol.udp
  );
}
