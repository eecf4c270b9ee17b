/**
 * Server configuration: one YAML (or JSON) file, validated at load with
 * errors that name the file, the path inside it and the problem.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { ed25519Verifier, fromHex, tokenCredential, tokenVerifier, type Verifier } from "./auth.ts";
import type { Rule } from "./messages.ts";
import type { Addr } from "./net.ts";
import { parseRule, RuleError } from "./policy.ts";
import { parseDuration } from "./time.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** One agent or client the server knows. Holds verifiers, never prints secrets. */
export interface Identity {
  readonly name: string;
  /** By auth method (SPEC.md §9.4). */
  readonly verifiers: ReadonlyMap<number, Verifier>;
  /** RFC 1929 password check (token only), for the SOCKS5 port. */
  readonly checkPassword: ((password: string) => Promise<boolean>) | null;
  /** The credential material, only to tell on reload whether it changed. Never log it. */
  readonly credential: string;
}

export interface Grant {
  client: string;
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

export interface ServerConfig {
  listen: { agents: Addr; socks: Addr | null; clients: Addr | null; http: Addr | null };
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
}

/** Limits against abuse; each one that triggers is logged by name and counted. */
export interface Limits {
  /** Connections still in their handshake, over all ports. */
  pendingHandshakes: number;
  /** Streams open at once per client. */
  streamsPerClient: number;
  /** Streams open at once per agent. */
  streamsPerAgent: number;
  /** Failed authentications per source address per minute before it is blocked. */
  authFailuresPerMinute: number;
  /** How long a source address stays blocked. */
  authBlockMs: number;
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
  pendingHandshakes: 512,
  streamsPerClient: 1024,
  streamsPerAgent: 8192,
  authFailuresPerMinute: 20,
  authBlock: "60s",
} as const;

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Parse `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseAddr(text: string): Addr {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new TypeError(`Cannot parse address "${text}": expected host:port or [ipv6]:port`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

type Obj = Record<string, unknown>;

class Walker {
  constructor(readonly file: string) {}
  fail(path: string, problem: string): never {
    throw new ConfigError(`${this.file}: ${path || "(top level)"}: ${problem}`);
  }
  obj(v: unknown, path: string): Obj {
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) this.fail(path, "must be a mapping");
    return v as Obj;
  }
  known(o: Obj, path: string, keys: string[]): void {
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) this.fail(path ? `${path}.${k}` : k, `unknown key (expected one of ${keys.join(", ")})`);
    }
  }
  list(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, "must be a list");
    return v;
  }
  str(v: unknown, path: string): string {
    if (typeof v !== "string") this.fail(path, "must be a string");
    return v;
  }
  name(v: unknown, path: string): string {
    const s = this.str(v, path);
    if (!NAME.test(s)) this.fail(path, `"${s}" must be 1..64 characters of A-Z a-z 0-9 . _ -`);
    return s;
  }
  int(v: unknown, path: string, def: number, min: number, max: number): number {
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer in ${min}..${max}`);
    }
    return v;
  }
  duration(v: unknown, path: string, def: string): number {
    try {
      const ms = parseDuration((v ?? def) as string | number);
      if (ms <= 0 || ms > 86_400_000) this.fail(path, "must be between 1ms and 24h");
      return ms;
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      return this.fail(path, (e as Error).message);
    }
  }
  addr(v: unknown, path: string, def: string): Addr | null {
    if (v === "" || v === false) return null;
    try {
      return parseAddr(v === undefined ? def : this.str(v, path));
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      return this.fail(path, (e as Error).message);
    }
  }
}

