/**
 * The server's configuration file (README "Server"): YAML (or JSON),
 * validated at load with errors that name the file, the path inside it and
 * the problem.
 *
 * @module
 */
import {
  ed25519Verifier,
  fromHex,
  timingSafeEqual,
  tokenCredential,
  tokenHash,
  tokenVerifier,
  type Verifier,
} from "../auth.ts";
import type { Rule } from "../messages.ts";
import type { Addr } from "../net.ts";
import { type Cidr, ipv6Shares, proxyProtocol, trustedProxies } from "./trust.ts";
import { type TokensConfig, tokensConfig } from "./tokens.ts";
import { type OidcConfig, oidcConfig } from "./oidc.ts";
import { type UdpConfig, udpConfig } from "./udp.ts";
import { besideFile, type Obj, Walker, words } from "./walker.ts";

/** One agent or client the server knows. Holds verifiers, never prints secrets. */
export interface Identity {
  readonly name: string;
  /**
   * Its id (SPEC.md §5.5, §5.16), derived from the names in the config, so
   * that every server with the same config gives the same ids: see {@link stableIds}.
   */
  readonly id: number;
  /** By auth method (SPEC.md §9.4). */
  readonly verifiers: ReadonlyMap<number, Verifier>;
  /** RFC 1929 password check (token only), for the SOCKS5 port. */
  readonly checkPassword: ((password: string) => boolean | Promise<boolean>) | null;
  /** The credential material, only to tell on reload whether it changed. Never log it. */
  readonly credential: string;
}

/** Whom a grant is for: one of `client`, `person` (a signed-in person's subject) or `group`. */
export interface Grant {
  client?: string;
  person?: string;
  group?: string;
  agents: string[];
  rules: Rule[];
}

/** TLS for the agent and client ports (SPEC.md §11). */
export type TlsConfig =
  | { mode: "off" }
  /** Certificate and key from files. */
  | { mode: "files"; cert: string; key: string }
  /** A self-signed certificate made on first start and kept in the state directory. */
  | { mode: "auto"; names: string[] };

/** The admin API and dashboard (`admin:`); absent: the API is disabled. */
export interface AdminConfig {
  /** Constant-time check of a bearer token against the configured token or token_hash. */
  readonly check: (token: string) => boolean;
  /**
   * Whether `/metrics` needs the admin token too: true always, false never,
   * null (the default) on every listener that is not loopback-only.
   */
  readonly metricsAuth: boolean | null;
}

export interface ServerConfig {
  listen: {
    agents: Addr;
    socks: Addr | null;
    clients: Addr | null;
    http: Addr | null;
    /** One TLS port for WebSocket links and the HTTP app (SPEC.md §3.1); off by default. */
    https: Addr | null;
  };
  tls: TlsConfig;
  /** Where the server keeps what it generates (the auto TLS certificate). */
  stateDir: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  handshakeTimeoutMs: number;
  poolMin: number;
  poolMax: number;
  poolWaitMs: number;
  poolIdleMs: number;
  openTimeoutMs: number;
  limits: Limits;
  agents: Map<string, Identity>;
  clients: Map<string, Identity>;
  grants: Grant[];
  admin: AdminConfig | null;
  /** Proxies whose PROXY header or X-Forwarded-For names the real source (`trusted_proxies`). */
  trustedProxies: Cidr[];
  /** Listeners where every connection comes from a trusted proxy and starts with a PROXY header. */
  proxyProtocol: Set<"agents" | "socks" | "clients" | "https">;
  /** Issued tokens (`tokens:`, SPEC.md §6.4). */
  tokens: TokensConfig;
  /** The identity provider people sign in with (`oidc:`); null: none. */
  oidc: OidcConfig | null;
  /** The SOCKS5 port's UDP relay (`udp:`, SPEC.md §8.2). */
  udp: UdpConfig;
}

