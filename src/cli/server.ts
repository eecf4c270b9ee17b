/**
 * `burrow server`: the routing server, its TLS certificate and config reloads.
 *
 * @module
 */
import type { Command } from "commander";
import { fmt } from "../addr.ts";
import { parseAddr, parseServerConfig, type ServerConfig } from "../config/mod.ts";
import { httpApp } from "../http/mod.ts";
import type { Logger } from "../log.ts";
import type { TlsServerOptions } from "../net.ts";
import { Server } from "../server/mod.ts";
import type { TokenFile } from "../server/tokens.ts";
import { DEFAULT_NAMES, fingerprint, generateSelfSigned } from "../tls.ts";
import { collect, logger, logLevelOption, type Start, untilSignal } from "./common.ts";
import type { Host, HttpServer } from "./mod.ts";
import { ConfigError, ListenError, UsageError } from "../errors.ts";

interface ServerFlags {
  config: string;
  agents?: string;
  socks?: string;
  clients?: string;
  http?: string;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
  watch: boolean;
}

async function loadServerConfig(
  host: Host,
  path: string,
): Promise<{ text: string; config: ServerConfig }> {
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return { text, config: parseServerConfig(text, path, true) };
}

function applyListenFlags(config: ServerConfig, f: ServerFlags): ServerConfig {
  const off = (v: string) => v === "off" || v === "";
  const l = config.listen;
  if (f.agents !== undefined) l.agents = parseAddr(f.agents);
  if (f.socks !== undefined) l.socks = off(f.socks) ? null : parseAddr(f.socks);
  if (f.clients !== undefined) l.clients = off(f.clients) ? null : parseAddr(f.clients);
  if (f.http !== undefined) l.http = off(f.http) ? null : parseAddr(f.http);
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  if (f.tlsCert !== undefined && f.tlsKey !== undefined) {
    config.tls = { mode: "files", cert: f.tlsCert, key: f.tlsKey };
  }
  return config;
}

/** Certificate and key from the files `tls: { cert, key }` names. */
async function tlsFiles(host: Host, cert: string, key: string): Promise<TlsServerOptions> {
  const read = async (path: string, what: string) => {
    try {
      return await host.readTextFile(path);
    } catch (e) {
      throw new ConfigError(`tls.${what}: cannot read ${path}: ${(e as Error).message}`);
    }
  };
  return { cert: await read(cert, "cert"), key: await read(key, "key") };
}

/** Where the auto certificate is kept: `state_dir/tls/`. */
const autoCert = (config: ServerConfig) => `${config.stateDir}/tls/cert.pem`;

/** The auto certificate: made on first start, kept in the state directory. */
async function tlsAuto(
  host: Host,
  config: ServerConfig,
  names: string[],
  log: Logger,
): Promise<TlsServerOptions> {
  const certPath = autoCert(config);
  const keyPath = `${config.stateDir}/tls/key.pem`;
  try {
    return { cert: await host.readTextFile(certPath), key: await host.readTextFile(keyPath) };
  } catch {
    const material = await generateSelfSigned({
      names: [...new Set([...DEFAULT_NAMES, ...names])],
    });
    await host.writeSecretFile(keyPath, material.key);
    await host.writeSecretFile(certPath, material.cert);
    log.info("generated a self-signed TLS certificate", { cert: certPath });
    return material;
  }
}

