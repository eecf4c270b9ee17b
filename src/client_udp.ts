/**
 * The client proxy's SOCKS5 UDP ASSOCIATE (RFC 1928 §7, SPEC.md §10.2), with
 * the rules of the server's SOCKS5 port: each association is one
 * client-proxy connection whose CONNECT names protocol 17 (SPEC.md §5.17),
 * and its datagrams go as records (client_association.ts). Locally the
 * proxy binds a UDP socket on the address the program connected to and
 * answers it as BND.ADDR:BND.PORT; it takes datagrams only from the IP
 * address of the program's TCP connection, and from the first one on only
 * from that address and port (the request's DST.PORT, when not 0, fixes
 * the port from the start). Fragments (FRAG ≠ 0) and malformed datagrams
 * are dropped and counted. The association lives as long as its TCP
 * connection: either end closes the other.
 *
 * @module
 */
import { fmt } from "./addr.ts";
import { Association } from "./client_association.ts";
import { SocksError } from "./errors.ts";
import { normalizeIP } from "./host.ts";
import { RuleProtocol, Status, type Target } from "./messages.ts";
import { type ClientProxy, type ConnectFailure, reasonName } from "./client.ts";
import type { DnsUpstream } from "./dns_front.ts";
import { err, ok } from "./result.ts";
import type { Addr, Conn, DatagramSocket } from "./net.ts";
import { parseUdpDatagram } from "./socks5_decode.ts";
import { udpDatagram } from "./socks5_encode.ts";

/** What an association needs of the client proxy. */
export type UdpProxy = Pick<ClientProxy, "net" | "log" | "connect" | "opts">;

/** The client proxy as the DNS front's way in (SPEC.md §10.2), for `--agent`'s agent. */
export function dnsUpstream(proxy: UdpProxy): DnsUpstream {
  const agent = proxy.opts.agent;
  const why = (f: ConnectFailure) => f.reason === undefined ? f.message : reasonName(f.reason);
  return {
    async associate(server) {
      const r = await proxy.connect(agent, server, RuleProtocol.udp);
      return r.ok ? ok(new Association(r.value.conn, r.value.rest)) : err(why(r.error));
    },
    async nameserver() {
      const r = await proxy.connect(agent, null);
      if (r.ok) r.value.conn.close(); // not for a CHECK
      if (r.ok || r.error.status !== Status.succeeded) {
        return err(r.ok ? "the server answered CHECK with a stream" : why(r.error));
      }
      const ns = r.error.bound;
      if (!ns || ns.port === 0) {
        return err("the agent reported no nameserver: name one with --dns-server");
      }
      return ok(ns);
    },
  };
}

/** Datagrams dropped on the local side, by reason (logged when the association ends). */
export interface LocalDrops {
  /** From another IP address than the TCP connection's, or another port than the locked one. */
  source: number;
  fragment: number;
  malformed: number;
  /** An answer too big for the SOCKS5 header, or one before the program sent anything. */
  undeliverable: number;
}

/** A UDP ASSOCIATE read: the agent, the program's address (DST.ADDR:DST.PORT), how to reply. */
export interface UdpAssociateRequest {
  agent: string;
  target: Target;
  answer(status: number, reason: string, bound?: Target): Promise<void>;
}

