/**
 * The client port (SPEC.md §2.3): a client proxy logs in (CLIENT_HELLO,
 * CHALLENGE, AUTH), names agent and target in CONNECT, and gets
 * CONNECT_RESULT; then the connection carries the stream.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { NO_ADDR } from "../writer.ts";
import type { Conn } from "../net.ts";
import { Wire } from "../wire.ts";
import { closeOnError, type ServerContext } from "./context.ts";
import { verifyIssuedLogin } from "./credentials.ts";
import { verifyLogin } from "./login.ts";
import { answerCheck } from "./login_check.ts";
import { AuthMethod } from "../messages.ts";
import type { Router } from "./router.ts";
import { loggableAgent } from "./socks_front.ts";
import type { UdpFront } from "./udp_front.ts";

export class ClientFront {
  constructor(readonly ctx: ServerContext, readonly router: Router, readonly udp?: UdpFront) {}

  async handle(conn: Conn): Promise<void> {
    const admitted = this.ctx.admission.begin(conn, "clients");
    if (!admitted) return;
    const wire = new Wire(conn);
    const log = this.ctx.log.with({ remote: fmt(conn.remote) });
    try {
      const hello = await wire.expect("CLIENT_HELLO");
      const failed = (why: string, token?: string) => {
        this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
          role: "client",
        });
        this.ctx.admission.authFailed("clients", conn.remote.host);
        const known = this.ctx.config().clients.has(hello.name);
        log.warn("authentication failed", {
          role: "client",
          ...(known ? { name: hello.name } : { name_bytes: hello.name.length }),
          reason: why,
          ...(token ? { token } : {}),
        });
      };
      const issued = hello.authMethod === AuthMethod.issued_token;
      const who = issued
        ? await verifyIssuedLogin(wire, hello, this.ctx.config(), this.ctx.tokens, failed)
        : await verifyLogin(wire, hello, "client", this.ctx.config().clients, failed);
      const client = "client" in who ? who.client : hello.name;
      const token = "token" in who ? who.token : undefined;
      const tokenId = token?.id;
      const clientId = this.router.clientId(client);
      await wire.send({ type: "CLIENT_READY", clientId });
      const req = await wire.expect("CONNECT", "CHECK");
      const t0 = Date.now(); // the request is read: setup time starts
      admitted();
      const shown = token ? this.ctx.tokens.who(token) : {};
      const clog = log.with({ client, client_id: clientId, ...shown });
      // A login check (SPEC.md §2.3): the answer a CONNECT would get before its target.
      const check = { client, agent: req.agent, log: clog };
      if (req.type === "CHECK") return await answerCheck(wire, this.ctx, this.router, check);
      const r = await this.router.open({
        client,
        clientId,
        agent: req.agent,
        log: clog,
        ...(this.udp?.request(req.protocol, req.target, client, clog, "clients") ??
          { target: req.target }),
      });
      if (!r.ok) {
        const { status, code, reason } = r.error;
        const shown = loggableAgent(req.agent, (n) => this.ctx.config().agents.has(n));
        const rlog = shown.agent_bytes === undefined ? clog : clog.with(shown);
        this.router.refused(rlog, "clients", client, req.target, status, reason, {
          ...shown,
          startedAt: t0,
        });
        this.router.setupDone("clients", t0, false);
        return await wire.last({ type: "CONNECT_RESULT", status, reason: code, bound: NO_ADDR });
      }
      const { bound } = r.value;
      const reply = wire.send({ type: "CONNECT_RESULT", status: 0, reason: 0, bound });
      return await this.router.replied(
        reply,
        client,
        conn,
        wire.rest(),
        r.value,
        clog,
        "clients",
        t0,
        tokenId,
      );
    } catch (e) {
      admitted();
      await closeOnError(this.ctx, wire, e, log, "clients");
    }
  }
}
