/**
 * `burrow agent` and `burrow client`, and what they share: the credential
 * and the TLS flags by which they log in to the server.
 *
 * @module
 */
import type { Command } from "commander";
import { fmt } from "../addr.ts";
import { Agent, type AgentOptions } from "../agent.ts";
import {
  type Credential,
  ed25519Credential,
  randomBytes,
  toHex,
  tokenCredential,
} from "../auth.ts";
import { ClientProxy } from "../client.ts";
import {
  type AgentConfig,
  parseAddr,
  parseAgentConfig,
  parseServer,
  type ServerAddress,
} from "../config/mod.ts";
import type { Logger } from "../log.ts";
import type { Addr, Net, TlsClientOptions } from "../net.ts";
import { proxiedNet, proxyFor, redactProxy } from "../proxy.ts";
import { wsNet } from "../transport.ts";
import { parseRule } from "../policy.ts";
import { normalizeFingerprint } from "../tls.ts";
import { collect, logger, logLevelOption, software, type Start, untilSignal } from "./common.ts";
import type { Host } from "./mod.ts";
import { ConfigError, UsageError } from "../errors.ts";

interface TlsFlags {
  fingerprint?: string | undefined;
  ca?: string | undefined;
  serverName?: string | undefined;
  plain?: boolean | undefined;
}