/** Serve one UDP ASSOCIATE of `conn` until either side ends. */
export async function serveUdpAssociate(
  proxy: UdpProxy,
  conn: Conn,
  req: UdpAssociateRequest,
): Promise<void> {
  const { agent, target: hint } = req;
  const answer = (status: number, bound?: Target) => req.answer(status, "", bound);
  const r = await proxy.connect(agent, hint, RuleProtocol.udp);
  if (!r.ok) {
    const reason = r.error.reason === undefined ? undefined : reasonName(r.error.reason);
    proxy.log.warn("udp associate refused", {
      agent: agent || undefined,
      status: r.error.status,
      reason,
      error: r.error.message,
    });
    return await answer(r.error.status);
  }
  const assoc = new Association(r.value.conn, r.value.rest);
  let sock: DatagramSocket;
  try {
    sock = await proxy.net.bindUdp({ host: conn.local.host, port: 0 });
  } catch (e) {
    assoc.close();
    proxy.log.warn("udp associate failed", { error: (e as Error).message });
    return await answer(Status.general_failure);
  }
  try {
    await answer(Status.succeeded, addrTarget(sock.addr));
  } catch (e) {
    sock.close();
    assoc.close();
    throw e;
  }
  const relay = new LocalRelay(sock, assoc, conn, hint.port);
  proxy.log.debug("udp association open", { relay: fmt(sock.addr), client: fmt(conn.remote) });
  await relay.run();
  proxy.log.info("udp association closed", {
    client: fmt(conn.remote),
    sent: assoc.sent,
    received: assoc.received,
    dropped_backpressure: assoc.dropped.backpressure,
    dropped_too_big: assoc.dropped.too_big,
    dropped_source: relay.drops.source,
    dropped_fragment: relay.drops.fragment,
    dropped_malformed: relay.drops.malformed,
    dropped_undeliverable: relay.drops.undeliverable,
    ...(assoc.error ? { error: assoc.error.message } : {}),
  });
}

function addrTarget(a: Addr): Target {
  return { type: a.host.includes(":") ? "ipv6" : "ipv4", host: a.host, port: a.port };
}

/** One association's local side: the program's datagrams up, the answers down. */
class LocalRelay {
  readonly drops: LocalDrops = { source: 0, fragment: 0, malformed: 0, undeliverable: 0 };
  /** The program's address once its first datagram came. */
  #peer: Addr | null = null;
  readonly #ip: string;

  constructor(
    readonly sock: DatagramSocket,
    readonly assoc: Association,
    readonly conn: Conn,
    readonly port: number,
  ) {
    this.#ip = normalizeIP(conn.remote.host) ?? conn.remote.host;
  }

  /** Until the TCP connection or the association ends; then both close, and the socket. */
  async run(): Promise<void> {
    const done = () => {
      this.sock.close();
      this.assoc.close();
      this.conn.close();
    };
    await Promise.race([
      this.#control().finally(done),
      this.#up().finally(done),
      this.#down().finally(done),
    ]);
    await Promise.all([this.sock.closed, this.assoc.closed, this.conn.closed]);
  }

  /** The TCP connection: nothing more is expected on it; its end ends the association. */
  async #control(): Promise<void> {
    for (let i = 0; i < 1_000_000; i++) {
      if ((await this.conn.read().catch(() => null)) === null) return;
    }
  }

  async #up(): Promise<void> {
    for (;;) {
      const d = await this.sock.receive();
      if (d === null) return;
      if (!this.#accept(d.from)) {
        this.drops.source++;
        continue;
      }
      let dg;
      try {
        dg = parseUdpDatagram(d.data);
      } catch (e) {
        if (!(e instanceof SocksError)) throw e;
        if (e.code === "fragment") this.drops.fragment++;
        else this.drops.malformed++;
        continue;
      }
      this.assoc.send(dg.target, dg.data); // a drop is counted there
    }
  }

  /** From the program's IP address only; from the first datagram on, its address and port. */
  #accept(from: Addr): boolean {
    if (this.#peer) return from.host === this.#peer.host && from.port === this.#peer.port;
    if ((normalizeIP(from.host) ?? from.host) !== this.#ip) return false;
    if (this.port !== 0 && from.port !== this.port) return false;
    this.#peer = from;
    return true;
  }

  async #down(): Promise<void> {
    for (;;) {
      const r = await this.assoc.receive();
      if (r === null) return;
      const to = this.#peer;
      let out: Uint8Array;
      try {
        if (!to) throw new RangeError("no program address yet");
        out = udpDatagram(r.addr, r.data);
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        this.drops.undeliverable++;
        continue;
      }
      await this.sock.send(out, to!).catch(() => this.drops.undeliverable++);
    }
  }
}
