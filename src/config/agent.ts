/**
 * The agent's configuration file (README "Agent"), and the server address
 * an agent or client proxy is given (`--server`, `server:`).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { parseAuthority } from "../http_connect.ts";
import { parseIPv6 } from "../ip.ts";
import type { Rule, Target } from "../messages.ts";
import type { Addr } from "../net.ts";
import { normalizeFingerprint } from "../tls.ts";
import { serverDefaults } from "./server.ts";
import { besideFile, parseAddr, Walker, words } from "./walker.ts";

/** What `--server host` without a port dials: the server's default agent or client port. */
export const DEFAULT_PORTS = {
  agent: parseAddr(serverDefaults.agents).port,
  client: parseAddr(serverDefaults.clients).port,
} as const;

const AGENT_KEYS = words(`server name token token_file key key_file allow fingerprint ca
  server_name plain proxy proxy_file link servers_per_agent`);
const CLIENT_KEYS = words(`server name token token_file key key_file fingerprint ca server_name
  plain proxy proxy_file agent listen forwards dns dns_server`);
const FORWARD_KEYS = words("listen target agent");

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
  /** Pins of the servers' certificates (any of them matches), in canonical form. */
  fingerprint?: string[] | undefined;
  /** Path of a CA certificate (PEM) to verify the server's certificate with. */
  ca?: string | undefined;
  serverName?: string | undefined;
  plain?: boolean | undefined;
  /** Outbound proxy URL (proxy.ts), or the file holding it (its credentials stay out of `ps`). */
  proxy?: string | undefined;
  proxyFile?: string | undefined;
  /** False: no link (SPEC.md §2.4), one connection per pool connection. */
  link?: boolean | undefined;
  /** Sessions kept with this many of `servers` (README "A fleet of servers"). */
  serversPerAgent?: number | undefined;
}

/**
 * A client proxy's config file (`burrow client --config`): the agent's keys
 * that concern reaching the server, and the client's own.
 */
export interface ClientConfig extends Omit<AgentConfig, "allow" | "link" | "serversPerAgent"> {
  /** The agent to use (`--agent`). */
  agent?: string | undefined;
  /** The local SOCKS5 address (`--listen`); null: `off`. */
  listen?: Addr | null | undefined;
  /** Local port forwards (`--forward`). */
  forwards?: Forward[] | undefined;
  /** Where to answer DNS queries (`--dns`, SPEC.md §10.2); absent: not at all. */
  dns?: Addr | undefined;
  /** The DNS server inside the network (`--dns-server`); absent: the agent's nameserver. */
  dnsServer?: Target | undefined;
}

/** A local port forward (SPEC.md §10.2): `listen` leads to `target` through `agent`. */
export interface Forward {
  listen: Addr;
  target: Target;
  agent?: string | undefined;
}

/**
 * The local side of a forward: `PORT` (on 127.0.0.1) or `ADDR:PORT`, an IPv6
 * ADDR in brackets. Throws ConfigError.
 */
export function parseForwardListen(text: string): Addr {
  if (/^\d{1,5}$/.test(text.trim())) text = `127.0.0.1:${text.trim()}`;
  return parseAddr(text);
}

/** The far side of a forward: `HOST:PORT` (`[v6]:PORT`), port 1..65535. Throws ConfigError. */
export function parseForwardTarget(text: string): Target {
  const t = parseAuthority(text.trim());
  if (!t) {
    throw new ConfigError(
      `Cannot parse forward target "${text}": expected host:port or [ipv6]:port`,
    );
  }
  return t;
}

/** `--dns-server HOST[:PORT]` (`[v6]:PORT`), port 53 when none is given. Throws ConfigError. */
export function parseDnsServer(text: string): Target {
  const t = text.trim();
  // No port: a bracketed or bare IPv6 address, or a host without a colon.
  const full = parseIPv6(t) ? `[${t}]:53` : /^(\[[^\]]*\]|[^:]*)$/.test(t) ? `${t}:53` : t;
  const a = parseAuthority(full);
  if (!a) {
    throw new ConfigError(
      `Cannot parse DNS server "${text}": expected host[:port] or [ipv6]:port`,
    );
  }
  return a;
}

/** `--forward [ADDR:]PORT=HOST:PORT` (the agent is `--agent`'s). Throws ConfigError. */
export function parseForward(text: string): Forward {
  const eq = text.indexOf("=");
  if (eq < 0) {
    throw new ConfigError(`Cannot parse forward "${text}": expected [ADDR:]PORT=HOST:PORT`);
  }
  return {
    listen: parseForwardListen(text.slice(0, eq)),
    target: parseForwardTarget(text.slice(eq + 1)),
  };
}

/**
 * Parse and validate an agent config file's text. `file` is used in errors,
 * and the files it names by a relative path (`key_file`, `token_file`, `ca`,
 * `proxy_file`) are taken from `file`'s folder.
 */