/** Limits against abuse; each one that triggers is logged by name and counted. */
export interface Limits {
  /** Connections still in their handshake, per port. */
  pendingHandshakes: number;
  /** Connections still in their handshake, per port and source address (IPv6: per /64). */
  pendingHandshakesPerSource: number;
  /** Streams open at once per client. */
  streamsPerClient: number;
  /** Streams open at once per agent. */
  streamsPerAgent: number;
  /** Failed authentications per port and source address (IPv6: /64) per minute before it is blocked there. */
  authFailuresPerMinute: number;
  /** How long a source address stays blocked. */
  authBlockMs: number;
  /**
   * Failed authentications per port per minute that the IPv6 prefixes of
   * {@link ipv6Shares} take their shares of (SPEC.md §10.1).
   */
  authFailureBudget: number;
  /**
   * IPv6 prefixes wider than a /64 and the share of a port's pending
   * handshakes and of its {@link authFailureBudget} each may hold, widest last.
   */
  ipv6Shares: { prefix: number; share: number }[];
}

export const serverDefaults = {
  agents: "0.0.0.0:7000",
  socks: "127.0.0.1:1080",
  clients: "0.0.0.0:7001",
  http: "127.0.0.1:7002",
  heartbeatInterval: "5s",
  heartbeatTimeout: "15s",
  handshakeTimeout: "10s",
  poolMin: 4,
  poolMax: 64,
  poolWait: "10s",
  poolIdle: "30s",
  openTimeout: "15s",
  pendingHandshakes: 1024,
  pendingHandshakesPerSource: 256,
  streamsPerClient: 1024,
  streamsPerAgent: 8192,
  authFailuresPerMinute: 20,
  authBlock: "60s",
  authFailureBudget: 200,
  ipv6Shares: { "56": 0.5, "48": 0.75 },
} as const;

const SERVER_KEYS = words(`listen tls state_dir heartbeat handshake_timeout pool limits agents
  clients grants admin trusted_proxies proxy_protocol tokens oidc udp`);
const LIMIT_KEYS = words(`pending_handshakes pending_handshakes_per_source streams_per_client
  streams_per_agent auth_failures_per_minute auth_block auth_failure_budget ipv6_shares`);

function passwordCheck(v: Verifier): NonNullable<Identity["checkPassword"]> {
  // Compare passwords through HMAC so the comparison is constant-time. A
  // password that passed once is remembered, so the SOCKS5 hot path does
  // no crypto: RFC 1929 clients send the same password on every connect.
  // It is compared in constant time too (a string === stops at the first
  // differing character).
  const enc = new TextEncoder();
  const probe = enc.encode("burrow-v1 socks5 password");
  let good: Uint8Array | undefined;
  const check = async (bytes: Uint8Array, password: string) => {
    const ok = await v.verify(probe, await tokenCredential(password).prove(probe));
    if (ok) good = bytes;
    return ok;
  };
  return (password) => {
    const bytes = enc.encode(password);
    if (good !== undefined && timingSafeEqual(bytes, good)) return true;
    return check(bytes, password);
  };
}

function tokenVerifierOf(w: Walker, o: Obj, path: string): Verifier {
  if (o.token !== undefined) {
    const token = w.str(o.token, `${path}.token`);
    if (token.length < 8) w.fail(`${path}.token`, "must be at least 8 characters");
    return tokenVerifier(token);
  }
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(w.str(o.token_hash, `${path}.token_hash`));
  if (!m) w.fail(`${path}.token_hash`, "must be sha256:<64 hex digits> as `burrow token` prints");
  return tokenVerifier(fromHex(m[1]!)!);
}