function identities(w: Walker, v: unknown, kind: "agents" | "clients"): Map<string, Identity> {
  const out = new Map<string, Identity>();
  w.list(v, kind).forEach((item, i) => {
    const path = `${kind}[${i}]`;
    const o = w.obj(item, path);
    w.known(o, path, ["name", "token", "token_hash", "public_key"]);
    const name = w.name(o.name, `${path}.name`);
    if (out.has(name)) w.fail(`${path}.name`, `duplicate name "${name}"`);
    const verifiers = new Map<number, Verifier>();
    let checkPassword: Identity["checkPassword"] = null;
    if (o.token !== undefined && o.token_hash !== undefined) w.fail(path, "has both token and token_hash; keep one");
    if (o.token !== undefined || o.token_hash !== undefined) {
      let v: Verifier;
      if (o.token !== undefined) {
        const token = w.str(o.token, `${path}.token`);
        if (token.length < 8) w.fail(`${path}.token`, "must be at least 8 characters");
        v = tokenVerifier(token);
      } else {
        const m = /^sha256:([0-9a-fA-F]{64})$/.exec(w.str(o.token_hash, `${path}.token_hash`));
        if (!m) w.fail(`${path}.token_hash`, "must be sha256:<64 hex digits> as `burrow token` prints");
        v = tokenVerifier(fromHex(m[1]!)!);
      }
      verifiers.set(v.method, v);
      // Compare passwords through HMAC so the comparison is constant-time. A
      // password that passed once is remembered, so the SOCKS5 hot path does
      // no crypto: RFC 1929 clients send the same password on every connect.
      const probe = new TextEncoder().encode("burrow-v1 socks5 password");
      let good: string | undefined;
      checkPassword = async (password) => {
        if (good !== undefined && password === good) return true;
        const ok = await v.verify(probe, await tokenCredential(password).prove(probe));
        if (ok) good = password;
        return ok;
      };
    }
    if (o.public_key !== undefined) {
      try {
        const v = ed25519Verifier(w.str(o.public_key, `${path}.public_key`));
        verifiers.set(v.method, v);
      } catch (e) {
        if (e instanceof ConfigError) throw e;
        w.fail(`${path}.public_key`, "must be a base64 Ed25519 public key (see `burrow keygen`)");
      }
    }
    if (verifiers.size === 0) w.fail(path, "needs a token or a public_key");
    const credential = JSON.stringify([o.token ?? null, o.token_hash ?? null, o.public_key ?? null]);
    out.set(name, { name, verifiers, checkPassword, credential });
  });
  return out;
}