export function parseAgentConfig(text: string, file: string): AgentConfig {
  return parseConfig(text, file, "agent");
}

/** Parse and validate a client proxy's config file's text, as {@link parseAgentConfig}. */
export function parseClientConfig(text: string, file: string): ClientConfig {
  return parseConfig(text, file, "client");
}

function parseConfig(
  text: string,
  file: string,
  role: "agent" | "client",
): AgentConfig & ClientConfig {
  const w = new Walker(file);
  const top = w.obj(w.yaml(text), "");
  w.known(top, "", role === "agent" ? AGENT_KEYS : CLIENT_KEYS);
  const opt = <T>(key: string, read: (v: unknown, path: string) => T): T | undefined =>
    top[key] === undefined ? undefined : read(top[key], key);
  const str = (v: unknown, path: string) => w.str(v, path);
  const beside = (v: unknown, path: string) => besideFile(file, w.str(v, path));
  const pin = (v: unknown, path: string) => {
    try {
      return normalizeFingerprint(w.str(v, path));
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      return w.fail(
        path,
        "must be a SHA-256 fingerprint (64 hex digits), as `burrow fingerprint` prints it",
      );
    }
  };
  return {
    servers: opt("server", (v, p) => {
      const one = (x: unknown, path: string) => {
        const text = w.str(x, path);
        if (text === "") w.fail(path, "must be host:port or a wss:// URL");
        try {
          return parseServer(text, DEFAULT_PORTS[role]);
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
    tokenFile: opt("token_file", beside),
    key: opt("key", str),
    keyFile: opt("key_file", beside),
    allow: opt("allow", (v, p) => w.rules(v, p, true)),
    fingerprint: opt("fingerprint", (v, p) => {
      if (!Array.isArray(v)) return [pin(v, p)];
      if (v.length === 0) w.fail(p, "must name at least one fingerprint");
      return v.map((x, i) => pin(x, `${p}[${i}]`));
    }),
    ca: opt("ca", beside),
    serverName: opt("server_name", str),
    plain: opt("plain", (v, p) => w.bool(v, p)),
    proxy: opt("proxy", str),
    proxyFile: opt("proxy_file", beside),
    link: opt("link", (v, p) => w.bool(v, p)),
    serversPerAgent: opt("servers_per_agent", (v, p) => w.int(v, p, 2, 1, 64)),
    agent: opt("agent", (v, p) => w.name(v, p)),
    listen: opt(
      "listen",
      (v, p) =>
        v === "off" || v === false
          ? null
          : w.addr(v, p, "") ?? w.fail(p, "must be host:port, or off"),
    ),
    forwards: opt("forwards", (v, p) => w.list(v, p).map((x, i) => forward(w, x, `${p}[${i}]`))),
    dns: opt("dns", (v, p) => w.addr(v, p, "") ?? w.fail(p, "must be host:port")),
    dnsServer: opt("dns_server", (v, p) => {
      try {
        return parseDnsServer(w.str(v, p));
      } catch (e) {
        if (e instanceof ConfigError && !e.message.startsWith(w.file)) return w.fail(p, e.message);
        throw e;
      }
    }),
  };
}

/** One entry of `forwards:`. */
function forward(w: Walker, v: unknown, path: string): Forward {
  const o = w.obj(v, path);
  w.known(o, path, FORWARD_KEYS);
  const read = <T>(key: string, parse: (text: string) => T): T => {
    const x = o[key];
    if (x === undefined) return w.fail(`${path}.${key}`, "is required");
    try {
      return parse(typeof x === "number" ? String(x) : w.str(x, `${path}.${key}`));
    } catch (e) {
      if (e instanceof ConfigError && !e.message.startsWith(w.file)) {
        return w.fail(`${path}.${key}`, e.message);
      }
      throw e;
    }
  };
  return {
    listen: read("listen", parseForwardListen),
    target: read("target", parseForwardTarget),
    ...(o.agent === undefined ? {} : { agent: w.name(o.agent, `${path}.agent`) }),
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
 * Parse `--server`: `host:port`, `[v6]:port`, a host alone (then
 * `defaultPort`: {@link DEFAULT_PORTS}), or a WebSocket URL
 * `wss://host[:port][/prefix]` (`ws://` for a TLS-terminating reverse proxy).
 */
export function parseServer(text: string, defaultPort?: number): ServerAddress {
  if (!/^wss?:\/\//i.test(text)) {
    const bare = /^\[([0-9A-Fa-f:.]+)\]$/.exec(text) ?? /^([A-Za-z0-9._-]+)$/.exec(text);
    if (bare && defaultPort !== undefined) return { addr: { host: bare[1]!, port: defaultPort } };
    return { addr: parseAddr(text) };
  }
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
