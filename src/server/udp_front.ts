/**
 * UDP associations on the server (SPEC.md §2.5, §8.2): UDP ASSOCIATE on the
 * SOCKS5 port (a relay socket per association, bound from `udp.listen`,
 * answered with `udp.advertise`), and the relay of a client proxy's CONNECT
 * with protocol 17. The stream to the agent opens through the router like
 * any other (the same checks, limits and carriers); udp_assoc.ts relays
 * it. Keeps the live associations (dashboard), their metrics and one audit
 * line per association (`udp association ended`).
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { ProtocolError } from "../errors.ts";
import { normalizeIP, normalizeTarget } from "../host.ts";
import { ipKind } from "../ip.ts";
import type { Logger } from "../log.ts";
import { RuleProtocol, Status, type Target } from "../messages.ts";
import type { Conn, DatagramSocket, Net } from "../net.ts";
import type { Reader } from "../reader.ts";
import { socksReply, type SocksRequest } from "../socks5_server.ts";
import { UDP_DROP_REASONS, UdpCounts } from "../udp_stream.ts";
import { AgentChoice } from "./agent_choice.ts";
import type { Pace } from "./bandwidth.ts";
import type { RelayCounter } from "../relay.ts";
import type { ServerContext } from "./context.ts";
import type { CredentialCheck } from "./credentials.ts";
import { splitUser } from "./credentials.ts";
import type { Opened, OpenRequest, RelayFn } from "./replica_open.ts";
import type { Router } from "./router.ts";
import { type AssocSides, permitter, relayRecords, relaySocks } from "./udp_assoc.ts";

/** One open association, as the dashboard and the admin API list it. */
export interface LiveAssociation {
  readonly stream: number;
  readonly client: string;
  readonly agent: string;
  /** The port the client came in on: `socks`, `clients` or `peer` (forwarded, SPEC.md §2.6). */
  readonly port: string;
  /** The relay socket's address (SOCKS5 port), or "" (a client proxy's, a peer's). */
  readonly relay: string;
  readonly since: number;
  readonly counts: UdpCounts;
}

/**
 * The target a UDP association's OPEN names (SPEC.md §2.5): the client's
 * requested address, for the log only, so one without a canonical form (a
 * client that sends the domain "0", as PySocks does) is IPv4 0.0.0.0 with
 * its port rather than a refusal.
 */
export function associationTarget(t: Target): Target {
  const n = normalizeTarget(t);
  return n.ok ? n.value : { type: "ipv4", host: "0.0.0.0", port: t.port };
}

/** Binds tried from a port range before UDP ASSOCIATE gets 0x01 (`limit=udp_ports`). */
const BIND_TRIES = 64;

export class UdpFront {
  /** Open associations by stream id. */
  readonly live: Map<number, LiveAssociation> = new Map();
  /** Every association's counts added up (ended and open ones). */
  readonly totals: UdpCounts = new UdpCounts();
  readonly #choice: AgentChoice;
  /** Ports of the `udp.listen` range bound now, and where the next search starts. */
  readonly #used = new Set<number>();
  #cursor = 0;

  constructor(readonly ctx: ServerContext, readonly router: Router, readonly net: Net) {
    this.#choice = new AgentChoice(() => ctx.config(), () => ctx.tokens);
    const m = ctx.metrics;
    const sum = (f: (c: UdpCounts) => number) => f(this.totals);
    const dirs = (up: (c: UdpCounts) => number, down: (c: UdpCounts) => number) => () =>
      [[{ direction: "up" }, sum(up)], [{ direction: "down" }, sum(down)]] as Array<
        [Record<string, string>, number]
      >;
    m.counter(
      "burrow_udp_datagrams_total",
      "Datagrams relayed through UDP associations",
      dirs((c) => c.datagramsUp, (c) => c.datagramsDown),
    );
    m.counter(
      "burrow_udp_bytes_total",
      "Payload bytes relayed through UDP associations",
      dirs((c) => c.bytesUp, (c) => c.bytesDown),
    );
    m.counter(
      "burrow_udp_dropped_total",
      "Datagrams dropped, by reason",
      () => UDP_DROP_REASONS.map((r) => [{ reason: r }, sum((c) => c.dropped[r])]),
    );
    m.gauge("burrow_udp_associations", "UDP associations open", () => [[{}, this.live.size]]);
  }

  /**
   * UDP ASSOCIATE on the SOCKS5 port, after login: bind the relay socket,
   * open the association's stream, answer, relay until the TCP connection
   * (or the stream) ends.
   */
  async associate(
    conn: Conn,
    rd: Reader,
    a: SocksRequest,
    log: Logger,
    cred: CredentialCheck | undefined,
  ): Promise<void> {
    const t0 = Date.now();
    const who = cred?.ok ? cred.value : undefined;
    const { client, agent } = who ?? splitUser(a.username ?? "");
    const clientId = this.router.clientId(client);
    const token = who?.token ? this.ctx.tokens.who(who.token) : {};
    const clog = log.with({ client, client_id: clientId, ...token });
    const sock = await this.#bind(conn, clog);
    if (sock === null) {
      this.router.refused(clog, "socks", client, a.target, Status.general_failure, "no UDP port");
      await socksReply(conn, Status.general_failure);
      return this.router.setupDone("socks", t0, false);
    }
    try {
      const relay: RelayFn = (control, _rest, r, live, pace) =>
        this.#run(
          "socks",
          client,
          r,
          clog,
          fmt(sock.addr),
          { live, pace },
          (s) => relaySocks(s, sock, control, a.target.port),
        );
      const r = await this.router.open({
        client,
        clientId,
        agent,
        target: associationTarget(a.target),
        log: clog,
        protocol: "udp",
        relay,
      });
      if (!r.ok) {
        const { status, reason } = r.error;
        this.router.refused(clog, "socks", client, a.target, status, reason, { startedAt: t0 });
        await socksReply(conn, status);
        return this.router.setupDone("socks", t0, false);
      }
      const reply = socksReply(conn, Status.succeeded, this.#bound(sock, conn));
      const id = who?.token?.id;
      const opened = r.value;
      return await this.router.replied(
        reply,
        client,
        conn,
        rd.rest(),
        opened,
        clog,
        "socks",
        t0,
        id,
      );
    } finally {
      sock.close();
    }
  }

