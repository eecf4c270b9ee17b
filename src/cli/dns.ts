/**
 * `burrow client --dns ADDR [--dns-server HOST[:PORT]]` (SPEC.md §10.2), and
 * the nameserver `burrow agent` reports (SPEC.md §5.19).
 *
 * @module
 */
import type { Command } from "commander";
import { type ClientConfig, parseAddr, parseDnsServer } from "../config/mod.ts";
import { ConfigError, UsageError } from "../errors.ts";
import type { Target } from "../messages.ts";
import type { Addr } from "../net.ts";
import { firstNameserver, RESOLV_CONF } from "../resolv_conf.ts";
import type { Host } from "./mod.ts";

export interface DnsFlags {
  dns?: string;
  dnsServer?: string;
}

/** Adds `--dns` and `--dns-server` to `burrow client`. */
export function dnsOptions(cmd: Command): Command {
  return cmd
    .option(
      "--dns <addr>",
      "answer DNS queries (UDP and TCP) on addr, e.g. 127.0.0.1:5353, through the agent",
    )
    .option(
      "--dns-server <host[:port]>",
      "the DNS server inside the network for --dns (default: the agent's nameserver)",
    );
}

/** `--dns` over `dns:`, `--dns-server` over `dns_server:`; undefined: no DNS. */
export function clientDns(
  f: DnsFlags,
  file: ClientConfig,
): { listen: Addr; server: Target | null } | undefined {
  const parse = <T>(flag: string, text: string, fn: (t: string) => T): T => {
    try {
      return fn(text);
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(`${flag}: ${e.message}`);
      throw e;
    }
  };
  const listen = f.dns !== undefined ? parse("--dns", f.dns, parseAddr) : file.dns;
  const server = f.dnsServer !== undefined
    ? parse("--dns-server", f.dnsServer, parseDnsServer)
    : file.dnsServer ?? null;
  if (!listen) {
    if (server) throw new UsageError("--dns-server needs --dns (or dns: in --config)");
    return undefined;
  }
  return { listen, server };
}

/** The agent's nameserver: the first of /etc/resolv.conf, null when none or unreadable. */
export function nameserver(host: Host): Promise<Target | null> {
  return host.readTextFile(RESOLV_CONF).then(firstNameserver, () => null);
}