/** How to reach the server: TLS verified by pin or CA (default: system CAs), or plain TCP. */
async function clientTls(host: Host, f: TlsFlags): Promise<TlsClientOptions | undefined> {
  if (f.plain) {
    if (f.fingerprint || f.ca) {
      throw new UsageError("--plain cannot be combined with --fingerprint or --ca");
    }
    return undefined;
  }
  const tls: TlsClientOptions = {};
  if (f.fingerprint) {
    let fp: string;
    try {
      fp = normalizeFingerprint(f.fingerprint);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(fp)) {
      throw new UsageError("--fingerprint must be a SHA-256 fingerprint (64 hex digits)");
    }
    tls.fingerprint = fp;
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

interface CredentialFlags {
  token?: string | undefined;
  tokenFile?: string | undefined;
  key?: string | undefined;
  keyFile?: string | undefined;
}

/**
 * The environment variables a credential may come from, for containers and
 * systemd (`Environment=BURROW_KEY_FILE=%d/key` with `LoadCredential=`).
 * They count only when neither flags nor the config file name a credential:
 * flags > config file > environment. A `*_FILE` variable names a file.
 */
export const CREDENTIAL_ENV = {
  token: "BURROW_TOKEN",
  tokenFile: "BURROW_TOKEN_FILE",
  key: "BURROW_KEY",
  keyFile: "BURROW_KEY_FILE",
} as const;

/** The credential the flags (and config file) give, else the one the environment gives. */
export function credentialSource(host: Host, given: CredentialFlags): CredentialFlags {
  const named = (f: CredentialFlags) =>
    [f.token, f.tokenFile, f.key, f.keyFile].some((v) => v !== undefined && v !== "");
  if (named(given)) return given;
  const env = (name: string) => host.env(name) || undefined; // empty counts as unset
  return {
    token: env(CREDENTIAL_ENV.token),
    tokenFile: env(CREDENTIAL_ENV.tokenFile),
    key: env(CREDENTIAL_ENV.key),
    keyFile: env(CREDENTIAL_ENV.keyFile),
  };
}

/**
 * An Ed25519 key (preferred) or a token, from flags or files, or else from
 * the environment ({@link CREDENTIAL_ENV}).
 */
async function loadCredential(
  host: Host,
  who: string,
  given: CredentialFlags,
): Promise<Credential> {
  const f = credentialSource(host, given);
  const read = async (path: string) => {
    try {
      return (await host.readTextFile(path)).trim();
    } catch (e) {
      throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
    }
  };
  let key = f.key ?? (f.keyFile ? await read(f.keyFile) : undefined);
  // Accept the file `burrow keygen` prints as it is.
  const m = key ? /^private_key:\s*(\S+)\s*$/m.exec(key) : null;
  if (m) key = m[1];
  let token = f.token ?? (f.tokenFile ? await read(f.tokenFile) : undefined);
  // Accept the output of `burrow token` as it is, too.
  const t = token ? /^token:\s*(\S+)\s*$/m.exec(token) : null;
  if (t) token = t[1];
  if (key) {
    try {
      const c = ed25519Credential(key);
      await c.prove(new Uint8Array(1)); // fail now, not at the first handshake
      return c;
    } catch {
      throw new UsageError(
        `the ${who}'s key is not a base64 PKCS#8 Ed25519 private key (see \`burrow keygen\`)`,
      );
    }
  }
  if (token) return tokenCredential(token);
  throw new UsageError(
    `${who} needs a credential: --key/--key-file (Ed25519) or --token/--token-file, ` +
      `or BURROW_KEY_FILE/BURROW_KEY/BURROW_TOKEN_FILE/BURROW_TOKEN in the environment`,
  );
}

/** `--proxy URL`, `--proxy-file FILE`, or `--no-proxy` (then `proxy` is false). */
interface ProxyFlags {
  proxy?: string | false | undefined;
  proxyFile?: string | undefined;
}

interface AgentFlags extends TlsFlags, CredentialFlags, ProxyFlags {
  config?: string;
  server: string[];
  name?: string;
  allow: string[];
  /** False with `--no-link`. */
  link?: boolean;
  logLevel: string;
}

/** What `serverLink` makes: where to dial, how (TLS), and through what (proxy, WebSocket). */
interface ServerLink {
  server: Addr;
  tls?: TlsClientOptions;
  transport?: Net;
  /** Closes what the link opened for itself (a proxy's loopback bridge). */
  close(): void;
}

/**
 * How to reach the server: `server` (host:port or a WebSocket URL) with its
 * TLS, through the proxy the flags, the config file or the environment name
 * (curl's rules: proxy.ts), and over WebSocket for `wss://` (`endpoint` is
 * `agent` or `client`).
 */
export async function serverLink(
  host: Host,
  server: ServerAddress,
  tls: TlsClientOptions | undefined,
  proxy: ProxyFlags,
  endpoint: "agent" | "client",
  log: Logger,
): Promise<ServerLink> {
  if (server.ws?.secure && !tls) {
    throw new UsageError("a wss:// server needs TLS: drop --plain, or use ws://");
  }
  if (server.ws && !server.ws.secure && tls) {
    throw new UsageError(
      "a ws:// server is plain: add --plain (only behind a TLS-terminating proxy), or use wss://",
    );
  }
  let explicit: string | undefined;
  if (typeof proxy.proxy === "string") explicit = proxy.proxy;
  else if (proxy.proxyFile) {
    try {
      explicit = (await host.readTextFile(proxy.proxyFile)).trim();
    } catch (e) {
      throw new UsageError(`cannot read --proxy-file ${proxy.proxyFile}: ${(e as Error).message}`);
    }
  }
  const via = proxyFor(server.addr.host, {
    explicit,
    useEnv: proxy.proxy !== false,
    env: (n) => host.env(n),
  });
  let transport: (Net & { close?(): void }) | undefined;
  let closeProxy = () => {};
  if (via) {
    const p = proxiedNet(host.net, via);
    transport = p;
    closeProxy = () => p.close();
    log.info("reaching the server through a proxy", { proxy: redactProxy(via) });
  }
  if (server.ws) {
    transport = wsNet(transport ?? host.net, server.ws.host, `${server.ws.prefix}/${endpoint}`);
  }
  return {
    server: server.addr,
    ...(tls ? { tls } : {}),
    ...(transport ? { transport } : {}),
    close: closeProxy,
  };
}

async function readAgentConfig(host: Host, path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parseAgentConfig(text, path);
}

/** Merge the agent's config file (YAML/JSON) and flags; flags win. */
async function agentOptions(
  host: Host,
  f: AgentFlags,
  log: Logger,
): Promise<{ opts: Array<Omit<AgentOptions, "software">>; close(): void }> {
  const file = f.config ? await readAgentConfig(host, f.config) : {};
  const servers = f.server.length > 0 ? f.server.map(parseServer) : file.servers;
  const name = f.name ?? file.name;
  if (!servers) {
    throw new UsageError(
      "agent needs --server host:port or wss://host/path (or server: in --config)",
    );
  }
  if (!name) throw new UsageError("agent needs --name (or name: in --config)");
  const credential = await loadCredential(host, "agent", {
    token: f.token ?? file.token,
    tokenFile: f.tokenFile ?? file.tokenFile,
    key: f.key ?? file.key,
    keyFile: f.keyFile ?? file.keyFile,
  });
  const rules = f.allow.length > 0 ? f.allow.flatMap((t) => parseRule(t)) : file.allow ?? [];
  if (rules.length === 0) {
    throw new UsageError("agent needs at least one --allow rule (e.g. --allow '*.corp:80,443')");
  }
  const tls = await clientTls(host, {
    fingerprint: f.fingerprint ?? file.fingerprint,
    ca: f.ca ?? file.ca,
    serverName: f.serverName ?? file.serverName,
    plain: f.plain ?? file.plain,
  });
  const proxy = { proxy: f.proxy ?? file.proxy, proxyFile: f.proxyFile ?? file.proxyFile };
  const links = await Promise.all(
    servers.map((s) => serverLink(host, s, tls, proxy, "agent", log)),
  );
  return {
    opts: links.map(({ close: _, server, ...how }) => ({
      server,
      name,
      credential,
      rules,
      link: f.link !== false && file.link !== false,
      ...how,
    })),
    close: () => links.forEach((l) => l.close()),
  };
}

/**
 * One agent per server (`--server A --server B`): each keeps its own control
 * connection and pool, independently; a failure of one never disturbs the
 * others.
 */
async function runAgent(host: Host, f: AgentFlags): Promise<void> {
  const log = logger(f.logLevel);
  const { opts, close } = await agentOptions(host, f, log);
  const instance = randomBytes(16); // one per process, on every server (SPEC.md §2.1)
  // For tests that watch an attacked agent's queues: an `agent stats` line this often.
  const statsMs = Number(host.env("BURROW_AGENT_STATS_MS") ?? 0);
  if (statsMs > 0) { for (const o of opts) o.statsMs = statsMs; }
  log.info("agent starting", { agent: opts[0]!.name, instance: toHex(instance).slice(0, 8) });
  const agents = opts.map((o) =>
    new Agent(
      host.net,
      { ...o, instance, software: software(host) },
      log.with({ agent: o.name, ...(opts.length > 1 ? { server: fmt(o.server) } : {}) }),
    )
  );
  for (const a of agents) a.start();
  await untilSignal(host, () => Promise.all(agents.map((a) => a.stop())).then(close, close), log);
}

interface ClientFlags extends CredentialFlags, TlsFlags, ProxyFlags {
  server: string[];
  name: string;
  agent: string;
  listen: string;
  logLevel: string;
}

async function runClient(host: Host, f: ClientFlags): Promise<void> {
  const log = logger(f.logLevel);
  const credential = await loadCredential(host, "client", f);
  const tls = await clientTls(host, f);
  if (f.server.length === 0) {
    throw new UsageError("client needs --server host:port or wss://host/path");
  }
  const links = await Promise.all(
    f.server.map((s) => serverLink(host, parseServer(s), tls, f, "client", log)),
  );
  const via = links.map((l) => ({
    server: { ...l.server, ...(l.tls ? { tls: l.tls } : {}) },
    ...(l.transport ? { transport: l.transport } : {}),
  }));
  const [first, ...alternates] = via;
  const proxy = new ClientProxy(host.net, {
    listen: parseAddr(f.listen),
    ...first!,
    ...(alternates.length > 0 ? { alternates } : {}),
    name: f.name,
    credential,
    agent: f.agent,
    software: software(host),
  }, log.with({ client: f.name }));
  await proxy.start();
  await untilSignal(host, () => proxy.stop().finally(() => links.forEach((l) => l.close())), log);
}

function credentialOptions(cmd: Command): Command {
  return cmd
    .option(
      "--token <token>",
      "shared token (prefer --token-file: flags show in ps) (env: BURROW_TOKEN)",
    )
    .option("--token-file <file>", "file holding the shared token (env: BURROW_TOKEN_FILE)")
    .option("--key <base64>", "Ed25519 private key from `burrow keygen` (env: BURROW_KEY)")
    .option("--key-file <file>", "file holding the Ed25519 private key (env: BURROW_KEY_FILE)");
}

function tlsOptions(cmd: Command): Command {
  return cmd
    .option(
      "--proxy <url>",
      "reach the server through this proxy: http://[user:pass@]host:port, socks5:// or socks5h:// " +
        "(default: HTTPS_PROXY/ALL_PROXY as curl reads them, minus NO_PROXY)",
    )
    .option("--proxy-file <file>", "file holding the --proxy URL (keeps its password out of ps)")
    .option("--no-proxy", "ignore HTTPS_PROXY, ALL_PROXY and NO_PROXY: connect directly")
    .option("--fingerprint <sha256>", "pin the server's TLS certificate (as the server prints it)")
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

/** Adds `agent` and `client` to the program. */
export function agentCommands(program: Command, host: Host, start: Start): void {
  const agent = program.command("agent")
    .description("Run an agent inside the closed network.")
    .option(
      "-c, --config <file>",
      "agent config (YAML or JSON): server, name, token|key|token_file|key_file, allow",
    )
    .option(
      "-s, --server <addr>",
      "server agent port (host:port), or wss://host[:port][/prefix]; repeatable: one session on each",
      collect,
      [],
    )
    .option("-n, --name <name>", "agent name as in the server config");
  credentialOptions(agent)
    .option(
      "-a, --allow <rule>",
      "target rule, repeatable: host[:ports], *.suffix, CIDR, client=rule",
      collect,
      [],
    )
    .option(
      "--no-link",
      "one connection per pool connection, as protocol version 2 (default: pool streams share " +
        "one link connection)",
    );
  tlsOptions(agent).action((opts: AgentFlags) => start(runAgent(host, opts)));

  const client = program.command("client")
    .description("Run a client proxy: local SOCKS5 (no auth) to the server's client port.")
    .option(
      "-s, --server <addr>",
      "server client port (host:port), or wss://host[:port][/prefix]; repeatable: the next is " +
        "used when one cannot be reached",
      collect,
      [],
    )
    .requiredOption("-n, --name <name>", "client name as in the server config")
    .option(
      "--agent <name>",
      "agent to use (default: the one the server grants; or the local SOCKS5 user name)",
      "",
    )
    .option("-l, --listen <addr>", "local SOCKS5 address", "127.0.0.1:1080");
  credentialOptions(client);
  tlsOptions(client).action((opts: ClientFlags) => start(runClient(host, opts)));
}
