/**
 * Reaching the server through an outbound proxy, as closed networks often
 * demand: HTTP CONNECT (RFC 9110 §9.3.6) with Basic credentials, or SOCKS5
 * (RFC 1928/1929; `socks5h://` lets the proxy resolve the name, `socks5://`
 * resolves it here). Runtime-free: {@link proxyHandshake} runs over any
 * {@link Conn} to the proxy; the adapters call it between dialing the proxy
 * and starting TLS, so TLS runs end to end through the tunnel.
 *
 * Which proxy: `--proxy URL`, else the environment as curl reads it for an
 * https URL (`https_proxy`, `HTTPS_PROXY`, then `all_proxy`, `ALL_PROXY`),
 * minus `no_proxy`/`NO_PROXY`; {@link proxyFor}. Credentials in a URL are
 * kept out of logs: {@link redactProxy}.
 *
 * @module
 */
import { ConfigError, EofError, NetError, ProxyError, SocksError } from "./errors.ts";
import { canonicalIP, inCidr, ipKind, targetOf } from "./ip.ts";
import type { Addr, Conn, Net } from "./net.ts";
import { relay } from "./relay.ts";
import { deadline } from "./time.ts";
import { Reader } from "./reader.ts";
import { parseMethodSelection, parseReply, parseUserpassReply } from "./socks5_decode.ts";
import { greeting, request, SocksCmd, SocksMethod, userpassRequest } from "./socks5_encode.ts";
import { Status, type Target } from "./messages.ts";

/** An outbound proxy. */
export interface Proxy {
  kind: "http" | "socks5" | "socks5h";
  host: string;
  port: number;
  user?: string;
  password?: string;
}

const DEFAULT_PORT = { http: 3128, socks5: 1080, socks5h: 1080 } as const;

/**
 * Parse `http://[user:pass@]host[:port]`, `socks5://…` or `socks5h://…`
 * (user and password percent-encoded, as in URLs). Throws ConfigError.
 */
export function parseProxyUrl(text: string): Proxy {
  let u: URL;
  try {
    u = new URL(text.includes("://") ? text : `http://${text}`);
  } catch {
    throw new ConfigError(`Cannot parse proxy ${JSON.stringify(redactText(text))}: not a URL`);
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme !== "http" && scheme !== "socks5" && scheme !== "socks5h") {
    throw new ConfigError(
      `Cannot use proxy ${
        redactProxyUrl(u)
      }: scheme ${scheme} is not supported (http, socks5, socks5h)`,
    );
  }
  if (u.pathname !== "/" && u.pathname !== "" || u.search || u.hash) {
    throw new ConfigError(`Cannot use proxy ${redactProxyUrl(u)}: a proxy URL has no path`);
  }
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  if (host === "") throw new ConfigError(`Cannot use proxy ${redactProxyUrl(u)}: no host`);
  const p: Proxy = { kind: scheme, host, port: u.port ? Number(u.port) : DEFAULT_PORT[scheme] };
  if (u.username) p.user = decodeURIComponent(u.username);
  if (u.password) p.password = decodeURIComponent(u.password);
  if (scheme !== "http" && p.user === undefined && p.password !== undefined) {
    throw new ConfigError(
      `Cannot use proxy ${redactProxyUrl(u)}: SOCKS5 needs a user name with the password`,
    );
  }
  return p;
}

/**
 * A proxy for logs: `http://***@proxy:3128`. The user info goes entirely: a
 * user name can be the secret (`http://TOKEN@proxy`).
 */
export function redactProxy(p: Proxy): string {
  const host = p.host.includes(":") ? `[${p.host}]` : p.host;
  return `${p.kind}://${hasCredentials(p) ? "***@" : ""}${host}:${p.port}`;
}

function redactProxyUrl(u: URL): string {
  return `${u.protocol}//${u.username || u.password ? "***@" : ""}${u.host}`;
}

/** A user or a password in the URL: send credentials (`http://:pw@host` too). */
const hasCredentials = (p: Proxy): boolean => p.user !== undefined || p.password !== undefined;

function redactText(text: string): string {
  return text.replace(/\/\/[^@/]*@/, "//***@");
}

/**
 * Does `no_proxy` exempt `host`? curl's rules: a comma-separated list; `*`
 * exempts everything; a name exempts itself and its subdomains (a leading
 * dot is optional); an IP or CIDR exempts addresses inside; ports are ignored;
 * case-insensitive.
 */
