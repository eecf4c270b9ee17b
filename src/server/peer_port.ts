/**
 * The accepting side of peer links (SPEC.md §2.6): the peer port's
 * handshake, then a link on which the dialing server opens streams within
 * our grants. A FORWARD (a TCP stream or a UDP association) is decided again
 * here, with this server's config, and opened on this server's own session
 * of the agent, never forwarded again; a FORWARD_CHECK (a login check) is
 * decided here the same way and answered; a FLEET is answered with what
 * this server holds, or acts on it.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { Link } from "../link.ts";
import type { Logger } from "../log.ts";
import type { MessageOf } from "../messages.ts";
import type { Conn } from "../net.ts";
import { deadline } from "../time.ts";
import { Wire } from "../wire.ts";
import { NO_ADDR } from "../writer.ts";
import type { ServerContext } from "./context.ts";
import { answerCheck } from "./login_check.ts";
import { acceptHandshake, type PeerHandshake } from "./peer_handshake.ts";
import { FleetOp } from "./peer_links.ts";
import type { Router } from "./router.ts";
import type { UdpFront } from "./udp_front.ts";

/** What the peer port asks of its server for FLEET. */
export interface FleetHost {
  /** This server's view, as the admin API shows it (its agents and streams are sent). */
  snapshot(): { agents: unknown[]; streams: unknown[] };
  disconnectAgent(name: string): boolean;
  disconnectReplica(name: string, instance: string): boolean;
  closeStream(id: number): boolean;
  /** The UDP associations: a FORWARD with protocol 17 is one (SPEC.md §2.6). */
  readonly udp: UdpFront;
}

/** Peer handshakes in progress at once; more are closed at once (SPEC.md §10.1). */
export const PEER_PENDING_HANDSHAKES = 64;

const enc = new TextEncoder();

export class PeerPort {
  #pending = 0;
  readonly #links = new Set<Link>();

  constructor(
    readonly ctx: ServerContext,
    readonly router: Router,
    readonly key: Uint8Array,
    readonly fleet: FleetHost,
    readonly self: string,
  ) {}

  /** A connection on the peer port (TLS already on it). */
  async handle(conn: Conn): Promise<void> {
    const log = this.ctx.log.with({ remote: fmt(conn.remote), port: "peer" });
    if (this.#pending >= PEER_PENDING_HANDSHAKES) {
      this.ctx.admission.limitHit("peer_pending_handshakes", {
        remote: fmt(conn.remote),
        max: PEER_PENDING_HANDSHAKES,
      });
      return conn.close();
    }
    this.#pending++;
    const c = this.ctx.config();
    const self = this.self;
    let hs: PeerHandshake;
    try {
      hs = await acceptHandshake(conn, self, this.key, c.handshakeTimeoutMs);
    } catch (e) {
      log.error("peer refused", { error: (e as Error).message });
      this.ctx.metrics.inc("burrow_auth_failures_total", "Failed authentications", {
        role: "peer",
      });
      return conn.close();
    } finally {
      this.#pending--;
    }
    const plog = log.with({ peer: hs.peer });
    const max = c.peer?.streamsPerLink ?? 1024;
    const link: Link = new Link(hs.conn, {
      maxStreams: max,
      onStream: (s) => {
        void this.#serve(s, plog, hs.peer).finally(() => link.grant(1));
      },
      frameTimeoutMs: c.heartbeatTimeoutMs,
      onLimit: (limit, n) => this.ctx.admission.limitHit(limit, { peer: hs.peer, max: n }),
      onClose: (why) => {
        this.#links.delete(link);
        plog.info("peer link ended", why ? { error: why.message } : {});
      },
    }, hs.rest);
    this.#links.add(link);
    link.grant(max);
    plog.info("peer link up", { role: "acceptor" });
    this.ctx.metrics.inc("burrow_peer_links_total", "Peer links made", { role: "acceptor" });
    await link.closed;
  }

  /** Close every peer link now. */
  close(): void {
    for (const l of this.#links) l.close();
  }

  /** One stream of a peer link: FORWARD, FORWARD_CHECK or FLEET. */
  async #serve(s: Conn, log: Logger, peer: string): Promise<void> {
    const wire = new Wire(s);
    try {
      const req = await deadline(
        wire.expect("FORWARD", "FORWARD_CHECK", "FLEET"),
        this.ctx.config().handshakeTimeoutMs,
        "peer stream's request",
        () => s.close(),
      );
      if (req.type === "FLEET") return await this.#fleet(wire, req);
      if (req.type === "FORWARD") return await this.#forwarded(wire, req, log, peer);
      const { client, agent } = req; // FORWARD_CHECK: a login check, decided with our grant
      const clog = log.with({ client, client_id: this.router.clientId(client), via: peer });
      await answerCheck(wire, this.ctx, this.router, { client, agent, log: clog, forwarded: peer });
    } catch (e) {
      // The dialer is another server of the fleet: whatever went wrong, its log says why too.
      log.warn("peer stream failed", { error: (e as Error).message });
      s.close();
    }
  }

  async #forwarded(
    wire: Wire,
    req: MessageOf<"FORWARD">,
    log: Logger,
    peer: string,
  ): Promise<void> {
    const t0 = Date.now();
    const { client, agent, target } = req;
    const clientId = this.router.clientId(client);
    const clog = log.with({ client, client_id: clientId, via: peer });
    const r = await this.router.open({
      client,
      clientId,
      agent,
      log: clog,
      forwarded: peer,
      // A UDP association's records are checked here as a client of ours's are.
      ...this.fleet.udp.request(req.protocol, target, client, clog, "peer"),
    });
    if (!r.ok) {
      const { status, code, reason } = r.error;
      this.router.refused(clog, "peer", client, target, status, reason, { agent, startedAt: t0 });
      this.router.setupDone("peer", t0, false);
      return await wire.last({ type: "CONNECT_RESULT", status, reason: code, bound: NO_ADDR });
    }
    const { bound } = r.value;
    const reply = wire.send({ type: "CONNECT_RESULT", status: 0, reason: 0, bound });
    await this.router.replied(reply, client, wire.conn, wire.rest(), r.value, clog, "peer", t0);
  }

  /** FLEET: this server's view, or an operator's request on what it holds. */
  async #fleet(wire: Wire, req: MessageOf<"FLEET">): Promise<void> {
    const f = this.fleet;
    let answer: unknown;
    if (req.op === FleetOp.view) {
      const { agents, streams } = f.snapshot();
      answer = { agents, streams };
    } else if (req.op === FleetOp.disconnect_agent) answer = { done: f.disconnectAgent(req.arg) };
    else if (req.op === FleetOp.disconnect_replica) {
      const [name = "", instance = ""] = req.arg.split(" ");
      answer = { done: f.disconnectReplica(name, instance) };
    } else if (req.op === FleetOp.close_stream && /^[0-9]{1,10}$/.test(req.arg)) {
      answer = { done: f.closeStream(Number(req.arg)) };
    } else answer = { done: false };
    await wire.conn.write(enc.encode(JSON.stringify(answer)));
    await wire.conn.end();
  }
}
