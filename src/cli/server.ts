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
import { DEFAULT_NAMES, fingerprint, generateSelfSigned } from "../tls.ts";
import { logger, logLevelOption, type Start, untilSignal } from "./common.ts";
import type { Host, HttpServer } from "./mod.ts";
import { ConfigError, ListenError } from "../errors.ts";

interface ServerFlags {
  config: string;
  agents?: string;
  socks?: string;
  clients?: string;
  http?: string;
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
  return { text, config: parseServerConfig(text, path) };
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

/** The auto certificate: made on first start, kept in the state directory. */
async function tlsAuto(
  host: Host,
  config: ServerConfig,
  names: string[],
  log: Logger,
): Promise<TlsServerOptions> {
  const certPath = `${config.stateDir}/tls/cert.pem`;
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
    const where = t.mode === "files" ? `tls.cert: ${t.cert}` : `${config.stateDir}/tls/cert.pem`;
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
  log.info("TLS certificate", { fingerprint: fp });
  host.print(`TLS certificate fingerprint: ${fp}`);
  host.print(`  (agents and clients: --fingerprint ${fp})`);
  return material;
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
  const server = new Server(host.net, config, log, tls, { runtimeVersion: host.version });
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
      const parsed = parseServerConfig(next, f.config);
      // Listen addresses and TLS are fixed for the life of the process.
      parsed.listen = config.listen;
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

/** Adds `server` to the program. */
export function serverCommand(program: Command, host: Host, start: Start): void {
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
    .option("--no-watch", "do not reload the config when the file changes (SIGHUP still does)")
    .addOption(logLevelOption())
    .action((opts: ServerFlags) => start(runServer(host, opts)));
}