function identity(w: Walker, item: unknown, path: string): Identity {
  const o = w.obj(item, path);
  w.known(o, path, ["name", "token", "token_hash", "public_key"]);
  const name = w.name(o.name, `${path}.name`);
  const verifiers = new Map<number, Verifier>();
  let checkPassword: Identity["checkPassword"] = null;
  if (o.token !== undefined && o.token_hash !== undefined) {
    w.fail(path, "has both token and token_hash; keep one");
  }
  if (o.token !== undefined || o.token_hash !== undefined) {
    const v = tokenVerifierOf(w, o, path);
    verifiers.set(v.method, v);
    checkPassword = passwordCheck(v);
  }
  if (o.public_key !== undefined) {
    const key = w.str(o.public_key, `${path}.public_key`);
    let v: Verifier;
    try {
      v = ed25519Verifier(key);
    } catch {
      w.fail(`${path}.public_key`, "must be a base64 Ed25519 public key (see `burrow keygen`)");
    }
    verifiers.set(v.method, v);
  }
  // No credential: the client uses issued tokens only (SPEC.md §6.4). An agent needs one.
  if (verifiers.size === 0 && path.startsWith("agents")) {
    w.fail(path, "needs a token or a public_key");
  }
  const credential = JSON.stringify([o.token ?? null, o.token_hash ?? null, o.public_key ?? null]);
  return { name, id: 0, verifiers, checkPassword, credential };
}

function identities(w: Walker, v: unknown, kind: "agents" | "clients"): Map<string, Identity> {
  const out = new Map<string, Identity>();
  w.list(v, kind).forEach((item, i) => {
    const id = identity(w, item, `${kind}[${i}]`);
    if (out.has(id.name)) w.fail(`${kind}[${i}].name`, `duplicate name "${id.name}"`);
    out.set(id.name, id);
  });
  const ids = stableIds([...out.keys()]);
  for (const [name, x] of out) out.set(name, { ...x, id: ids.get(name)! });
  return out;
}

/**
 * Ids for `names` that depend on the names alone, not on order or history:
 * FNV-1a of the name, in 1..2^31−1; a collision (rare) moves the later name
 * (in sorted order) to the next free id. So servers that share a config give
 * every agent and client the same id.
 */