export function noProxyMatches(noProxy: string, host: string): boolean {
  const h = (canonicalIP(host) ?? host.toLowerCase()).replace(/\.$/, "");
  for (let entry of noProxy.split(/[,\s]+/)) {
    entry = entry.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    if (entry.startsWith("[")) entry = entry.slice(1, entry.indexOf("]"));
    else if (/^[^:]+:\d+$/.test(entry)) entry = entry.slice(0, entry.lastIndexOf(":"));
    const slash = entry.indexOf("/");
    if (slash >= 0) {
      const base = entry.slice(0, slash);
      const prefix = Number(entry.slice(slash + 1));
      const kind = ipKind(base);
      if (
        kind && Number.isInteger(prefix) && prefix >= 0 && prefix <= (kind === "ipv4" ? 32 : 128)
      ) {
        if (inCidr(h, base, prefix)) return true;
      }
      continue;
    }
    const ip = canonicalIP(entry);
    if (ip !== null) {
      if (ip === h) return true;
      continue;
    }
    const name = entry.replace(/^\./, "").replace(/\.$/, "");
    if (h === name || h.endsWith(`.${name}`)) return true;
  }
  return false;
}

/**
 * The proxy to use for a connection to `host`: `explicit` (`--proxy`) if
 * given, else none if `useEnv` is false, else the environment's (see the
 * module doc), unless `no_proxy` exempts `host`. Throws ConfigError for a
 * proxy URL that does not parse.
 */
