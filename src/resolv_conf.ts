/**
 * The agent's nameserver (SPEC.md §5.19): the first `nameserver` line of a
 * resolv.conf(5) text, as a {@link Target} on port 53. The agent reports it
 * in INSTANCE; `burrow client --dns` sends its queries there by default.
 *
 * @module
 */
import { parseIP, targetOf } from "./ip.ts";
import type { Target } from "./messages.ts";

/** Where resolv.conf(5) lives (the runtime's resolver reads it there too on Linux and the BSDs). */
export const RESOLV_CONF = "/etc/resolv.conf";

/**
 * The first `nameserver` of `text` on port 53, or null when there is none.
 * Comments (`#`, `;`) are skipped; an address that is no IP literal (an IPv6
 * address with a `%zone` included: a target has no zone) counts as none, as
 * does a line of more than 1024 characters.
 */
export function firstNameserver(text: string): Target | null {
  for (const raw of text.split("\n")) {
    if (raw.length > 1024) continue;
    const line = raw.replace(/[#;].*$/, "").trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (!m) continue;
    return parseIP(m[1]!) ? targetOf(m[1]!, 53) : null;
  }
  return null;
}