export function stableIds(names: readonly string[]): Map<string, number> {
  const taken = new Set<number>();
  const out = new Map<string, number>();
  for (const name of [...names].sort()) {
    let h = 0x811c9dc5;
    for (const b of new TextEncoder().encode(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    let id = (h % 0x7fffffff) + 1;
    while (taken.has(id)) id = (id % 0x7fffffff) + 1;
    taken.add(id);
    out.set(name, id);
  }
  return out;
}

function tlsConfig(w: Walker, v: unknown): TlsConfig {
  if (v === "off" || v === false) return { mode: "off" };
  if (v === undefined || v === null || v === "auto") return { mode: "auto", names: [] };
  if (typeof v !== "object" || Array.isArray(v)) {
    w.fail("tls", "must be auto, off, or a mapping with cert and key (or names)");
  }
  const t = w.obj(v, "tls");
  w.known(t, "tls", ["cert", "key", "names"]);
  if ((t.cert === undefined) !== (t.key === undefined)) {
    w.fail("tls", "needs both cert and key, or neither (auto)");
  }
  if (t.cert !== undefined) {
    if (t.names !== undefined) {
      w.fail("tls.names", "only applies to the auto certificate (no cert/key)");
    }
    return { mode: "files", cert: w.str(t.cert, "tls.cert"), key: w.str(t.key, "tls.key") };
  }
  return {
    mode: "auto",
    names: w.list(t.names, "tls.names").map((n, i) => w.str(n, `tls.names[${i}]`)),
  };
}

/** `admin: {token | token_hash, metrics_auth}`: the admin API's bearer token. */
function adminConfig(w: Walker, v: unknown): AdminConfig | null {
  if (v === undefined || v === null) return null;
  const a = w.obj(v, "admin");
  w.known(a, "admin", ["token", "token_hash", "metrics_auth"]);
  if ((a.token === undefined) === (a.token_hash === undefined)) {
    w.fail("admin", "needs exactly one of token and token_hash (see `burrow token`)");
  }
  let hash: Uint8Array;
  if (a.token !== undefined) {
    const token = w.str(a.token, "admin.token");
    if (token.length < 16) w.fail("admin.token", "must be at least 16 characters");
    hash = tokenHash(token);
  } else {
    const m = /^sha256:([0-9a-fA-F]{64})$/.exec(w.str(a.token_hash, "admin.token_hash"));
    if (!m) w.fail("admin.token_hash", "must be sha256:<64 hex digits> as `burrow token` prints");
    hash = fromHex(m[1]!)!;
  }
  const metricsAuth = a.metrics_auth === undefined
    ? null
    : w.bool(a.metrics_auth, "admin.metrics_auth");
  // Hash first, then compare: the time depends on neither the token's length nor its content.
  return { check: (token) => timingSafeEqual(tokenHash(token), hash), metricsAuth };
}

function limitsConfig(w: Walker, v: unknown): Limits {
  const l = w.obj(v, "limits");
  w.known(l, "limits", LIMIT_KEYS);
  const d = serverDefaults;
  const n = (key: string, def: number) => w.int(l[key], `limits.${key}`, def, 1, 1_000_000);
  return {
    pendingHandshakes: n("pending_handshakes", d.pendingHandshakes),
    pendingHandshakesPerSource: n("pending_handshakes_per_source", d.pendingHandshakesPerSource),
    streamsPerClient: n("streams_per_client", d.streamsPerClient),
    streamsPerAgent: n("streams_per_agent", d.streamsPerAgent),
    authFailuresPerMinute: n("auth_failures_per_minute", d.authFailuresPerMinute),
    authBlockMs: w.duration(l.auth_block, "limits.auth_block", d.authBlock),
    authFailureBudget: n("auth_failure_budget", d.authFailureBudget),
    ipv6Shares: ipv6Shares(w, l.ipv6_shares ?? d.ipv6Shares),
  };
}

function listenConfig(w: Walker, v: unknown): ServerConfig["listen"] {
  const listen = w.obj(v, "listen");
  w.known(listen, "listen", ["agents", "socks", "clients", "http", "https"]);
  const d = serverDefaults;
  return {
    agents: w.addr(listen.agents, "listen.agents", d.agents) ??
      w.fail("listen.agents", "cannot be disabled"),
    socks: w.addr(listen.socks, "listen.socks", d.socks),
    clients: w.addr(listen.clients, "listen.clients", d.clients),
    http: w.addr(listen.http, "listen.http", d.http),
    https: listen.https === undefined ? null : w.addr(listen.https, "listen.https", ""),
  };
}

function grants(w: Walker, v: unknown, cfg: ServerConfig): Grant[] {
  return w.list(v, "grants").map((item, i) => {
    const path = `grants[${i}]`;
    const o = w.obj(item, path);
    w.known(o, path, ["client", "person", "group", "agent", "agents", "targets"]);
    const who = grantee(w, o, path, cfg);
    const names = o.agents !== undefined
      ? w.list(o.agents, `${path}.agents`).map((a, j) => w.name(a, `${path}.agents[${j}]`))
      : [w.name(o.agent, `${path}.agent`)];
    names.forEach((a, j) => {
      if (!cfg.agents.has(a)) {
        w.fail(
          o.agents !== undefined ? `${path}.agents[${j}]` : `${path}.agent`,
          `unknown agent "${a}"`,
        );
      }
    });
    const rules = w.rules(o.targets === undefined ? ["*"] : o.targets, `${path}.targets`, false);
    return { ...who, agents: names, rules };
  });
}

/** A grant's `client`, `person` or `group`: exactly one. */
function grantee(w: Walker, o: Obj, path: string, cfg: ServerConfig): Partial<Grant> {
  const keys = (["client", "person", "group"] as const).filter((k) => o[k] !== undefined);
  if (keys.length !== 1) w.fail(path, "needs exactly one of client, person and group");
  const key = keys[0]!;
  if (key === "client") {
    const client = w.name(o.client, `${path}.client`);
    if (!cfg.clients.has(client)) w.fail(`${path}.client`, `unknown client "${client}"`);
    return { client };
  }
  const v = w.str(o[key], `${path}.${key}`);
  const n = new TextEncoder().encode(v).length;
  // deno-lint-ignore no-control-regex
  if (n < 1 || n > 96 || /[\u0000-\u001f\u007f]/.test(v)) {
    w.fail(`${path}.${key}`, "must be 1..96 bytes without control characters");
  }
  return { [key]: v };
}

/**
 * Parse and validate a server config file's text. `file` is used in errors,
 * and, with `paths`, relative paths in it (`state_dir`, `tls.cert`,
 * `tls.key`) are taken from `file`'s folder.
 */
export function parseServerConfig(text: string, file: string, paths = false): ServerConfig {
  const w = new Walker(file);
  const top = w.obj(w.yaml(text), "");
  w.known(top, "", SERVER_KEYS);
  const hb = w.obj(top.heartbeat, "heartbeat");
  w.known(hb, "heartbeat", ["interval", "timeout"]);
  const pool = w.obj(top.pool, "pool");
  w.known(pool, "pool", ["min", "max", "wait", "idle", "open_timeout"]);
  const d = serverDefaults;
  const cfg: ServerConfig = {
    listen: listenConfig(w, top.listen),
    tls: tlsConfig(w, top.tls),
    stateDir: top.state_dir === undefined
      ? ".burrow"
      : paths
      ? besideFile(file, w.str(top.state_dir, "state_dir"))
      : w.str(top.state_dir, "state_dir"),
    heartbeatIntervalMs: w.duration(hb.interval, "heartbeat.interval", d.heartbeatInterval),
    heartbeatTimeoutMs: w.duration(hb.timeout, "heartbeat.timeout", d.heartbeatTimeout),
    handshakeTimeoutMs: w.duration(top.handshake_timeout, "handshake_timeout", d.handshakeTimeout),
    poolMin: w.int(pool.min, "pool.min", d.poolMin, 0, 1000),
    poolMax: w.int(pool.max, "pool.max", d.poolMax, 1, 10000),
    poolWaitMs: w.duration(pool.wait, "pool.wait", d.poolWait),
    poolIdleMs: w.duration(pool.idle, "pool.idle", d.poolIdle),
    openTimeoutMs: w.duration(pool.open_timeout, "pool.open_timeout", d.openTimeout),
    limits: limitsConfig(w, top.limits),
    agents: identities(w, top.agents, "agents"),
    clients: identities(w, top.clients, "clients"),
    grants: [],
    admin: adminConfig(w, top.admin),
    trustedProxies: trustedProxies(w, top.trusted_proxies),
    proxyProtocol: new Set(),
    tokens: tokensConfig(w, top.tokens),
    oidc: oidcConfig(w, top.oidc),
    udp: udpConfig(w, top.udp),
  };
  cfg.proxyProtocol = proxyProtocol(w, top.proxy_protocol, cfg);
  if (cfg.poolMin > cfg.poolMax) {
    w.fail("pool.min", `(${cfg.poolMin}) must not exceed pool.max (${cfg.poolMax})`);
  }
  if (cfg.heartbeatTimeoutMs <= cfg.heartbeatIntervalMs) {
    w.fail("heartbeat.timeout", "must be longer than heartbeat.interval");
  }
  cfg.grants = grants(w, top.grants, cfg);
  if (paths && cfg.oidc?.ca) cfg.oidc.ca = besideFile(file, cfg.oidc.ca);
  if (paths && cfg.tls.mode === "files") {
    cfg.tls = {
      ...cfg.tls,
      cert: besideFile(file, cfg.tls.cert),
      key: besideFile(file, cfg.tls.key),
    };
  }
  return cfg;
}