/** The server's TLS certificate per its config: files, auto (made once, kept), or none. */
export async function serverTls(
  host: Host,
  config: ServerConfig,
  log: Logger,
): Promise<TlsServerOptions | undefined> {
  const t = config.tls;
  if (t.mode === "off") return undefined;
  const material = t.mode === "files"
    ? await tlsFiles(host, t.cert, t.key)
    : await tlsAuto(host, config, t.names, log);
  let fp: string;
  try {
    fp = await fingerprint(material.cert);
  } catch (e) {
    const where = t.mode === "files" ? `tls.cert: ${t.cert}` : autoCert(config);
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
  log.info("TLS certificate", { fingerprint: fp });
  host.print(`TLS certificate fingerprint: ${fp}`);
  host.print(`  (agents and clients: --fingerprint ${fp})`);
  return material;
}

/** `state_dir/tokens.json`: issued tokens and their keys (0600); absent at first. */
function tokenFile(host: Host, path: string): TokenFile {
  return {
    read: () =>
      host.readTextFile(path).catch((e: Error) => {
        if (/ENOENT|NotFound|No such file/i.test(`${e.name} ${e.message}`)) return null;
        throw new ConfigError(`${path}: cannot read: ${e.message}`);
      }),
    write: (text) => host.writeSecretFile(path, text),
  };
}

/**
 * Start a server with its HTTP endpoint; returns a stop function. The HTTP
 * endpoint comes up first, so `/readyz` answers 503 until every listener is
 * up, and goes down last, so it answers 503 while the server stops.
 */
export async function startServer(
  host: Host,
  config: ServerConfig,
  log: Logger,
  tls?: TlsServerOptions,
) {
  const server = new Server(host.net, config, log, tls, {
    runtimeVersion: host.version,
    tokenFile: tokenFile(host, `${config.stateDir}/tokens.json`),
    readTextFile: (path) => host.readTextFile(path),
    readSecretFile: (path) => host.readSecretFile(path),
  });
  // A client secret that cannot be read stops the start, not a person's first sign-in.
  if (config.oidc?.clientSecretFile) {
    await server.oidc.clientSecret(config.oidc).catch((e: Error) => {
      throw new ConfigError(e.message);
    });
  }
  let http: HttpServer | undefined;
  const app = httpApp(server);
  server.useHttpApp(app.fetch);
  if (config.listen.http) {
    const at = config.listen.http;
    http = await host.serveHttp(at, app.fetch).catch((e) => {
      throw new ListenError(fmt(at), "listen.http", e);
    });
    const base = `http://${fmt(http.addr)}`;
    log.info("http endpoint", {
      health: `${base}/healthz`,
      metrics: `${base}/metrics`,
      admin: config.admin ? `${base}/` : "off",
    });
  }
  try {
    await server.start();
  } catch (e) {
    await server.stop();
    await http?.close();
    throw e;
  }
  return {
    server,
    http,
    stop: async () => {
      await server.stop();
      await http?.close();
    },
  };
}

/** The settings that differ between `a` and `b` and that a reload cannot apply. */
export function restartOnly(a: ServerConfig, b: ServerConfig): string[] {
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  const changed = (Object.keys(a.listen) as Array<keyof ServerConfig["listen"]>)
    .filter((k) => !same(a.listen[k], b.listen[k]))
    .map((k) => `listen.${k}`);
  if (!same(a.tls, b.tls)) changed.push("tls");
  // A TLS listener reads a PROXY header before TLS only if it was made for it.
  const tlsHeader = (c: ServerConfig) =>
    c.tls.mode === "off" ? [] : [...c.proxyProtocol].filter((p) => p !== "socks").sort();
  if (!same(tlsHeader(a), tlsHeader(b))) changed.push("proxy_protocol");
  if (a.stateDir !== b.stateDir) changed.push("state_dir");
  return changed;
}

/**
 * Reload the config on SIGHUP and, with `watch`, when the file changes
 * (polled every 2 s). A bad new file is logged and the old config stays.
 * Returns a function that stops watching.
 */
function reloads(
  host: Host,
  f: ServerFlags,
  first: { text: string; config: ServerConfig },
  server: Server,
  log: Logger,
) {
  let config = first.config;
  let seen = first.text; // last file content looked at, good or bad
  const reload = async (why: string) => {
    let next: string;
    try {
      next = await host.readTextFile(f.config);
    } catch (e) {
      if (why !== "file change") {
        log.error("config reload failed", { why, error: (e as Error).message });
      }
      return;
    }
    // The watcher acts on changes only; SIGHUP always re-reads.
    if (why === "file change" && next === seen) return;
    seen = next;
    try {
      const parsed = applyListenFlags(parseServerConfig(next, f.config, true), f);
      // Listen addresses, TLS and state_dir are fixed for the life of the process.
      for (const setting of restartOnly(config, parsed)) {
        log.warn("config reload: this setting takes effect only after a restart", { setting });
      }
      parsed.listen = config.listen;
      parsed.tls = config.tls;
      parsed.stateDir = config.stateDir;
      config = parsed;
      server.reload(config);
    } catch (e) {
      log.error("config reload rejected, keeping the old config", {
        why,
        error: (e as Error).message,
      });
    }
  };
  const offHup = host.onSignal("SIGHUP", () => void reload("SIGHUP"));
  const poll = f.watch ? setInterval(() => void reload("file change"), 2000) : undefined;
  return () => {
    offHup();
    clearInterval(poll);
  };
}

async function runServer(host: Host, f: ServerFlags): Promise<void> {
  const log = logger(f.logLevel);
  const loaded = await loadServerConfig(host, f.config);
  applyListenFlags(loaded.config, f);
  const s = await startServer(host, loaded.config, log, await serverTls(host, loaded.config, log));
  const stopReloads = reloads(host, f, loaded, s.server, log);
  await untilSignal(host, s.stop, log);
  stopReloads();
}

/**
 * `burrow fingerprint -c server.yaml`: the fingerprint agents and client
 * proxies pin, read from the certificate the server uses (tls.cert, or the
 * auto one in state_dir/tls), without starting the server or making a
 * certificate. One line per config file.
 */
async function runFingerprint(host: Host, configs: string[]): Promise<void> {
  if (configs.length === 0) throw new UsageError("fingerprint needs -c server.yaml");
  for (const path of configs) {
    const { config } = await loadServerConfig(host, path);
    const t = config.tls;
    if (t.mode === "off") {
      throw new ConfigError(`${path}: tls: off: the server speaks plain TCP, nothing to pin`);
    }
    const cert = t.mode === "files" ? t.cert : autoCert(config);
    let pem: string;
    try {
      pem = await host.readTextFile(cert);
    } catch (e) {
      if (t.mode === "files") {
        throw new ConfigError(`${path}: tls.cert: cannot read ${cert}: ${(e as Error).message}`);
      }
      // Without state_dir the server keeps it in .burrow of its working directory.
      const cwd = config.stateDir !== ".burrow" ? "" : ` (no state_dir: .burrow of the ` +
        `server's working directory, /var/lib/burrow/.burrow under \`burrow service\`)`;
      throw new ConfigError(
        `${path}: no certificate yet: ${cert}${cwd} does not exist; \`burrow server -c ${path}\` ` +
          `makes it on its first start (or copy state_dir/tls from another server to share one)`,
      );
    }
    try {
      host.print(await fingerprint(pem));
    } catch (e) {
      throw new ConfigError(`${path}: ${cert}: ${(e as Error).message}`);
    }
  }
}

/** Adds `server` and `fingerprint` to the program. */
export function serverCommand(program: Command, host: Host, start: Start): void {
  program.command("fingerprint")
    .description(
      "Print the TLS fingerprint a server's agents and clients pin (--fingerprint), without " +
        "starting it.",
    )
    .option(
      "-c, --config <file>",
      "server config (YAML or JSON); repeatable: one line per server",
      collect,
      [],
    )
    .action((opts: { config: string[] }) => start(runFingerprint(host, opts.config)));

  program.command("server")
    .description("Run the routing server (agents dial in; clients use SOCKS5).")
    .requiredOption("-c, --config <file>", "server config (YAML or JSON); see README")
    .option("--agents <addr>", "override listen.agents (host:port)")
    .option("--socks <addr>", "override listen.socks (host:port, or off)")
    .option("--clients <addr>", "override listen.clients (host:port, or off)")
    .option(
      "--http <addr>",
      "override listen.http: health, metrics, admin API, dashboard (host:port, or off)",
    )
    .option("--tls-cert <file>", "override tls: the certificate (PEM; with --tls-key)")
    .option("--tls-key <file>", "override tls: its key (PEM; with --tls-cert)")
    .option("--no-watch", "do not reload the config when the file changes (SIGHUP still does)")
    .addOption(logLevelOption())
    .action((opts: ServerFlags) => start(runServer(host, opts)));
}
