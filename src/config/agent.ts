/**
 * The agent's configuration file (README "Agent"), and the server address
 * an agent or client proxy is given (`--server`, `server:`).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { Rule } from "../messages.ts";
import type { Addr } from "../net.ts";
import { normalizeFingerprint } from "../tls.ts";
import { parseAddr, Walker, words } from "./walker.ts";

const AGENT_KEYS = words(`server name token token_file key key_file allow fingerprint ca
  server_name plain proxy proxy_file link`);

/**
 * An agent's config file (`burrow agent --config`). Every key is optional
 * here; the CLI merges its flags over it (flags win) and then asks for what
 * is still missing.
 */
export interface AgentConfig {
  /** The servers' agent ports or WebSocket URLs (`server:` is one or a list). */
  servers?: ServerAddress[] | undefined;
  name?: string | undefined;
  token?: string | undefined;
  tokenFile?: string | undefined;
  /** Ed25519 private key (base64 PKCS#8), as `burrow keygen` prints it. */
  key?: string | undefined;
  keyFile?: string | undefined;
  /** The `allow` rules, parsed; absent when the file has no `allow`. */
  allow?: Rule[] | undefined;
  /** Pin of the server's certificate, in canonical form. */
  fingerprint?: string | undefined;
  /** Path of a CA certificate (PEM) to verify the server's certificate with. */
  ca?: string | undefined;
  serverName?: string | undefined;
  plain?: boolean | undefined;
  /** Outbound proxy URL (proxy.ts), or the file holding it (its credentials stay out of `ps`). */
  proxy?: string | undefined;
  proxyFile?: string | undefined;
  /** False: no link (SPEC.md §2.4), one connection per pool connection. */
  link?: boolean | undefined;
}

/** Parse and validate an agent config file's text. `file` is used in errors only. */
export function parseAgentConfig(text: string, file: string): AgentConfig {
  const w = new Walker(file);
  const top = w.obj(w.yaml(text), "");
  w.known(top, "", AGENT_KEYS);
  const opt = <T>(key: string, read: (v: unknown, path: string) => T): T | undefined =>
    top[key] === undefined ? undefined : read(top[key], key);
  const str = (v: unknown, path: string) => w.str(v, path);
  return {
    servers: opt("server", (v, p) => {
      const one = (x: unknown, path: string) => {
        const text = w.str(x, path);
        if (text === "") w.fail(path, "must be host:port or a wss:// URL");
        try {
          return parseServer(text);
        } catch (e) {
          if (e instanceof ConfigError) return w.fail(path, e.message);
          throw e;
        }
      };
      if (!Array.isArray(v)) return [one(v, p)];
      if (v.length === 0) w.fail(p, "must name at least one server");
      return v.map((x, i) => one(x, `${p}[${i}]`));
    }),
    name: opt("name", (v, p) => w.name(v, p)),
    token: opt("token", str),
    tokenFile: opt("token_file", str),
    key: opt("key", str),
    keyFile: opt("key_file", str),
    allow: opt("allow", (v, p) => w.rules(v, p, true)),
    fingerprint: opt("fingerprint", (v, p) => {
      try {
        return normalizeFingerprint(w.str(v, p));
      } catch (e) {
        if (e instanceof ConfigError) throw e;
        return w.fail(p, "must be a SHA-256 fingerprint (64 hex digits), as the server prints it");
      }
    }),
    ca: opt("ca", str),
    serverName: opt("server_name", str),
    plain: opt("plain", (v, p) => w.bool(v, p)),
    proxy: opt("proxy", str),
    proxyFile: opt("proxy_file", str),
    link: opt("link", (v, p) => w.bool(v, p)),
  };
}

/** How an agent or client proxy reaches the server (SPEC.md §3.1). */
export interface ServerAddress {
  /** Where to connect (the TCP/TLS endpoint). */
  addr: Addr;
  /** Over WebSocket: the URL's host (for the Host header), path prefix (no trailing slash), and scheme. */
  ws?: { prefix: string; secure: boolean; host: string };
}

/**
 * Parse `--server`: `host:port`, `[v6]:port`, or a WebSocket URL
 * `wss://host[:port][/prefix]` (`ws://` for a TLS-terminating reverse proxy).
 */
export function parseServer(text: string): ServerAddress {
  if (!/^wss?:\/\//i.test(text)) return { addr: parseAddr(text) };
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ConfigError(`Cannot parse server URL ${JSON.stringify(text)}`);
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new ConfigError(
      `server URL ${JSON.stringify(text)}: no credentials, query or fragment allowed`,
    );
  }
  const secure = u.protocol === "wss:";
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  return {
    addr: { host, port },
    ws: { prefix: u.pathname.replace(/\/+$/, ""), secure, host: u.host },
  };
}
