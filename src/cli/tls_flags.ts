/**
 * How `burrow agent` and `burrow client` reach the server securely: the TLS
 * flags (pins, CA, server name, plain) and the options every dialing command
 * shares.
 *
 * @module
 */
import type { Command } from "commander";
import type { TlsClientOptions } from "../net.ts";
import { normalizePins } from "../tls.ts";
import { UsageError } from "../errors.ts";
import { collect, logLevelOption } from "./common.ts";
import type { Host } from "./mod.ts";

export interface TlsFlags {
  /** Pins, any of which matches (`--fingerprint` is repeatable; `fingerprint:` a list). */
  fingerprint?: string[] | undefined;
  ca?: string | undefined;
  serverName?: string | undefined;
  plain?: boolean | undefined;
}

/** How to reach the server: TLS verified by pin or CA (default: system CAs), or plain TCP. */
export async function clientTls(host: Host, f: TlsFlags): Promise<TlsClientOptions | undefined> {
  const pinned = f.fingerprint !== undefined && f.fingerprint.length > 0;
  if (f.plain) {
    if (pinned || f.ca) {
      throw new UsageError("--plain cannot be combined with --fingerprint or --ca");
    }
    return undefined;
  }
  const tls: TlsClientOptions = {};
  if (pinned) {
    try {
      const pins = normalizePins(f.fingerprint!);
      tls.fingerprint = pins.length === 1 ? pins[0]! : pins;
    } catch (e) {
      throw new UsageError(
        `--fingerprint: ${(e as Error).message} (as \`burrow fingerprint\` prints it)`,
      );
    }
  }
  if (f.ca) {
    try {
      tls.ca = [await host.readTextFile(f.ca)];
    } catch (e) {
      throw new UsageError(`cannot read --ca ${f.ca}: ${(e as Error).message}`);
    }
  }
  if (f.serverName) tls.serverName = f.serverName;
  return tls;
}

/** The options of every command that dials the server: proxy, TLS, log level. */
export function tlsOptions(cmd: Command): Command {
  return cmd
    .option(
      "--proxy <url>",
      "reach the server through this proxy: http://[user:pass@]host:port, socks5:// or socks5h:// " +
        "(default: HTTPS_PROXY/ALL_PROXY as curl reads them, minus NO_PROXY)",
    )
    .option("--proxy-file <file>", "file holding the --proxy URL (keeps its password out of ps)")
    .option("--no-proxy", "ignore HTTPS_PROXY, ALL_PROXY and NO_PROXY: connect directly")
    .option(
      "--fingerprint <sha256>",
      "pin the server's TLS certificate (as `burrow fingerprint` prints it); repeatable: any " +
        "of them matches",
      collect,
      [],
    )
    .option(
      "--ca <file>",
      "verify the server's TLS certificate against this CA (PEM) instead of the system CAs",
    )
    .option(
      "--server-name <name>",
      "name to verify in the server's certificate (default: the --server host)",
    )
    .option("--plain", "plain TCP, no TLS (loopback, tests, or behind a TLS-terminating proxy)")
    .addOption(logLevelOption());
}
