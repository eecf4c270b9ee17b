/**
 * The server config's `udp:` section: where the SOCKS5 port's UDP relay
 * sockets bind and which address UDP ASSOCIATE answers (SPEC.md §8.2).
 *
 * @module
 */
import { normalizeIP } from "../host.ts";
import type { Walker } from "./walker.ts";

export interface UdpConfig {
  /**
   * `listen: ADDR[:PORTS]`: the relay sockets' address and port range
   * (`40000-40999`, one port, or 0 for any free port); null: the address
   * each client's TCP connection reached, any free port.
   */
  listen: { host: string; portMin: number; portMax: number } | null;
  /** `advertise: ADDR`: BND.ADDR in the reply (behind NAT); null: the bound address. */
  advertise: string | null;
}

/** The port part of `listen`: `N` or `N-M` (0 alone: any free port). */
function ports(w: Walker, s: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  const lo = Number(m?.[1]);
  const hi = m?.[2] === undefined ? lo : Number(m[2]);
  if (!m || hi > 65535 || lo > hi || (lo === 0 && hi !== 0)) {
    w.fail("udp.listen", `"${s}" is not a port or a range of ports such as 40000-40999`);
  }
  return [lo, hi];
}

function ip(w: Walker, s: string, path: string): string {
  const n = normalizeIP(s);
  if (n === null) w.fail(path, `"${s}" is not an IP address`);
  return n;
}

/** `udp: {listen: ADDR[:PORTS], advertise: ADDR}`, both optional. */
export function udpConfig(w: Walker, section: unknown): UdpConfig {
  const u = w.obj(section, "udp");
  w.known(u, "udp", ["listen", "advertise"]);
  let listen: UdpConfig["listen"] = null;
  if (u.listen !== undefined) {
    const s = w.str(u.listen, "udp.listen");
    // [v6]:PORTS, v4:PORTS, or an address alone (an IPv6 one may go without brackets).
    const bare = s.indexOf(":") !== s.lastIndexOf(":") && !s.startsWith("[");
    const m = bare
      ? [s, s, undefined]
      : /^\[([^\]]+)\](?::(.+))?$/.exec(s) ?? /^([^:]+)(?::(.+))?$/.exec(s) ?? [s, s, undefined];
    const [portMin, portMax] = m[2] === undefined ? [0, 0] : ports(w, m[2]);
    listen = { host: ip(w, m[1]!, "udp.listen"), portMin, portMax };
  }
  const advertise = u.advertise === undefined
    ? null
    : ip(w, w.str(u.advertise, "udp.advertise"), "udp.advertise");
  return { listen, advertise };
}
