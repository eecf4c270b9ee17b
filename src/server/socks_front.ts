/**
 * The SOCKS5 port (SPEC.md §7.1, §8): RFC 1929 user `client` or
 * `client@agent` with the client's token as password, then one CONNECT
 * routed by the {@link Router}.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { EofError, NetError, SocksError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Status } from "../messages.ts";
import type { Conn } from "../net.ts";
import { Reader } from "../reader.ts";
import { acceptSocks, type SocksRefusal, socksReply, type SocksRequest } from "../socks5_server.ts";
import type { ServerContext } from "./context.ts";
import { firstByte, isHttp } from "../http_connect.ts";
import { HttpConnectFront } from "./http_front.ts";
import { checkCredential, type CredentialCheck, splitUser } from "./credentials.ts";
import type { Router } from "./router.ts";
import type { UdpFront } from "./udp_front.ts";

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A user name for the log. A token typed into the user-name field must not
 * land in the log, and a burrow token has the shape of a name: so the name is
 * logged only when it is `client[@agent]` with a configured client and a
 * configured agent; with a configured client and anything else after the
 * `@`, the client and the agent part's length; else only the length.
 */
export function loggableUser(
  user: string,
  known: (client: string) => boolean,
  knownAgent: (agent: string) => boolean,
): Record<string, string | number> {
  const { client, agent } = splitUser(user);
  if (!NAME.test(client) || !known(client)) return { user_bytes: utf8Length(user) };
  if (agent === "" || knownAgent(agent)) return { user };
  return { client, agent_bytes: utf8Length(agent) };
}

/** An agent name a client sent, for the log: as it is when it names a configured agent, else its length. */
export function loggableAgent(
  agent: string,
  known: (agent: string) => boolean,
): { agent?: string; agent_bytes?: number } {
  if (agent === "") return {};
  return known(agent) ? { agent } : { agent_bytes: utf8Length(agent) };
}

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

const NOTHING = (): void => {};

export class SocksFront {
  /** HTTP CONNECT on this port (SPEC.md §8.1): the first byte tells it from SOCKS5. */
  readonly #http: HttpConnectFront;
  constructor(readonly ctx: ServerContext, readonly router: Router, readonly udp?: UdpFront) {
    this.#http = new HttpConnectFront(ctx, router);
  }

  async handle(conn: Conn): Promise<void> {
    const admitted = this.ctx.admission.begin(conn, "socks");
    if (!admitted) return;
    const rd = new Reader(conn, 1024);
    const log = this.ctx.log.with({ remote: fmt(conn.remote) });
    let expected = (): void => {};
    let cred: CredentialCheck | undefined;
    try {
      const first = await firstByte(rd);
      if (isHttp(first)) return this.#http.handle(conn, rd, admitted, log);
      const a = await acceptSocks(conn, rd, {
        noAuth: false,
        udp: this.udp !== undefined,
        checkUser: (user, password) => {
          const checked = checkCredential(this.ctx.config(), this.ctx.tokens, user, password);
          const done = (r: CredentialCheck): boolean => {
            cred = r;
            // Its CONNECT will most likely follow: the pool can be asked now.
            if (r.ok) expected = this.router.expect(r.value.client, r.value.agent);
            return r.ok;
          };
          return "then" in checked ? checked.then(done) : done(checked);
        },
      });
      admitted();
      expected(); // the CONNECT takes from the pool in this turn, before the pool asks
      if (!a.ok) return this.#refusedHandshake(conn, a.error, log, cred);
      if (a.value.command === "udpAssociate" && this.udp) {
        return await this.udp.associate(conn, rd, a.value, log, cred); // SPEC.md §8.2
      }
      return await this.#connect(conn, rd, a.value, log, cred);
    } catch (e) {
      admitted();
      expected();
      conn.close();
      this.#failed(e, log);
    }
  }

  /**
   * Route the CONNECT; answer it; relay. Resolves once the answer is
   * written: the stream is relayed on its own, so this handler's frames (its
   * reader, the handshake's logger) do not last as long as the stream.
   */
  async #connect(
    conn: Conn,
    rd: Reader,
    a: SocksRequest,
    log: Logger,
    cred: CredentialCheck | undefined,
  ) {
    const t0 = Date.now(); // the request is read: setup time starts
    const who = cred?.ok ? cred.value : undefined;
    const { client, agent } = who ?? splitUser(a.username ?? "");
    const clientId = this.router.clientId(client);
    const token = who?.token ? this.ctx.tokens.who(who.token) : {};
    const clog = log.with({ client, client_id: clientId, ...token });
    const r = await this.router.open({ client, clientId, agent, target: a.target, log: clog });
    if (!r.ok) {
      const { status, reason } = r.error;
      const shown = loggableAgent(agent, (n) => this.ctx.config().agents.has(n));
      const rlog = shown.agent_bytes === undefined ? clog : clog.with(shown);
      this.router.refused(rlog, "socks", client, a.target, status, reason, {
        ...shown,
        startedAt: t0,
      });
      await socksReply(conn, status);
      return this.router.setupDone("socks", t0, false);
    }
    const reply = socksReply(conn, Status.succeeded, r.value.bound);
    const id = who?.token?.id;
    const relayed = this.router.replied(
      reply,
      client,
      conn,
      rd.rest(),
      r.value,
      clog,
      "socks",
      t0,
      id,
    );
    relayed.catch(NOTHING); // it fails only when the reply does, which is thrown here
    await reply;
  }

  /** Log and count a handshake that acceptSocks refused (and already answered). */
  #refusedHandshake(
    conn: Conn,
    a: SocksRefusal,
    log: Logger,
    cred: CredentialCheck | undefined,
  ): void {
    const user = a.username ?? "";
    const { client } = splitUser(user);
    const clients = this.ctx.config().clients;
    switch (a.refusal) {
      case "auth_failed":
        this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
          role: "socks",
        });
        this.ctx.admission.authFailed("socks", conn.remote.host);
        return log.warn("socks authentication failed", {
          ...loggableUser(user, (c) => clients.has(c), (n) => this.ctx.config().agents.has(n)),
          reason: cred && !cred.ok
            ? cred.error.reason
            : clients.has(client)
            ? "bad token"
            : "unknown client",
          ...(cred && !cred.ok && cred.error.token ? { token: cred.error.token } : {}),
        });
      case "no_acceptable_method":
        return log.warn("socks client offers no acceptable method", { error: a.detail });
      default: {
        const status = a.refusal === "command_not_supported"
          ? Status.command_not_supported
          : a.refusal === "bad_target"
          ? Status.not_allowed
          : Status.address_type_not_supported;
        const clog = log.with({ client, client_id: this.router.clientId(client) });
        return this.router.refused(clog, "socks", client, null, status, a.detail);
      }
    }
  }

  /** A handshake that failed: malformed input is logged and counted, a network failure only logged. */
  #failed(e: unknown, log: Logger): void {
    if (e instanceof SocksError || e instanceof EofError) {
      const code = e instanceof SocksError ? e.code : "eof";
      this.ctx.metrics.inc(
        "burrow_protocol_errors_total",
        "Connections closed for a protocol error",
        { port: "socks", code },
      );
      log.warn("bad socks handshake, closing", { error: e.message });
    } else if (e instanceof NetError) {
      log.debug("socks connection ended", { error: e.message });
    } else throw e;
  }
}
