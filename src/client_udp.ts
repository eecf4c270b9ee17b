/**
 * The client proxy's SOCKS5 UDP ASSOCIATE (RFC 1928 §7, SPEC.md §10.2), with
 * the rules of the server's SOCKS5 port and its relay (server/udp_assoc.ts
 * `relaySocks`): each association is one client-proxy connection whose
 * CONNECT names protocol 17 (SPEC.md §5.17), its datagrams go as records,
 * and the internal DNS's way in (`dnsUpstream`). Locally the
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
import { RuleProtocol, Status, type Target } from "./messages.ts";
import { type ClientProxy, type ConnectFailure, reasonName } from "./client.ts";
import type { DnsUpstream } from "./dns_front.ts";
import { err, ok } from "./result.ts";
import type { Addr, Conn, DatagramSocket } from "./net.ts";
import { type AssocSides, relaySocks } from "./server/udp_assoc.ts";
import { UdpCounts } from "./udp_stream.ts";

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
  const stream = r.value.conn;
  let sock: DatagramSocket;
  try {
    sock = await proxy.net.bindUdp({ host: conn.local.host, port: 0 });
  } catch (e) {
    stream.close();
    proxy.log.warn("udp associate failed", { error: (e as Error).message });
    return await answer(Status.general_failure);
  }
  try {
    await answer(Status.succeeded, addrTarget(sock.addr));
  } catch (e) {
    sock.close();
    stream.close();
    throw e;
  }
  proxy.log.debug("udp association open", { relay: fmt(sock.addr), client: fmt(conn.remote) });
  // The relay of the server's SOCKS5 port, with the client-port stream in the agent's place:
  // every datagram is checked there (and again at the agent), so none is here.
  const counts = new UdpCounts();
  const sides: AssocSides = {
    agent: stream,
    agentRest: r.value.rest,
    permit: (t) => t,
    counts,
    live: { up: 0, down: 0 },
    log: proxy.log,
    protocolError: (e) => proxy.log.warn("udp association broken", { error: e.message }),
    allow: () => true, // the server's bandwidth limits apply there
  };
  await relaySocks(sides, sock, conn, hint.port);
  proxy.log.info("udp association closed", { client: fmt(conn.remote), ...counts.fields() });
}

function addrTarget(a: Addr): Target {
  return { type: a.host.includes(":") ? "ipv6" : "ipv4", host: a.host, port: a.port };
}
