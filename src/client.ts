/**
 * The client proxy (`burrow client`, SPEC.md §2.3): plain SOCKS5 on loopback
 * for local programs; each CONNECT becomes one authenticated connection to
 * the server's client port, naming the agent and the target.
 *
 * @module
 */
import { fmt, targetText } from "./addr.ts";
import type { Credential } from "./auth.ts";
import type { Forward } from "./config/mod.ts";
import {
  ConfigError,
  EofError,
  ListenError,
  NetError,
  PeerError,
  ProtocolError,
  ProxyError,
  SocksError,
  TimeoutError,
} from "./errors.ts";
import { IdMap } from "./idmap.ts";
import type { Logger } from "./log.ts";
import { ErrorCode, Reason, RuleProtocol, Status, type Target } from "./messages.ts";
import { type Addr, type Conn, type DialOptions, type Listener, type Net } from "./net.ts";
import { Reader } from "./reader.ts";
import { relay } from "./relay.ts";
import { acceptSocks, socksReply } from "./socks5_server.ts";
import { DnsFront, type DnsOptions } from "./dns_front.ts";
import { dnsUpstream, serveUdpAssociate } from "./client_udp.ts";
import {
  firstByte,
  httpCodeOf,
  httpReply,
  isHttp,
  readConnect,
  refusalText,
} from "./http_connect.ts";
import { type Err, err, ok, type Result } from "./result.ts";
import { deadline } from "./time.ts";
import { dialServer, login, Wire } from "./wire.ts";

export interface ClientOptions {
  /** Where local programs connect, SOCKS5 or HTTP CONNECT (default 127.0.0.1:1080); null: not at all. */
  listen: Addr | null;
  /** Local port forwards. */
  forwards?: Forward[];
  /** Internal DNS (SPEC.md §10.2): where to answer, and the server inside (null: the agent's). */
  dns?: DnsOptions;
  /** The server's client port, with TLS options if any. */
  server: Omit<DialOptions, "timeoutMs">;
  /** How to reach the server when not directly: a proxy or WebSocket (see AgentOptions.transport). */
  transport?: Net;
  /**
   * More servers, tried in order when the one in use cannot be reached (or
   * does not finish its handshake); a server that answers, even with a
   * refusal, is not left. The proxy stays with a server that worked.
   */
  alternates?: Array<{ server: Omit<DialOptions, "timeoutMs">; transport?: Net }>;
  name: string;
  credential: Credential;
  /** Agent to use; "" = the one the server grants (or the SOCKS5 user name). */
  agent: string;
  timeoutMs?: number;
  software?: string;
}

/** A stream opened: its connection, bytes already read past the handshake, the bound address. */
export interface Connected {
  conn: Conn;
  rest: Uint8Array;
  bound: Target;
}

/**
 * Why no stream: `answered`, the server took part (a refusal, an ERROR):
 * another server would not do better. `reason`: the SPEC.md §9.7 code of a
 * refused stream. `login`: the server refused the login itself (or TLS
 * failed): the credentials or the TLS settings are wrong.
 */
export interface ConnectFailure {
  status: number;
  message: string;
  answered: boolean;
  reason?: number;
  login?: boolean;
  /** A CHECK answered with status 0: the agent's nameserver, or IPv4 0.0.0.0:0 (SPEC.md §5.18). */
  bound?: Target;
}

export type ConnectResult = Result<Connected, ConnectFailure>;

const reasonNames = new Map<number, string>(Object.entries(Reason).map(([k, v]) => [v, k]));

/** The name of a SPEC.md §9.7 refusal reason, or `reason_N` for one we do not know. */
export function reasonName(code: number): string {
  return reasonNames.get(code) ?? `reason_${code}`;
}

/** ERROR codes that refuse the login itself (SPEC.md §10.2). */
const LOGIN_REFUSED: readonly number[] = [
  ErrorCode.auth_failed,
  ErrorCode.auth_method_unsupported,
  ErrorCode.unsupported_version,
];

