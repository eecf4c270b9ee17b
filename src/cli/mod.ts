/**
 * The `burrow` command line, the same on every runtime. A runtime's main.ts
 * builds a {@link Host} and calls {@link main}. The commands are in
 * server.ts, agent.ts (agent and client), tools.ts (token, keygen, demo) and
 * service.ts (systemd units).
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { VERSION_MAX, VERSION_MIN } from "../messages.ts";
import type { HttpPeer } from "../http/mod.ts";
import type { Addr, Net } from "../net.ts";
import { agentCommands } from "./agent.ts";
import { addLogFormat, flushLogs, VERSION } from "./common.ts";
import { serverCommand } from "./server.ts";
import { statusCommand } from "./status.ts";
import { tokensCommand } from "./tokens.ts";
import { loginCommand } from "./login.ts";
import { serviceCommand } from "./service.ts";
import { toolCommands } from "./tools.ts";
import { ConfigError, ListenError, RuleError, UsageError } from "../errors.ts";

/** What the CLI needs from the runtime besides sockets. */
export interface Host {
  readonly net: Net;
  /** The runtime's version (`net.runtime` names the runtime). */
  readonly version: string;
  readTextFile(path: string): Promise<string>;
  /** Write a file only the owner may read (0600), creating its directory (0700). */
  writeSecretFile(path: string, text: string): Promise<void>;
  /** Read a secret file (trimmed); refused when group or others may read it, or empty. */
  readSecretFile(path: string): Promise<string>;
  /** Call `fn` on the signal; returns a function that stops listening. */
  onSignal(signal: "SIGINT" | "SIGTERM" | "SIGHUP", fn: () => void): () => void;
  /**
   * Serve `fetch` over HTTP on `addr`, giving it each request's {@link HttpPeer}
   * (remote address, listener `http`, the bound address).
   */
  serveHttp(
    addr: Addr,
    fetch: (req: Request, peer: HttpPeer) => Response | Promise<Response>,
  ): Promise<HttpServer>;
  /** Standard output, one line. */
  print(line: string): void;
  /**
   * An environment variable, or undefined. Secrets for containers and
   * systemd (BURROW_TOKEN, BURROW_KEY_FILE, …) come this way; see agent.ts.
   */
  env(name: string): string | undefined;
  /** The current working directory (absolute). */
  cwd(): string;
  /**
   * The command line that starts this CLI again, in absolute paths: the
   * executable, then the runtime's flags and entry script if it needs them
   * (none for the `bun build --compile` executable). `burrow service` puts it
   * into ExecStart.
   */
  readonly command: readonly string[];
}

export interface HttpServer {
  readonly addr: Addr;
  close(): Promise<void>;
}

/** `burrow --version`: burrow's version, the runtime and its version, the protocol versions. */
export function versionLine(host: Host): string {
  return `burrow ${VERSION} (${host.net.runtime} ${host.version}; protocol ${VERSION_MIN}..${VERSION_MAX})`;
}

/**
 * Report an error that ended a command and return the exit code: bad
 * configuration or usage is one line and 2; a port that cannot be opened
 * is one line and 3; anything else is a bug, reported
 * with its stack, 1.
 */
export function reportError(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode; // commander printed it
  if (e instanceof ConfigError || e instanceof UsageError || e instanceof RuleError) {
    console.error(`burrow: ${e.message.replace(/\s*\n\s*/g, " ")}`);
    return 2;
  }
  if (e instanceof ListenError) {
    console.error(`burrow: ${e.message}`);
    return 3;
  }
  console.error(`burrow: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  return 1;
}

/** Run the CLI with `args` (without the runtime and script). Resolves with the exit code. */
export async function main(host: Host, args: string[]): Promise<number> {
  const program = new Command("burrow")
    .description("Reach services inside closed networks: a reverse tunnel with a SOCKS5 front.")
    .version(versionLine(host))
    .exitOverride()
    .configureOutput({
      writeOut: (s) => host.print(s.trimEnd()),
      writeErr: (s) => console.error(s.trimEnd()),
    });
  let work: Promise<void> | undefined;
  const start = (w: Promise<void>) => void (work = w);
  serverCommand(program, host, start);
  agentCommands(program, host, start);
  toolCommands(program, host, start);
  serviceCommand(program, host, start);
  statusCommand(program, host, start);
  tokensCommand(program, host, start);
  loginCommand(program, host, start);
  addLogFormat(program); // after every command: adds --log-format where --log-level is
  try {
    await program.parseAsync(args, { from: "user" });
    if (!work) {
      program.outputHelp();
      return 2;
    }
    await work;
    return 0;
  } catch (e) {
    flushLogs(); // the command's last lines before its error
    return reportError(e);
  } finally {
    flushLogs();
  }
}
