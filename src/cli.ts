/**
 * The `burrow` command line, the same on every runtime. A runtime's main.ts
 * builds a {@link Host} and calls {@link main}.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import { fmt } from "./addr.ts";
import { Agent } from "./agent.ts";
import { ClientProxy } from "./client.ts";
import {
  type Credential,
  ed25519Credential,
  generateKeyPair,
  randomBytes,
  toBase64,
  tokenCredential,
  tokenHash,
  toHex,
} from "./auth.ts";
import { ConfigError, parseAddr, parseServerConfig, type ServerConfig } from "./config.ts";
import { httpApp } from "./http.ts";
import { createLogger, type Level, type Logger } from "./log.ts";
import type { Rule } from "./messages.ts";
import type { Addr, Net, TlsClientOptions, TlsServerOptions } from "./net.ts";
import { DEFAULT_NAMES, fingerprint, generateSelfSigned, normalizeFingerprint } from "./tls.ts";
import { parseRule, RuleError } from "./policy.ts";
import { Server } from "./server.ts";

/** What the CLI needs from the runtime besides sockets. */
export interface Host {
  readonly net: Net;
  readonly version: string;
  readTextFile(path: string): Promise<string>;
  /** Write a file only the owner may read (0600), creating its directory (0700). */
  writeSecretFile(path: string, text: string): Promise<void>;
  /** Call `fn` on the signal; returns a function that stops listening. */
  onSignal(signal: "SIGINT" | "SIGTERM" | "SIGHUP", fn: () => void): () => void;
  serveHttp(addr: Addr, fetch: (req: Request) => Response | Promise<Response>): Promise<HttpServer>;
  /** Standard output, one line. */
  print(line: string): void;
}

export interface HttpServer {
  readonly addr: Addr;
  close(): Promise<void>;
}

const SOFTWARE = "burrow/0.1.0";

class UsageError extends Error {
  override name = "UsageError";
}

function logger(level: string): Logger {
  if (!["debug", "info", "warn", "error"].includes(level)) throw new UsageError(`--log-level must be debug, info, warn or error`);
  return createLogger({ level: level as Level });
}

/** Run until a signal: resolves after `stop()` finished. */
function untilSignal(host: Host, stop: () => Promise<void>, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const offs: Array<() => void> = [];
    const handler = () => {
      if (stopping) return;
      stopping = true;
      log.info("shutting down");
      for (const off of offs) off();
      stop().then(resolve, resolve);
    };
    offs.push(host.onSignal("SIGINT", handler), host.onSignal("SIGTERM", handler));
  });
}

async function loadServerConfig(host: Host, path: string): Promise<{ text: string; config: ServerConfig }> {
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return { text, config: parseServerConfig(text, path) };
}

interface ServerFlags {
  config: string;
  agents?: string;
  socks?: string;
  clients?: string;
  http?: string;
  logLevel: string;
  watch: boolean;
}

function applyListenFlags(config: ServerConfig, f: ServerFlags): ServerConfig {
  const off = (v: string) => v === "off" || v === "";
  const l = config.listen;
  if (f.agents !== undefined) l.agents = parseAddr(f.agents);
  if (f.socks !== undefined) l.socks = off(f.socks) ? null : parseAddr(f.socks);
  if (f.clients !== undefined) l.clients = off(f.clients) ? null : parseAddr(f.clients);
  if (f.http !== undefined) l.http = off(f.http) ? null : parseAddr(f.http);
  return config;
}