  /**
   * What a client proxy's CONNECT (`port` "clients") or another fleet
   * server's FORWARD ("peer", SPEC.md §2.6) of `protocol` asks the router
   * to open: with 17 a UDP association, whose connection carries records
   * (relayed here), and its target for the log only (§2.5); else `target`.
   */
  request(
    protocol: number,
    target: Target,
    client: string,
    log: Logger,
    port: string,
  ): Pick<OpenRequest, "target" | "protocol" | "relay"> {
    if (protocol !== RuleProtocol.udp) return { target };
    const relay: RelayFn = (conn, rest, r, live, pace) =>
      this.#run(port, client, r, log, "", { live, pace }, (s) => relayRecords(s, conn, rest));
    return { protocol: "udp", relay, target: associationTarget(target) };
  }

  /** BND.ADDR and BND.PORT: `udp.advertise`, the bound address, or the one the client reached. */
  #bound(sock: DatagramSocket, conn: Conn): Target {
    const wildcard = sock.addr.host === "0.0.0.0" || sock.addr.host === "::";
    const host = this.ctx.config().udp.advertise ??
      (wildcard ? normalizeIP(conn.local.host) ?? conn.local.host : sock.addr.host);
    return { type: ipKind(host) ?? "ipv4", host, port: sock.addr.port };
  }

  /** A relay socket for `conn`'s association, from `udp.listen`; null when no port is free. */
  async #bind(conn: Conn, log: Logger): Promise<DatagramSocket | null> {
    const listen = this.ctx.config().udp.listen;
    const host = listen?.host ?? normalizeIP(conn.local.host) ?? conn.local.host;
    const [lo, hi] = listen ? [listen.portMin, listen.portMax] : [0, 0];
    const n = hi - lo + 1;
    let last: unknown;
    let tries = 0;
    for (let i = 0; i < n && tries < BIND_TRIES; i++) {
      const port = lo === 0 ? 0 : lo + (this.#cursor + i) % n;
      if (port !== 0 && this.#used.has(port)) continue;
      tries++;
      try {
        const sock = await this.net.bindUdp({ host, port });
        if (port !== 0) {
          this.#cursor = (port - lo + 1) % n;
          this.#used.add(port);
          sock.closed.then(() => this.#used.delete(port));
        }
        return sock;
      } catch (e) {
        last = e;
      }
    }
    this.ctx.admission.limitHit("udp_ports", {
      listen: `${host}:${lo === 0 ? "0" : `${lo}-${hi}`}`,
      error: last instanceof Error ? last.message : "every port of the range is bound",
    });
    log.debug("no UDP relay socket", { host });
    return null;
  }

  /** Run one association's relay, listed in {@link live}; count it; write its audit line. */
  async #run(
    port: string,
    client: string,
    r: Opened,
    log: Logger,
    relay: string,
    on: { live: RelayCounter; pace: Pace },
    go: (s: AssocSides) => Promise<{ aToB: number; bToA: number }>,
  ): Promise<{ aToB: number; bToA: number }> {
    const a: LiveAssociation = {
      stream: r.streamId,
      client,
      agent: r.agent,
      port,
      relay,
      since: Date.now(),
      counts: new UdpCounts(this.totals),
    };
    this.live.set(r.streamId, a);
    const protocolError = (e: ProtocolError) => {
      this.ctx.metrics.inc(
        "burrow_protocol_errors_total",
        "Connections closed for a protocol error",
        {
          port,
          code: e.code,
        },
      );
      log.warn("bad datagram record, closing the association", {
        stream: r.streamId,
        error: e.message,
      });
    };
    const sides: AssocSides = {
      agent: r.conn,
      agentRest: r.rest,
      permit: permitter(this.#choice, client, r.agent, r.session),
      counts: a.counts,
      live: on.live,
      log,
      protocolError,
      // The bandwidth limits count datagrams too (SPEC.md §2.5).
      allow: (bytes, up) => on.pace.datagram(up ? "up" : "down", bytes),
    };
    try {
      return await go(sides);
    } finally {
      this.live.delete(r.streamId);
      if (a.counts.dropped.backpressure > 0) {
        log.info("limit hit", {
          limit: "udp_backpressure",
          stream: r.streamId,
          dropped: a.counts.dropped.backpressure,
        });
      }
      log.info("udp association ended", {
        stream: r.streamId,
        port,
        agent: r.agent,
        relay: relay || undefined,
        ms: Date.now() - a.since,
        ...a.counts.fields(),
      });
    }
  }
}