/** Parse and validate a server config file's text. `file` is used in errors only. */
export function parseServerConfig(text: string, file: string): ServerConfig {
  const w = new Walker(file);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    w.fail("", `not valid YAML or JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  const top = w.obj(doc, "");
  w.known(top, "", [
    "listen",
    "tls",
    "state_dir",
    "heartbeat",
    "handshake_timeout",
    "pool",
    "limits",
    "agents",
    "clients",
    "grants",
  ]);
  let tls: TlsConfig;
  if (top.tls === "off" || top.tls === false) tls = { mode: "off" };
  else if (top.tls === undefined || top.tls === null || top.tls === "auto") tls = { mode: "auto", names: [] };
  else {
    const t = w.obj(top.tls, "tls");
    w.known(t, "tls", ["cert", "key", "names"]);
    if ((t.cert === undefined) !== (t.key === undefined)) w.fail("tls", "needs both cert and key, or neither (auto)");
    if (t.cert !== undefined) {
      if (t.names !== undefined) w.fail("tls.names", "only applies to the auto certificate (no cert/key)");
      tls = { mode: "files", cert: w.str(t.cert, "tls.cert"), key: w.str(t.key, "tls.key") };
    } else {
      tls = { mode: "auto", names: w.list(t.names, "tls.names").map((n, i) => w.str(n, `tls.names[${i}]`)) };
    }
  }
  const limits = w.obj(top.limits, "limits");
  w.known(limits, "limits", [
    "pending_handshakes",
    "streams_per_client",
    "streams_per_agent",
    "auth_failures_per_minute",
    "auth_block",
  ]);
  const listen = w.obj(top.listen, "listen");
  w.known(listen, "listen", ["agents", "socks", "clients", "http"]);
  const hb = w.obj(top.heartbeat, "heartbeat");
  w.known(hb, "heartbeat", ["interval", "timeout"]);
  const pool = w.obj(top.pool, "pool");
  w.known(pool, "pool", ["min", "max", "wait", "idle", "open_timeout"]);
  const d = serverDefaults;
  const cfg: ServerConfig = {
    listen: {
      agents: w.addr(listen.agents, "listen.agents", d.agents) ?? w.fail("listen.agents", "cannot be disabled"),
      socks: w.addr(listen.socks, "listen.socks", d.socks),
      clients: w.addr(listen.clients, "listen.clients", d.clients),
      http: w.addr(listen.http, "listen.http", d.http),
    },
    tls,
    stateDir: top.state_dir === undefined ? ".burrow" : w.str(top.state_dir, "state_dir"),
    heartbeatIntervalMs: w.duration(hb.interval, "heartbeat.interval", d.heartbeatInterval),
    heartbeatTimeoutMs: w.duration(hb.timeout, "heartbeat.timeout", d.heartbeatTimeout),
    handshakeTimeoutMs: w.duration(top.handshake_timeout, "handshake_timeout", d.handshakeTimeout),
    poolMin: w.int(pool.min, "pool.min", d.poolMin, 0, 1000),
    poolMax: w.int(pool.max, "pool.max", d.poolMax, 1, 10000),
    poolWaitMs: w.duration(pool.wait, "pool.wait", d.poolWait),
    poolIdleMs: w.duration(pool.idle, "pool.idle", d.poolIdle),
    openTimeoutMs: w.duration(pool.open_timeout, "pool.open_timeout", d.openTimeout),
    limits: {
      pendingHandshakes: w.int(limits.pending_handshakes, "limits.pending_handshakes", d.pendingHandshakes, 1, 1_000_000),
      streamsPerClient: w.int(limits.streams_per_client, "limits.streams_per_client", d.streamsPerClient, 1, 1_000_000),
      streamsPerAgent: w.int(limits.streams_per_agent, "limits.streams_per_agent", d.streamsPerAgent, 1, 1_000_000),
      authFailuresPerMinute: w.int(
        limits.auth_failures_per_minute,
        "limits.auth_failures_per_minute",
        d.authFailuresPerMinute,
        1,
        1_000_000,
      ),
      authBlockMs: w.duration(limits.auth_block, "limits.auth_block", d.authBlock),
    },
    agents: identities(w, top.agents, "agents"),
    clients: identities(w, top.clients, "clients"),
    grants: [],
  };
  if (cfg.poolMin > cfg.poolMax) w.fail("pool.min", `(${cfg.poolMin}) must not exceed pool.max (${cfg.poolMax})`);
  if (cfg.heartbeatTimeoutMs <= cfg.heartbeatIntervalMs) {
    w.fail("heartbeat.timeout", "must be longer than heartbeat.interval");
  }
  w.list(top.grants, "grants").forEach((item, i) => {
    const path = `grants[${i}]`;
    const o = w.obj(item, path);
    w.known(o, path, ["client", "agent", "agents", "targets"]);
    const client = w.name(o.client, `${path}.client`);
    if (!cfg.clients.has(client)) w.fail(`${path}.client`, `unknown client "${client}"`);
    const names = o.agents !== undefined
      ? w.list(o.agents, `${path}.agents`).map((a, j) => w.name(a, `${path}.agents[${j}]`))
      : [w.name(o.agent, `${path}.agent`)];
    names.forEach((a, j) => {
      if (!cfg.agents.has(a)) w.fail(o.agents !== undefined ? `${path}.agents[${j}]` : `${path}.agent`, `unknown agent "${a}"`);
    });
    const targets = o.targets === undefined ? ["*"] : w.list(o.targets, `${path}.targets`);
    const rules = targets.flatMap((t, j) => {
      const tp = `${path}.targets[${j}]`;
      const s = w.str(t, tp);
      if (s.includes("=")) w.fail(tp, "a grant's targets cannot name a client");
      try {
        return parseRule(s);
      } catch (e) {
        if (e instanceof RuleError) w.fail(tp, e.message);
        throw e;
      }
    });
    cfg.grants.push({ client, agents: names, rules });
  });
  return cfg;
}