/** The server's TLS certificate per its config: files, auto (made once, kept), or none. */
export async function serverTls(host: Host, config: ServerConfig, log: Logger): Promise<TlsServerOptions | undefined> {
  const t = config.tls;
  if (t.mode === "off") return undefined;
  let material: TlsServerOptions;
  if (t.mode === "files") {
    const read = async (path: string, what: string) => {
      try {
        return await host.readTextFile(path);
      } catch (e) {
        throw new ConfigError(`tls.${what}: cannot read ${path}: ${(e as Error).message}`);
      }
    };
    material = { cert: await read(t.cert, "cert"), key: await read(t.key, "key") };
  } else {
    const certPath = `${config.stateDir}/tls/cert.pem`;
    const keyPath = `${config.stateDir}/tls/key.pem`;
    try {
      material = { cert: await host.readTextFile(certPath), key: await host.readTextFile(keyPath) };
    } catch {
      material = await generateSelfSigned({ names: [...new Set([...DEFAULT_NAMES, ...t.names])] });
      await host.writeSecretFile(keyPath, material.key);
      await host.writeSecretFile(certPath, material.cert);
      log.info("generated a self-signed TLS certificate", { cert: certPath });
    }
  }
  const fp = await fingerprint(material.cert);
  log.info("TLS certificate", { fingerprint: fp });
  host.print(`TLS certificate fingerprint: ${fp}`);
  host.print(`  (agents and clients: --fingerprint ${fp})`);
  return material;
}

/** Start a server with its HTTP endpoint; returns a stop function. */
export async function startServer(host: Host, config: ServerConfig, log: Logger, tls?: TlsServerOptions) {
  const server = new Server(host.net, config, log, tls);
  await server.start();
  let http: HttpServer | undefined;
  if (config.listen.http) {
    http = await host.serveHttp(config.listen.http, httpApp(server).fetch);
    log.info("health and metrics", { http: `http://${fmt(http.addr)}/healthz` });
  }
  return {
    server,
    http,
    stop: async () => {
      await http?.close();
      await server.stop();
    },
  };
}

async function runServer(host: Host, f: ServerFlags): Promise<void> {
  const log = logger(f.logLevel);
  const loaded = await loadServerConfig(host, f.config);
  let config = loaded.config;
  applyListenFlags(config, f);
  const s = await startServer(host, config, log, await serverTls(host, config, log));
  let seen = loaded.text; // last file content looked at, good or bad
  const reload = async (why: string) => {
    let next: string;
    try {
      next = await host.readTextFile(f.config);
    } catch (e) {
      if (why !== "file change") log.error("config reload failed", { why, error: (e as Error).message });
      return;
    }
    // The watcher acts on changes only; SIGHUP always re-reads.
    if (why === "file change" && next === seen) return;
    seen = next;
    try {
      const parsed = parseServerConfig(next, f.config);
      // Listen addresses and TLS are fixed for the life of the process.
      parsed.listen = config.listen;
      config = parsed;
      s.server.reload(config);
    } catch (e) {
      log.error("config reload rejected, keeping the old config", { why, error: (e as Error).message });
    }
  };
  const offHup = host.onSignal("SIGHUP", () => void reload("SIGHUP"));
  const poll = f.watch ? setInterval(() => void reload("file change"), 2000) : undefined;
  await untilSignal(host, s.stop, log);
  offHup();
  clearInterval(poll);
}

interface TlsFlags {
  fingerprint?: string | undefined;
  ca?: string | undefined;
  serverName?: string | undefined;
  plain?: boolean | undefined;
}

/** How to reach the server: TLS verified by pin or CA (default: system CAs), or plain TCP. */
async function clientTls(host: Host, f: TlsFlags): Promise<TlsClientOptions | undefined> {
  if (f.plain) {
    if (f.fingerprint || f.ca) throw new UsageError("--plain cannot be combined with --fingerprint or --ca");
    return undefined;
  }
  const tls: TlsClientOptions = {};
  if (f.fingerprint) {
    const fp = normalizeFingerprint(f.fingerprint);
    if (!/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(fp)) throw new UsageError("--fingerprint must be a SHA-256 fingerprint (64 hex digits)");
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

interface AgentFlags extends TlsFlags {
  config?: string;
  server?: string;
  name?: string;
  token?: string;
  tokenFile?: string;
  key?: string;
  keyFile?: string;
  allow: string[];
  logLevel: string;
}

interface CredentialFlags {
  token?: string | undefined;
  tokenFile?: string | undefined;
  key?: string | undefined;
  keyFile?: string | undefined;
}

/** An Ed25519 key (preferred) or a token, from flags or files. */
async function loadCredential(host: Host, who: string, f: CredentialFlags): Promise<Credential> {
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
      throw new UsageError(`the ${who}'s key is not a base64 PKCS#8 Ed25519 private key (see \`burrow keygen\`)`);
    }
  }
  if (token) return tokenCredential(token);
  throw new UsageError(`${who} needs a credential: --key/--key-file (Ed25519) or --token/--token-file`);
}

