/**
 * `burrow agent` and `burrow client`, and what they share: the credential
 * and the TLS flags by which they log in to the server.
 *
 * @module
 */
import type { Command } from "commander";
import type { AgentOptions } from "../agent.ts";
import { AgentFleet, expandServers, SERVERS_PER_AGENT, serversPerAgent } from "../agent_fleet.ts";
import { randomBytes, toHex } from "../auth.ts";
import { ClientProxy } from "../client.ts";
import {
  type ClientConfig,
  DEFAULT_PORTS,
  type Forward,
  parseAddr,
  parseAgentConfig,
  parseClientConfig,
  parseForward,
  parseServer,
  type ServerAddress,
} from "../config/mod.ts";
import type { Logger } from "../log.ts";
import { AuthMethod } from "../messages.ts";
import type { Addr, Net, TlsClientOptions } from "../net.ts";
import { proxiedNet, proxyFor, redactProxy } from "../proxy.ts";
import { wsNet } from "../transport.ts";
import { parseRule } from "../policy.ts";
import { collect, logger, software, type Start, untilSignal } from "./common.ts";
import type { Host } from "./mod.ts";
import { type CredentialFlags, credentialOptions, loadCredential } from "./credential.ts";
import { loginCredential } from "./login.ts";
import { clientDns, type DnsFlags, dnsOptions, nameserver } from "./dns.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { clientTls, type TlsFlags, tlsOptions } from "./tls_flags.ts";

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
  serversPerAgent?: string;
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
  if (server.ws && !server.ws.secure) {
    // ws:// is plain (behind a TLS-terminating proxy): a pin or CA there is a mistake.
    if (tls?.fingerprint !== undefined || tls?.ca) {
      throw new UsageError(
        "a ws:// server is plain: --fingerprint and --ca need wss:// (or drop them)",
      );
    }
    tls = undefined;
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

async function readConfig<T>(
  host: Host,
  path: string,
  parse: (text: string, file: string) => T,
): Promise<T> {
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parse(text, path);
}

/** The flags over the config file (flags win), for what agent and client share. */
function overFile(
  f: CredentialFlags & TlsFlags & ProxyFlags & { server: string[]; name?: string | undefined },
  file: ClientConfig,
  role: "agent" | "client",
) {
  return {
    servers: f.server.length > 0
      ? f.server.map((s) => parseServer(s, DEFAULT_PORTS[role]))
      : file.servers,
    name: f.name ?? file.name,
    credential: {
      token: f.token ?? file.token,
      tokenFile: f.tokenFile ?? file.tokenFile,
      key: f.key ?? file.key,
      keyFile: f.keyFile ?? file.keyFile,
    },
    tls: {
      fingerprint: f.fingerprint?.length ? f.fingerprint : file.fingerprint,
      ca: f.ca ?? file.ca,
      serverName: f.serverName ?? file.serverName,
      plain: f.plain ?? file.plain,
    },
    proxy: { proxy: f.proxy ?? file.proxy, proxyFile: f.proxyFile ?? file.proxyFile },
  };
}

/** Merge the agent's config file (YAML/JSON) and flags; flags win. */
async function agentOptions(
  host: Host,
  f: AgentFlags,
  log: Logger,
): Promise<{ opts: Array<Omit<AgentOptions, "software">>; perAgent: number; close(): void }> {
  const file = f.config ? await readConfig(host, f.config, parseAgentConfig) : {};
  const { servers, name, ...merged } = overFile(f, file, "agent");
  if (!servers) {
    throw new UsageError(
      "agent needs --server host:port or wss://host/path (or server: in --config)",
    );
  }
  if (!name) throw new UsageError("agent needs --name (or name: in --config)");
  const credential = await loadCredential(host, "agent", merged.credential);
  const rules = f.allow.length > 0 ? f.allow.flatMap((t) => parseRule(t)) : file.allow ?? [];
  if (rules.length === 0) {
    throw new UsageError("agent needs at least one --allow rule (e.g. --allow '*.corp:80,443')");
  }
  const tls = await clientTls(host, merged.tls);
  const links = await Promise.all(
    (await expandServers(host.net, servers, tls)).map((s) =>
      serverLink(host, s.server, s.tls, merged.proxy, "agent", log)
    ),
  );
  const perAgent = serversPerAgent(f.serversPerAgent, file.serversPerAgent);
  return {
    perAgent,
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
 * Sessions with `servers_per_agent` of the servers (`--server A --server
 * B`, agent_fleet.ts): each keeps its own control connection and pool,
 * independently; a failure of one never disturbs the others.
 */
async function runAgent(host: Host, f: AgentFlags): Promise<void> {
  const log = logger(f.logLevel);
  const { opts, perAgent, close } = await agentOptions(host, f, log);
  const instance = randomBytes(16); // one per process, on every server (SPEC.md §2.1)
  // For tests that watch an attacked agent's queues: an `agent stats` line this often.
  const statsMs = Number(host.env("BURROW_AGENT_STATS_MS") ?? 0);
  if (statsMs > 0) { for (const o of opts) o.statsMs = statsMs; }
  log.info("agent starting", { agent: opts[0]!.name, instance: toHex(instance).slice(0, 8) });
  const all = opts.map((o) => ({
    ...o,
    instance,
    software: software(host),
    nameserver: () => nameserver(host),
  }));
  const fleet = new AgentFleet(host.net, all, perAgent, log);
  fleet.start();
  await untilSignal(host, () => fleet.stop().then(close, close), log);
}

interface ClientFlags extends CredentialFlags, TlsFlags, ProxyFlags, DnsFlags {
  config?: string;
  server: string[];
  name?: string;
  agent?: string;
  listen?: string;
  forward: string[];
  logLevel: string;
}

/** The local address: `--listen` (`off`: none) over `listen:` over the default. */
function clientListen(f: ClientFlags, file: ClientConfig): Addr | null {
  if (f.listen === "off") return null;
  if (f.listen !== undefined) return parseAddr(f.listen);
  return file.listen === undefined ? parseAddr(CLIENT_LISTEN) : file.listen;
}

/** The forwards: `--forward` flags (they replace the file's), else `forwards:`. */
function clientForwards(f: ClientFlags, file: ClientConfig): Forward[] {
  if (f.forward.length === 0) return file.forwards ?? [];
  return f.forward.map((text) => {
    try {
      return parseForward(text);
    } catch (e) {
      throw new UsageError(`--forward: ${(e as Error).message}`);
    }
  });
}

async function runClient(host: Host, f: ClientFlags): Promise<void> {
  const log = logger(f.logLevel);
  const file = f.config ? await readConfig(host, f.config, parseClientConfig) : {};
  const { servers, name: given, ...merged } = overFile(f, file, "client");
  const noName = new UsageError("client needs --name (or name: in --config)");
  // No credential of its own: the login `burrow login` kept, renewed before it expires.
  let kept: Awaited<ReturnType<typeof loginCredential>> = null;
  const credential = await loadCredential(host, "client", merged.credential).catch(async (e) => {
    kept = await loginCredential(host, log);
    if (kept) return kept.credential;
    throw given === undefined ? noName : e;
  });
  // An issued token names the client itself (SPEC.md §5.15): --name is optional then.
  const name = given ?? (credential.method === AuthMethod.issued_token ? "" : undefined);
  if (name === undefined) throw noName;
  const tls = await clientTls(host, merged.tls);
  if (!servers) {
    throw new UsageError(
      "client needs --server host:port or wss://host/path (or server: in --config)",
    );
  }
  const links = await Promise.all(
    servers.map((s) => serverLink(host, s, tls, merged.proxy, "client", log)),
  );
  const via = links.map((l) => ({
    server: { ...l.server, ...(l.tls ? { tls: l.tls } : {}) },
    ...(l.transport ? { transport: l.transport } : {}),
  }));
  const [first, ...alternates] = via;
  const listen = clientListen(f, file);
  const forwards = clientForwards(f, file);
  const dns = clientDns(f, file);
  if (listen === null && forwards.length === 0 && !dns) {
    throw new UsageError(
      "--listen off needs at least one --forward or --dns (or forwards:, dns: in --config)",
    );
  }
  const proxy = new ClientProxy(host.net, {
    listen,
    forwards,
    ...(dns ? { dns } : {}),
    ...first!,
    ...(alternates.length > 0 ? { alternates } : {}),
    name,
    credential,
    agent: f.agent ?? file.agent ?? "",
    software: software(host),
  }, log.with({ client: name || "(from the token)" }));
  const close = () => {
    kept?.stop();
    links.forEach((l) => l.close());
  };
  try {
    await proxy.checkLogin(); // refused credentials end it here, with one line
    await proxy.start();
  } catch (e) {
    close();
    throw e;
  }
  await untilSignal(host, () => proxy.stop().finally(close), log);
}

/** The client proxy's local SOCKS5 address unless `--listen` or `listen:` names one. */
const CLIENT_LISTEN = "127.0.0.1:1080";

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
      "server agent port (host[:port], port 7000 by default), or wss://host[:port][/prefix]; " +
        "repeatable: one session on each",
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
      "--servers-per-agent <n>",
      `keep sessions with this many of the --server addresses (default ${SERVERS_PER_AGENT})`,
    )
    .option(
      "--no-link",
      "one dialed connection per pool connection (default: pool streams share " +
        "one link connection)",
    );
  tlsOptions(agent).action((opts: AgentFlags) => start(runAgent(host, opts)));

  const client = program.command("client")
    .description(
      "Run a client proxy: local SOCKS5 and HTTP CONNECT (no auth), and port forwards, to the " +
        "server's client port.",
    )
    .option(
      "-c, --config <file>",
      "client config (YAML or JSON): server, name, token|key|token_file|key_file, fingerprint, " +
        "agent, listen, forwards",
    )
    .option(
      "-s, --server <addr>",
      "server client port (host[:port], port 7001 by default), or wss://host[:port][/prefix]; " +
        "repeatable: the next is used when one cannot be reached",
      collect,
      [],
    )
    .option("-n, --name <name>", "client name as in the server config")
    .option(
      "--agent <name>",
      "agent to use (default: the one the server grants; or the local SOCKS5 user name)",
    )
    .option(
      "-l, --listen <addr>",
      `local SOCKS5 and HTTP CONNECT address, or off (default: ${CLIENT_LISTEN})`,
    )
    .option(
      "-L, --forward <[addr:]port=host:port>",
      "local port forward to host:port through --agent (addr: 127.0.0.1 by default; IPv6 in " +
        "brackets); repeatable",
      collect,
      [],
    );
  credentialOptions(dnsOptions(client));
  tlsOptions(client).action((opts: ClientFlags) => start(runClient(host, opts)));
}