/**
 * Open one stream through the server (SPEC.md §2.3), or with `target` null
 * make a login check (CHECK instead of CONNECT).
 */
export async function connectThrough(
  net: Net,
  opts: Pick<ClientOptions, "server" | "name" | "credential" | "timeoutMs" | "software">,
  agent: string,
  target: Target | null,
  protocol: number = RuleProtocol.tcp,
): Promise<ConnectResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  let conn: Conn;
  try {
    conn = await dialServer(net, { ...opts.server, timeoutMs });
  } catch (e) {
    const m = (e as Error).message; // a ProxyError names the proxy
    const message = e instanceof ProxyError ? m : `cannot reach the server: ${m}`;
    const tls = e instanceof NetError && e.code === "ETLS"; // another server may do better
    return err({ status: Status.general_failure, message, answered: false, login: tls });
  }
  const wire = new Wire(conn);
  try {
    const result = await deadline(
      (async () => {
        await login(
          wire,
          "client",
          opts.name,
          opts.credential,
          opts.software ?? "burrow/0.1.0",
          !opts.server.tls,
        );
        // CONNECT right behind AUTH: one round trip less (SPEC.md §2.3).
        await wire.send(
          target ? { type: "CONNECT", agent, protocol, target } : { type: "CHECK", agent },
        );
        await wire.expect("CLIENT_READY");
        return await wire.expect("CONNECT_RESULT");
      })(),
      timeoutMs,
      "server handshake",
      () => conn.close(),
    );
    if (result.status !== Status.succeeded || !target) {
      conn.close();
      if (result.status === Status.succeeded) {
        return err({ status: 0, message: "", answered: true, reason: 0, bound: result.bound });
      }
      const { status, reason } = result;
      const message = `server refused the stream: ${reasonName(reason)}`;
      return err({ status, message, answered: true, reason });
    }
    return ok({ conn, rest: wire.rest(), bound: result.bound });
  } catch (e) {
    conn.close();
    return failed(e);
  }
}

/** A connectThrough that failed in the handshake. */
function failed(e: unknown): Err<ConnectFailure> {
  if (e instanceof PeerError) {
    const status = e.code === ErrorCode.auth_failed ? Status.not_allowed : Status.general_failure;
    return err({
      status,
      message: e.message,
      answered: true,
      login: LOGIN_REFUSED.includes(e.code),
    });
  }
  if (e instanceof ProtocolError || e instanceof NetError || e instanceof TimeoutError) {
    return err({ status: Status.general_failure, message: e.message, answered: false });
  }
  throw e;
}

/** A local request read (SOCKS5 or HTTP CONNECT): where to, and how to answer it. */
interface LocalRequest {
  agent: string;
  target: Target;
  /** Answer a refusal with its status and the reason's text, or success (status 0). */
  answer(status: number, reason: string, bound?: Target): Promise<void>;
  /** The bytes that followed the request. */
  rest: Uint8Array;
  udp?: boolean; // a SOCKS5 UDP ASSOCIATE (`target`: the program's address), not a CONNECT
}

export class ClientProxy {
  #listener: Listener | undefined;
  readonly #forwards: Listener[] = [];
  /** The internal DNS (`dns`), once started. */
  dns: DnsFront | undefined;
  readonly #conns = new IdMap<Conn>();
  /** The server in use (index into {@link servers}): the last one that answered. */
  #current = 0;

  constructor(readonly net: Net, readonly opts: ClientOptions, readonly log: Logger) {}

  get addr(): Addr | undefined {
    return this.#listener?.addr;
  }