/** Merge the agent's config file (YAML/JSON) and flags; flags win. */
async function agentOptions(host: Host, f: AgentFlags) {
  let file: Record<string, unknown> = {};
  if (f.config) {
    let text: string;
    try {
      text = await host.readTextFile(f.config);
    } catch (e) {
      throw new ConfigError(`${f.config}: cannot read: ${(e as Error).message}`);
    }
    const doc = parseYaml(text) as unknown;
    if (doc !== null && (typeof doc !== "object" || Array.isArray(doc))) throw new ConfigError(`${f.config}: must be a mapping`);
    file = (doc ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(file)) {
      if (!["server", "name", "token", "token_file", "key", "key_file", "allow", "fingerprint", "ca", "server_name", "plain"].includes(k)) {
        throw new ConfigError(`${f.config}: ${k}: unknown key`);
      }
    }
  }
  const str = (v: unknown, key: string): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new ConfigError(`${f.config}: ${key}: must be a string`);
    return v;
  };
  const server = f.server ?? str(file.server, "server");
  const name = f.name ?? str(file.name, "name");
  if (!server) throw new UsageError("agent needs --server host:port (or server: in --config)");
  if (!name) throw new UsageError("agent needs --name (or name: in --config)");
  const credential = await loadCredential(host, "agent", {
    token: f.token ?? str(file.token, "token"),
    tokenFile: f.tokenFile ?? str(file.token_file, "token_file"),
    key: f.key ?? str(file.key, "key"),
    keyFile: f.keyFile ?? str(file.key_file, "key_file"),
  });
  const allowTexts = f.allow.length > 0 ? f.allow : (() => {
    const a = file.allow;
    if (a === undefined) return [];
    if (!Array.isArray(a) || a.some((x) => typeof x !== "string")) throw new ConfigError(`${f.config}: allow: must be a list of rules`);
    return a as string[];
  })();
  if (allowTexts.length === 0) throw new UsageError("agent needs at least one --allow rule (e.g. --allow '*.corp:80,443')");
  const rules: Rule[] = allowTexts.flatMap((t) => parseRule(t));
  const plain = f.plain ?? file.plain;
  if (plain !== undefined && typeof plain !== "boolean") throw new ConfigError(`${f.config}: plain: must be true or false`);
  const tls = await clientTls(host, {
    fingerprint: f.fingerprint ?? str(file.fingerprint, "fingerprint"),
    ca: f.ca ?? str(file.ca, "ca"),
    serverName: f.serverName ?? str(file.server_name, "server_name"),
    plain,
  });
  return { server: parseAddr(server), name, credential, rules, ...(tls ? { tls } : {}) };
}

async function runAgent(host: Host, f: AgentFlags): Promise<void> {
  const log = logger(f.logLevel);
  const opts = await agentOptions(host, f);
  const agent = new Agent(host.net, { ...opts, software: `${SOFTWARE} ${host.net.runtime}/${host.version}` }, log.with({ agent: opts.name }));
  agent.start();
  await untilSignal(host, () => agent.stop(), log);
}

interface ClientFlags extends CredentialFlags, TlsFlags {
  server: string;
  name: string;
  agent: string;
  listen: string;
  logLevel: string;
}

async function runClient(host: Host, f: ClientFlags): Promise<void> {
  const log = logger(f.logLevel);
  const credential = await loadCredential(host, "client", f);
  const tls = await clientTls(host, f);
  const proxy = new ClientProxy(host.net, {
    listen: parseAddr(f.listen),
    server: { ...parseAddr(f.server), ...(tls ? { tls } : {}) },
    name: f.name,
    credential,
    agent: f.agent,
    software: `${SOFTWARE} ${host.net.runtime}/${host.version}`,
  }, log.with({ client: f.name }));
  await proxy.start();
  await untilSignal(host, () => proxy.stop(), log);
}