export function proxyFor(
  host: string,
  opts: {
    explicit?: string | undefined;
    useEnv: boolean;
    env: (name: string) => string | undefined;
  },
): Proxy | null {
  if (opts.explicit) return parseProxyUrl(opts.explicit);
  if (!opts.useEnv) return null;
  const env = (name: string) => {
    const v = opts.env(name);
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const url = env("https_proxy") ?? env("HTTPS_PROXY") ?? env("all_proxy") ?? env("ALL_PROXY");
  if (url === undefined) return null;
  const noProxy = env("no_proxy") ?? env("NO_PROXY");
  if (noProxy !== undefined && noProxyMatches(noProxy, host)) return null;
  return parseProxyUrl(url);
}

/** The proxy's answer to CONNECT, status line and headers, at most (bytes). */
const HEADER_LIMIT = 16 * 1024;
/** The proxy handshake's deadline when the dial has none. */
const PROXY_HANDSHAKE_MS = 15_000;
const CRLF2 = [13, 10, 13, 10];
const enc = new TextEncoder();

/**
 * Ask proxy `p`, reached over `conn`, for a tunnel to `host:port`. Resolves
 * when the tunnel stands; rejects with ProxyError for a refusal (407, 403,
 * SOCKS5 replies, bad credentials) and NetError/EofError when the proxy goes
 * away. `lookup` resolves names for `socks5://` (the proxy never sees them).
 * Bytes the proxy sent past its answer are returned, to be read first.
 */
export async function proxyHandshake(
  conn: Conn,
  p: Proxy,
  host: string,
  port: number,
  lookup: (host: string) => Promise<string[]>,
): Promise<Uint8Array> {
  try {
    if (p.kind === "http") return await httpConnect(conn, p, host, port);
    return await socks5Connect(conn, p, host, port, lookup);
  } catch (e) {
    if (e instanceof EofError) {
      // Closed early, or an answer over its limit: e says which.
      throw new ProxyError(`the proxy ${redactProxy(p)} broke off its handshake: ${e.message}`, {
        cause: e,
      });
    }
    if (e instanceof SocksError) {
      throw new ProxyError(`the proxy ${redactProxy(p)} does not speak SOCKS5: ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  }
}

function basic(p: Proxy): string {
  const text = `${p.user ?? ""}:${p.password ?? ""}`;
  let bin = "";
  for (const b of enc.encode(text)) bin += String.fromCharCode(b);
  return btoa(bin);
}

async function httpConnect(conn: Conn, p: Proxy, host: string, port: number): Promise<Uint8Array> {
  const authority = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  let req = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  if (hasCredentials(p)) req += `Proxy-Authorization: Basic ${basic(p)}\r\n`;
  req += "\r\n";
  await conn.write(enc.encode(req));
  // The head's end is looked for in new bytes only: a head sent a byte at a
  // time costs linear time, not quadratic.
  const rd = new Reader(conn, HEADER_LIMIT);
  let from = 0;
  const head = await rd.parse((buf) => {
    for (let i = Math.max(0, from - 3); i + 3 < buf.length; i++) {
      if (CRLF2.every((b, k) => buf[i + k] === b)) {
        return { value: buf.subarray(0, i), size: i + 4 };
      }
    }
    from = buf.length;
    return null;
  }, "the proxy's answer");
  const text = new TextDecoder("latin1").decode(head);
  const m = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?/.exec(text);
  if (!m) throw new ProxyError(`the proxy ${redactProxy(p)} did not answer CONNECT with HTTP`);
  const status = Number(m[1]);
  const reason = `${status}${m[2] ? ` ${m[2]}` : ""}`;
  if (status >= 200 && status < 300) return rd.rest();
  // 407 is the standard answer; some proxies (tinyproxy) answer wrong credentials with 401.
  if (status === 407 || (status === 401 && hasCredentials(p))) {
    throw new ProxyError(
      !hasCredentials(p)
        ? `the proxy ${
          redactProxy(p)
        } requires authentication (407): give user:password in the proxy URL or proxy file`
        : `the proxy ${redactProxy(p)} rejected the credentials (${status})`,
      { status },
    );
  }
  if (status === 403) {
    throw new ProxyError(
      `the proxy ${redactProxy(p)} does not allow a tunnel to ${authority} (403)`,
      { status },
    );
  }
  throw new ProxyError(
    `the proxy ${redactProxy(p)} refused the tunnel to ${authority}: ${reason}`,
    {
      status,
    },
  );
}

const SOCKS_REPLY_TEXT: Record<number, string> = {
  [Status.general_failure]: "general failure",
  [Status.not_allowed]: "not allowed by its rules",
  [Status.network_unreachable]: "network unreachable",
  [Status.host_unreachable]: "host unreachable",
  [Status.connection_refused]: "connection refused",
  [Status.ttl_expired]: "timed out",
  [Status.command_not_supported]: "CONNECT not supported",
  [Status.address_type_not_supported]: "address type not supported",
};

async function socks5Connect(
  conn: Conn,
  p: Proxy,
  host: string,
  port: number,
  lookup: (host: string) => Promise<string[]>,
): Promise<Uint8Array> {
  let target: Target = targetOf(host, port);
  if (p.kind === "socks5" && target.type === "domain") {
    const ips = await lookup(host);
    if (ips.length === 0) throw new NetError("ENOTFOUND", `cannot resolve ${host}`);
    target = targetOf(ips[0]!, port);
  }
  const methods: number[] = p.user !== undefined
    ? [SocksMethod.userpass, SocksMethod.noAuth]
    : [SocksMethod.noAuth];
  await conn.write(greeting(methods));
  const rd = new Reader(conn, 1024);
  const sel = await rd.parse(parseMethodSelection, "SOCKS5 method selection");
  if (sel.method === SocksMethod.userpass && p.user !== undefined) {
    await conn.write(userpassRequest(p.user, p.password ?? ""));
    const a = await rd.parse(parseUserpassReply, "SOCKS5 user/password reply");
    if (a.status !== 0) {
      throw new ProxyError(`the proxy ${redactProxy(p)} rejected the credentials`);
    }
  } else if (sel.method !== SocksMethod.noAuth) {
    throw new ProxyError(
      p.user === undefined && sel.method === SocksMethod.noAcceptable
        ? `the proxy ${
          redactProxy(p)
        } requires authentication: give user:password in the proxy URL or proxy file`
        : `the proxy ${redactProxy(p)} accepts none of our authentication methods`,
    );
  }
  await conn.write(request(SocksCmd.connect, target));
  const r = await rd.parse(parseReply, "SOCKS5 reply");
  if (r.reply !== Status.succeeded) {
    const why = SOCKS_REPLY_TEXT[r.reply] ?? `reply ${r.reply}`;
    throw new ProxyError(`the proxy ${redactProxy(p)} could not reach ${host}:${port}: ${why}`, {
      status: r.reply,
    });
  }
  return rd.rest();
}

/**
 * `net` with every dial going through `proxy` (listen and lookup unchanged).
 *
 * A plain dial is the proxy's tunnel itself. A TLS dial runs the adapter's
 * own TLS (pinning, CAs, each runtime's quirks) over the tunnel through a
 * loopback bridge (see {@link bridge}): the tunnel is opened first, then the
 * adapter dials the bridge, which pipes its connection into the tunnel. The
 * name verified (and sent as SNI) stays the target's.
 */
export function proxiedNet(net: Net, proxy: Proxy): Net & { close(): void } {
  const tunnel = async (
    host: string,
    port: number,
    timeoutMs: number | undefined,
  ): Promise<Conn> => {
    const conn = await net.dial({
      host: proxy.host,
      port: proxy.port,
      ...(timeoutMs ? { timeoutMs } : {}),
    }).catch((e: Error) => {
      throw new ProxyError(`cannot reach the proxy ${redactProxy(proxy)}: ${e.message}`, {
        cause: e,
      });
    });
    try {
      // One deadline for the whole answer, however slowly its bytes come.
      const work = proxyHandshake(conn, proxy, host, port, (h) => net.lookup(h));
      const ms = timeoutMs ?? PROXY_HANDSHAKE_MS;
      const rest = await deadline(work, ms, `proxy handshake with ${redactProxy(proxy)}`);
      return rest.length > 0 ? prefixed(conn, rest) : conn;
    } catch (e) {
      conn.close();
      throw e;
    }
  };
  const bridges = new Map<string, Promise<Bridge>>();
  return {
    /** Close the bridges (dialed connections stay). */
    close() {
      for (const b of bridges.values()) void b.then((br) => br.close());
      bridges.clear();
    },
    runtime: net.runtime,
    listen: (opts) => net.listen(opts),
    lookup: (host) => net.lookup(host),
    // A proxy for TCP carries no UDP: datagram sockets stay the local ones.
    bindUdp: (opts) => net.bindUdp(opts),
    async dial(opts) {
      const remote = await tunnel(opts.host, opts.port, opts.timeoutMs);
      if (!opts.tls) return remote;
      const key = `${opts.host}:${opts.port}`;
      let b = bridges.get(key);
      if (!b) bridges.set(key, b = bridge(net, () => tunnel(opts.host, opts.port, opts.timeoutMs)));
      const br = await b;
      br.ready.push(remote);
      br.dialing++;
      try {
        return await net.dial({
          host: "127.0.0.1",
          port: br.addr.port,
          ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
          tls: { ...opts.tls, serverName: opts.tls.serverName ?? opts.host },
        });
      } finally {
        br.dialing--;
        const i = br.ready.indexOf(remote);
        if (i >= 0) {
          br.ready.splice(i, 1);
          remote.close();
        }
      }
    },
  };
}

interface Bridge {
  addr: Addr;
  /** Tunnels that stand and wait for their TLS dial through the bridge. */
  ready: Conn[];
  /** Our TLS dials through the bridge in progress. */
  dialing: number;
  close(): void;
}

/**
 * A loopback listener that pairs each accepted connection with the oldest
 * tunnel waiting in `ready` (opened before the dial, so that a proxy's
 * refusal reaches the dialer as it is) and relays between them. While one of
 * our dials is in progress, a connection that finds no tunnel waiting gets a
 * fresh one (an adapter may connect twice for one dial: Deno fetches a pinned
 * certificate first); otherwise it is not one of ours and is closed at once.
 */
async function bridge(net: Net, open: () => Promise<Conn>): Promise<Bridge> {
  const l = await net.listen({ host: "127.0.0.1", port: 0 });
  const b: Bridge = { addr: l.addr, ready: [], dialing: 0, close: () => l.close() };
  (async () => {
    for await (const local of l) {
      const remote = b.ready.shift();
      if (remote) void relay(local, remote);
      else if (b.dialing > 0) open().then((r) => void relay(local, r), () => local.close());
      else local.close();
    }
  })();
  return b;
}

/** `conn` with `first` returned by the first read. */
function prefixed(conn: Conn, first: Uint8Array): Conn {
  let pending: Uint8Array | null = first;
  return {
    get local() {
      return conn.local;
    },
    get remote() {
      return conn.remote;
    },
    get nagle() {
      return conn.nagle ?? false;
    },
    read() {
      if (pending) {
        const p = pending;
        pending = null;
        return Promise.resolve(p);
      }
      return conn.read();
    },
    write: (chunk) => conn.write(chunk),
    end: () => conn.end(),
    close: () => conn.close(),
    closed: conn.closed,
    setNoDelay: (on) => conn.setNoDelay(on),
  };
}