  /** Listen on the local port (unless null) and each forward's; a port that fails closes the others. */
  async start(): Promise<void> {
    try {
      for (const f of this.opts.forwards ?? []) {
        const l = await this.net.listen(f.listen).catch((e) => {
          throw new ListenError(fmt(f.listen), "--forward", e);
        });
        this.#forwards.push(l);
        this.log.info("forward listening", {
          forward: fmt(l.addr),
          target: targetText(f.target),
          agent: f.agent ?? (this.opts.agent || undefined),
        });
        this.#accept(l, (conn) => this.#forward(conn, f));
      }
      if (this.opts.dns) {
        this.dns = new DnsFront(this.net, this.opts.dns, dnsUpstream(this), this.log);
      }
      await this.dns?.start();
      if (this.opts.listen === null) return;
      const listen = this.opts.listen;
      this.#listener = await this.net.listen(listen).catch((e) => {
        throw new ListenError(fmt(listen), "--listen", e);
      });
    } catch (e) {
      for (const l of this.#forwards) l.close();
      await this.dns?.stop();
      throw e;
    }
    this.log.info("client proxy listening", {
      socks: fmt(this.#listener.addr),
      server: fmt(this.opts.server),
    });
    this.#accept(this.#listener, (conn) => this.#serve(conn));
  }

  #accept(listener: Listener, serve: (conn: Conn) => Promise<void>): void {
    (async () => {
      for await (const conn of listener) {
        const id = this.#conns.add(conn);
        conn.closed.then(() => this.#conns.delete(id));
        serve(conn).catch((e) => {
          this.log.error("client connection failed", { error: String(e) });
          conn.close();
        });
      }
    })();
  }

  /**
   * The login check at start (SPEC.md §10.2): throws ConfigError when the
   * server refuses the credentials or TLS fails; warns when the agent cannot
   * be used now or no server answers.
   */
  async checkLogin(): Promise<void> {
    const c = await this.connect(this.opts.agent, null);
    if (c.ok) return c.value.conn.close(); // not for a check: a server answers CONNECT_RESULT
    const r = c.error;
    const server = fmt(this.servers[this.#current]!.server);
    if (r.login) {
      throw new ConfigError(`the server ${server} refused the client login: ${r.message}`);
    }
    if (!r.answered) {
      return this.log.warn("no server reachable at start; streams will try again", {
        server,
        error: r.message,
      });
    }
    if (r.status === Status.succeeded) {
      return this.log.info("login checked", { server, agent: this.opts.agent || undefined });
    }
    if (r.reason === Reason.agent_ambiguous) {
      // Several agents and no --agent: each local program names one as its user name.
      return this.log.info("login checked; name the agent as the SOCKS5 user name", { server });
    }
    this.log.warn("the agent cannot be used now", {
      server,
      agent: this.opts.agent || undefined,
      status: r.status,
      reason: reasonName(r.reason ?? 0),
    });
  }

  async stop(): Promise<void> {
    this.#listener?.close();
    for (const l of this.#forwards) l.close();
    await this.dns?.stop();
    for (const c of this.#conns.values()) c.close();
    await Promise.all([...this.#conns.values()].map((c) => c.closed));
  }

  /** The servers in order: `server`, then the `alternates`. */
  get servers(): Array<{ server: Omit<DialOptions, "timeoutMs">; transport?: Net }> {
    const first = {
      server: this.opts.server,
      ...(this.opts.transport ? { transport: this.opts.transport } : {}),
    };
    return [first, ...(this.opts.alternates ?? [])];
  }

  /** connectThrough the server in use, on to the next while one cannot be reached. */
  async connect(agent: string, target: Target | null, protocol?: number): Promise<ConnectResult> {
    const servers = this.servers;
    let r: ConnectResult | undefined;
    for (let i = 0; i < servers.length; i++) {
      const at = (this.#current + i) % servers.length;
      const s = servers[at]!;
      r = await connectThrough(
        s.transport ?? this.net,
        { ...this.opts, server: s.server },
        agent,
        target,
        protocol,
      );
      if (r.ok || r.error.answered) {
        if (at !== this.#current) {
          this.log.warn("switched server", {
            server: fmt(s.server),
            previous: fmt(servers[this.#current]!.server),
          });
          this.#current = at;
        }
        return r;
      }
      if (servers.length > 1) {
        this.log.warn("server unreachable, trying the next", {
          server: fmt(s.server),
          error: r.error.message,
        });
      }
    }
    return r!;
  }

  /** One connection to a forward: one stream to its target, or closed (and logged) when refused. */
  async #forward(conn: Conn, f: Forward): Promise<void> {
    const agent = f.agent ?? this.opts.agent;
    const r = await this.connect(agent, f.target);
    if (!r.ok) {
      conn.close();
      return this.#refused(r.error, f.target, agent, { forward: fmt(f.listen) });
    }
    this.log.debug("stream open", { target: targetText(f.target), forward: fmt(f.listen) });
    await relay(conn, r.value.conn, new Uint8Array(0), r.value.rest).catch((e) => {
      if (!(e instanceof NetError)) throw e;
    });
  }

  #refused(
    r: ConnectFailure,
    target: Target,
    agent: string,
    more: Record<string, string> = {},
  ): void {
    this.log.warn("connect refused", {
      ...more,
      target: targetText(target),
      agent: agent || undefined,
      status: r.status,
      reason: r.reason === undefined ? undefined : reasonName(r.reason),
      error: r.message,
    });
  }

  /** A local connection: SOCKS5 or HTTP CONNECT, told by its first byte. */
  async #serve(conn: Conn): Promise<void> {
    const rd = new Reader(conn, 1024);
    const timer = setTimeout(() => conn.close(), this.opts.timeoutMs ?? 15_000);
    try {
      const req = isHttp(await firstByte(rd))
        ? await this.#httpRequest(conn, rd)
        : await this.#socksRequest(conn, rd);
      if (!req) return;
      clearTimeout(timer);
      if (req.udp) return await serveUdpAssociate(this, conn, req);
      const r = await this.connect(req.agent, req.target);
      if (!r.ok) {
        const f = r.error;
        this.#refused(f, req.target, req.agent);
        return await req.answer(
          f.status,
          f.reason === undefined ? f.message : reasonName(f.reason),
        );
      }
      await req.answer(Status.succeeded, "", r.value.bound);
      this.log.debug("stream open", { target: targetText(req.target) });
      await relay(conn, r.value.conn, req.rest, r.value.rest);
    } catch (e) {
      conn.close();
      if (e instanceof SocksError || e instanceof EofError) {
        this.log.warn("bad local handshake, closing", { error: e.message });
      } else if (!(e instanceof NetError)) throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The SOCKS5 handshake; null when refused (and answered). */
  async #socksRequest(conn: Conn, rd: Reader): Promise<LocalRequest | null> {
    // User/password locally only names the agent; the password is ignored (SPEC.md §10.2).
    const a = await acceptSocks(conn, rd, { noAuth: true, udp: true, checkUser: () => true });
    if (!a.ok) {
      this.log.warn("socks request refused", { refusal: a.error.refusal, error: a.error.detail });
      return null;
    }
    return {
      agent: a.value.username ?? this.opts.agent,
      target: a.value.target,
      answer: (status, _reason, bound) => socksReply(conn, status, bound),
      udp: a.value.command === "udpAssociate",
      get rest() {
        return rd.rest();
      },
    };
  }

  /** An HTTP CONNECT request (SPEC.md §8.1, no credentials needed); null when refused (and answered). */
  async #httpRequest(conn: Conn, first: Reader): Promise<LocalRequest | null> {
    const r = await readConnect(conn, first);
    if (!r.ok) {
      const { code, detail } = r.error;
      this.log.warn("http proxy request refused", { code, error: detail });
      await httpReply(conn, code, detail, code === 405 ? { Allow: "CONNECT" } : {});
      return null;
    }
    const req = r.value;
    return {
      agent: req.auth?.user || this.opts.agent, // a user name names the agent; no password
      target: req.target,
      answer: (status, reason) =>
        status === Status.succeeded
          ? httpReply(conn, 200)
          : httpReply(conn, httpCodeOf(status), refusalText(status, reason)),
      get rest() {
        return req.rd.rest();
      },
    };
  }
}