async function runToken(host: Host): Promise<void> {
  const token = toBase64(randomBytes(24)).replace(/\+/g, "-").replace(/\//g, "_");
  host.print(`# burrow token: give the token to the agent or client (--token-file),`);
  host.print(`# put the hash in the server config (token_hash:), which then never holds the token.`);
  host.print(`token: ${token}`);
  host.print(`token_hash: sha256:${toHex(tokenHash(token))}`);
}

async function runKeygen(host: Host): Promise<void> {
  const k = await generateKeyPair();
  host.print(`# burrow Ed25519 key pair`);
  host.print(`# server config (agents: or clients: entry):  public_key: ${k.publicKey}`);
  host.print(`# keep secret; pass with --key-file:`);
  host.print(`public_key: ${k.publicKey}`);
  host.print(`private_key: ${k.privateKey}`);
}

interface DemoFlags {
  socks: string;
  agents: string;
  target: string;
  logLevel: string;
}

/** Server + agent + a small HTTP target on loopback, all in this process. */
async function runDemo(host: Host, f: DemoFlags): Promise<void> {
  const log = logger(f.logLevel);
  const token = toBase64(randomBytes(12)).replace(/[+/=]/g, "x");
  const agentToken = toBase64(randomBytes(12)).replace(/[+/=]/g, "x");
  const config = parseServerConfig(
    JSON.stringify({
      listen: { agents: f.agents, socks: f.socks, clients: "", http: "" },
      agents: [{ name: "office", token: agentToken }],
      clients: [{ name: "demo", token }],
      grants: [{ client: "demo", agent: "office", targets: ["*"] }],
    }),
    "(demo config)",
  );
  const target = await host.serveHttp(parseAddr(f.target), () =>
    new Response("Hello from inside the closed network, through burrow.\n", { headers: { "content-type": "text/plain" } }));
  // TLS as recommended: a self-signed certificate, the agent pins its fingerprint.
  const tls = await generateSelfSigned();
  const pin = await fingerprint(tls.cert);
  const s = await startServer(host, config, log.with({ role: "server" }), tls);
  const agent = new Agent(host.net, {
    server: s.server.addrs.agents!,
    tls: { fingerprint: pin },
    name: "office",
    credential: tokenCredential(agentToken),
    rules: [...parseRule(`localhost:${target.addr.port}`), ...parseRule(`127.0.0.0/8:${target.addr.port}`)],
    software: `${SOFTWARE} ${host.net.runtime}/${host.version}`,
  }, log.with({ role: "agent" }));
  agent.start();
  await agent.connected();
  host.print("");
  host.print(`burrow demo is up on ${host.net.runtime}: server, agent "office" and an HTTP target the agent can reach.`);
  host.print(`The agent reaches the server over TLS, pinned to fingerprint ${pin}.`);
  host.print(`Try:`);
  host.print(`  curl --socks5-hostname ${fmt(s.server.addrs.socks)} --proxy-user demo:${token} http://localhost:${target.addr.port}/`);
  host.print(`Press Ctrl-C to stop.`);
  host.print("");
  await untilSignal(host, async () => {
    await agent.stop();
    await s.stop();
    await target.close();
  }, log);
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** Run the CLI with `args` (without the runtime and script). Resolves with the exit code. */
export async function main(host: Host, args: string[]): Promise<number> {
  const program = new Command("burrow")
    .description("Reach services inside closed networks: a reverse tunnel with a SOCKS5 front.")
    .version(SOFTWARE.split("/")[1]!)
    .exitOverride()
    .configureOutput({ writeOut: (s) => host.print(s.trimEnd()), writeErr: (s) => console.error(s.trimEnd()) });
  const level = () => new Option("--log-level <level>", "debug, info, warn or error").default("info");
  let action: Promise<void> | undefined;

  program.command("server")
    .description("Run the routing server (agents dial in; clients use SOCKS5).")
    .requiredOption("-c, --config <file>", "server config (YAML or JSON); see README")
    .option("--agents <addr>", "override listen.agents (host:port)")
    .option("--socks <addr>", "override listen.socks (host:port, or off)")
    .option("--clients <addr>", "override listen.clients (host:port, or off)")
    .option("--http <addr>", "override listen.http for /healthz and /metrics (host:port, or off)")
    .option("--no-watch", "do not reload the config when the file changes (SIGHUP still does)")
    .addOption(level())
    .action((opts: ServerFlags) => void (action = runServer(host, opts)));

  program.command("agent")
    .description("Run an agent inside the closed network.")
    .option("-c, --config <file>", "agent config (YAML or JSON): server, name, token|key|token_file|key_file, allow")
    .option("-s, --server <addr>", "server agent port (host:port)")
    .option("-n, --name <name>", "agent name as in the server config")
    .option("--token <token>", "shared token (prefer --token-file: flags show in ps)")
    .option("--token-file <file>", "file holding the shared token")
    .option("--key <base64>", "Ed25519 private key from `burrow keygen`")
    .option("--key-file <file>", "file holding the Ed25519 private key")
    .option("-a, --allow <rule>", "target rule, repeatable: host[:ports], *.suffix, CIDR, client=rule", collect, [])
    .option("--fingerprint <sha256>", "pin the server's TLS certificate (as the server prints it)")
    .option("--ca <file>", "verify the server's TLS certificate against this CA (PEM) instead of the system CAs")
    .option("--server-name <name>", "name to verify in the server's certificate (default: the --server host)")
    .option("--plain", "plain TCP, no TLS (loopback, tests, or behind a TLS-terminating proxy)")
    .addOption(level())
    .action((opts: AgentFlags) => void (action = runAgent(host, opts)));

  program.command("client")
    .description("Run a client proxy: local SOCKS5 (no auth) to the server's client port.")
    .requiredOption("-s, --server <addr>", "server client port (host:port)")
    .requiredOption("-n, --name <name>", "client name as in the server config")
    .option("--agent <name>", "agent to use (default: the one the server grants; or the local SOCKS5 user name)", "")
    .option("-l, --listen <addr>", "local SOCKS5 address", "127.0.0.1:1080")
    .option("--token <token>", "shared token (prefer --token-file: flags show in ps)")
    .option("--token-file <file>", "file holding the shared token")
    .option("--key <base64>", "Ed25519 private key from `burrow keygen`")
    .option("--key-file <file>", "file holding the Ed25519 private key")
    .option("--fingerprint <sha256>", "pin the server's TLS certificate (as the server prints it)")
    .option("--ca <file>", "verify the server's TLS certificate against this CA (PEM) instead of the system CAs")
    .option("--server-name <name>", "name to verify in the server's certificate (default: the --server host)")
    .option("--plain", "plain TCP, no TLS (loopback, tests, or behind a TLS-terminating proxy)")
    .addOption(level())
    .action((opts: ClientFlags) => void (action = runClient(host, opts)));

  program.command("token")
    .description("Print a new random token and the token_hash for the server config.")
    .action(() => void (action = runToken(host)));

  program.command("keygen")
    .description("Print a new Ed25519 key pair for an agent or client.")
    .action(() => void (action = runKeygen(host)));

  program.command("demo")
    .description("Server, agent and an HTTP target on loopback, with a curl line to try.")
    .option("--socks <addr>", "SOCKS5 port", "127.0.0.1:1080")
    .option("--agents <addr>", "agent port", "127.0.0.1:7000")
    .option("--target <addr>", "the demo HTTP target", "127.0.0.1:8080")
    .addOption(level())
    .action((opts: DemoFlags) => void (action = runDemo(host, opts)));

  try {
    await program.parseAsync(args, { from: "user" });
    if (!action) {
      program.outputHelp();
      return 2;
    }
    await action;
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof ConfigError || e instanceof UsageError || e instanceof RuleError || e instanceof TypeError) {
      console.error(`burrow: ${e.message}`);
      return 2;
    }
    console.error(`burrow: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    return 1;
  }
}
