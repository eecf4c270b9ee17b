/**
 * How the agent opens a target (SPEC.md §2.2): check the target's form and
 * the agent's own allowlist (never trusting the server), resolve, dial; and
 * how a dial failure maps onto a SOCKS5 reply code.
 *
 * @module
 */
import { NetError, TimeoutError } from "./errors.ts";
import { normalizeIP, normalizeTarget, unroutable } from "./host.ts";
import { type MessageOf, type Rule, Status } from "./messages.ts";
import type { Conn, Net } from "./net.ts";
import { matchRule, rulesFor } from "./policy.ts";
import { err, ok, type Result } from "./result.ts";

/** Why a target was not dialed: a SOCKS5 reply code (SPEC.md §9.3) and a text for the log. */
export type DialRefusal = { status: number; reason: string };

/** Map a dial failure onto a SOCKS5 reply code (SPEC.md §9.3). */
export function statusOf(e: unknown): number {
  if (e instanceof TimeoutError) return Status.ttl_expired;
  if (!(e instanceof NetError)) return Status.general_failure;
  switch (e.code) {
    case "ECONNREFUSED":
      return Status.connection_refused;
    case "ENOTFOUND":
    case "EHOSTUNREACH":
      return Status.host_unreachable;
    case "ENETUNREACH":
      return Status.network_unreachable;
    case "ETIMEDOUT":
      return Status.ttl_expired;
    default:
      return Status.general_failure;
  }
}

/**
 * Check the target's form and the allowlist (never trusting the server),
 * resolve, dial.
 */
export async function dialTarget(
  net: Net,
  allow: Rule[],
  open: MessageOf<"OPEN">,
  timeoutMs: number,
): Promise<Result<Conn, DialRefusal>> {
  const n = normalizeTarget(open.target);
  if (!n.ok) return err({ status: Status.not_allowed, reason: n.error });
  const t = n.value;
  const rules = rulesFor(allow, open.client);
  let hosts: string[];
  if (rules.some((r) => matchRule(r, t, "never"))) {
    hosts = [t.host];
  } else if (
    t.type === "domain" && rules.some((r) => r.kind !== "host" && matchRule(r, t, "defer"))
  ) {
    // Only CIDR rules can allow this name: resolve, and dial only addresses inside.
    let ips: string[];
    try {
      ips = await net.lookup(t.host);
    } catch (e) {
      return err({ status: statusOf(e), reason: `cannot resolve ${t.host}` });
    }
    hosts = ips.map(normalizeIP).filter((ip) => ip !== null).filter((ip) =>
      rules.some((r) => matchRule(r, t, [ip]))
    );
    if (hosts.length === 0) {
      return err({
        status: Status.not_allowed,
        reason: "resolved addresses outside the allowlist",
      });
    }
  } else {
    return err({ status: Status.not_allowed, reason: "target outside the agent's allowlist" });
  }
  let last: unknown;
  for (const host of hosts.slice(0, 4)) {
    try {
      const no = unroutable(host); // the same reply on every runtime
      if (no) throw no;
      return ok(await net.dial({ host, port: t.port, timeoutMs }));
    } catch (e) {
      last = e;
    }
  }
  return err({
    status: statusOf(last),
    reason: last instanceof Error ? last.message : "dial failed",
  });
}
