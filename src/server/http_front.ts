/**
 * HTTP CONNECT on the SOCKS5 port (SPEC.md §8.1): a connection whose first
 * byte is not 0x05 is read as an HTTP request head. `Proxy-Authorization:
 * Basic` carries the RFC 1929 credentials (`client[@agent]`, the token),
 * checked as the SOCKS5 path checks them (the same decoy work for an unknown
 * client, the same failure counting); the CONNECT is routed as a SOCKS5 one.
 *
 * @module
 */
import { fmt, targetText } from "../addr.ts";
import { reasonName } from "../client.ts";
import { EofError, NetError } from "../errors.ts";
import {
  httpCodeOf,
  type HttpConnectRequest,
  type HttpRefusal,
  httpReply,
  PROXY_AUTHENTICATE,
  readConnect,
  refusalText,
} from "../http_connect.ts";
import type { Logger } from "../log.ts";
import type { Conn } from "../net.ts";
import type { Reader } from "../reader.ts";
import type { ServerContext } from "./context.ts";
import { checkCredential, type Credential } from "./credentials.ts";
import type { Router } from "./router.ts";
import { loggableAgent, loggableUser } from "./socks_front.ts";

/** The metrics' and logs' port label of streams opened by HTTP CONNECT. */
const PORT = "http";

export class HttpConnectFront {
  constructor(readonly ctx: ServerContext, readonly router: Router) {}

  /**
   * Serve `conn`, admitted to its handshake on the SOCKS5 port (`admitted`
   * ends that phase), whose first byte `first` holds is not SOCKS5's.
   */
  async handle(conn: Conn, first: Reader, admitted: () => void, log: Logger): Promise<void> {
    try {
      const r = await readConnect(conn, first);
      if (!r.ok) {
        admitted();
        return await this.#badHead(conn, r.error, log);
      }
      const req = r.value;
      const cred = await this.#login(conn, req, log);
      admitted();
      if (cred === null) return;
      return await this.#connect(conn, req, cred, log); // a stream: returned, not held
    } catch (e) {
      admitted();
      conn.close();
      if (e instanceof EofError) this.#protocolError("eof", e.message, log);
      else if (e instanceof NetError) {
        log.debug("http proxy connection ended", { error: e.message });
      } else throw e;
    }
  }

  /** Check the credentials (as RFC 1929's, credentials.ts): null after a 407 (counted when wrong). */
  async #login(
    conn: Conn,
    req: HttpConnectRequest,
    log: Logger,
  ): Promise<Credential | null> {
    if (req.auth === null) {
      log.info("http proxy request without credentials", { target: targetText(req.target) });
      await httpReply(conn, 407, "credentials required: client[@agent] and token", {
        ...PROXY_AUTHENTICATE,
      });
      return null;
    }
    const { user, password } = req.auth;
    const cred = await checkCredential(this.ctx.config(), this.ctx.tokens, user, password);
    if (cred.ok) return cred.value;
    const clients = this.ctx.config().clients;
    this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
      role: "socks",
    });
    this.ctx.admission.authFailed("socks", conn.remote.host);
    log.warn("http proxy authentication failed", {
      ...loggableUser(user, (c) => clients.has(c), (n) => this.ctx.config().agents.has(n)),
      reason: cred.error.reason,
      ...(cred.error.token ? { token: cred.error.token } : {}),
    });
    await httpReply(conn, 407, "bad user name or token", { ...PROXY_AUTHENTICATE });
    return null;
  }

  /** Route the CONNECT of an authenticated client; answer it; relay. */
  async #connect(
    conn: Conn,
    req: HttpConnectRequest,
    cred: Credential,
    log: Logger,
  ) {
    const t0 = Date.now();
    const { client, agent } = cred;
    const clientId = this.router.clientId(client);
    const token = cred.token ? this.ctx.tokens.who(cred.token) : {};
    const clog = log.with({ client, client_id: clientId, ...token });
    const r = await this.router.open({ client, clientId, agent, target: req.target, log: clog });
    if (!r.ok) {
      const { status, code, reason } = r.error;
      const shown = loggableAgent(agent, (n) => this.ctx.config().agents.has(n));
      const rlog = shown.agent_bytes === undefined ? clog : clog.with(shown);
      this.router.refused(rlog, PORT, client, req.target, status, reason, {
        ...shown,
        startedAt: t0,
      });
      await httpReply(conn, httpCodeOf(status), refusalText(status, reasonName(code)));
      return this.router.setupDone(PORT, t0, false);
    }
    const reply = httpReply(conn, 200);
    const id = cred.token?.id;
    return this.router.replied(reply, client, conn, req.rd.rest(), r.value, clog, PORT, t0, id);
  }

  /** Answer a head that is refused before any credential is looked at. */
  async #badHead(conn: Conn, req: HttpRefusal, log: Logger) {
    if (req.limit) {
      this.ctx.admission.limitHit(req.limit, { port: "socks", remote: fmt(conn.remote) });
    } else if (req.code === 405) {
      log.info("http proxy request refused", { error: req.detail });
    } else this.#protocolError("http", req.detail, log);
    await httpReply(conn, req.code, req.detail, req.code === 405 ? { Allow: "CONNECT" } : {});
  }

  #protocolError(code: string, error: string, log: Logger): void {
    this.ctx.metrics.inc(
      "burrow_protocol_errors_total",
      "Connections closed for a protocol error",
      { port: "socks", code },
    );
    log.warn("bad http proxy request, closing", { error });
  }
}
