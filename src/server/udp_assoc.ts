/**
 * The server's half of a UDP association (SPEC.md §2.5, §8.2), once its
 * stream to the agent is open: each datagram from the client is checked
 * against the client's grant and the agent's announcement (UDP rules)
 * before it is framed; records from the agent go back to the client. The
 * client side is a relay socket (the SOCKS5 port, {@link relaySocks}) or a
 * client-proxy connection that carries records itself ({@link relayRecords}).
 * Nothing waits: what cannot be handed on at once is dropped and counted.
 *
 * @module
 */
import { ProtocolError, SocksError } from "../errors.ts";
import { normalizeIP, normalizeTarget } from "../host.ts";
import type { Logger } from "../log.ts";
import type { Target } from "../messages.ts";
import type { Addr, Conn, DatagramSocket } from "../net.ts";
import { matchRule, rulesFor } from "../policy.ts";
import type { RelayCounter, RelayResult } from "../relay.ts";
import { parseUdpDatagram } from "../socks5_decode.ts";
import { udpDatagram } from "../socks5_encode.ts";
import { readRecords, RecordWriter, type UdpCounts, Waiting } from "../udp_stream.ts";
import type { AgentChoice } from "./agent_choice.ts";
import type { Session } from "./carrier.ts";

/** The datagram's target in canonical form when the policy lets it through, else null. */
export type Permit = (target: Target) => Target | null;

/**
 * The per-datagram check of SPEC.md §2.5: the target's canonical form
 * (§7.3), inside the client's grant for `agent` (host patterns for names:
 * the server resolves nothing) and inside what `session` announced for the
 * client (a name against a CIDR rule is left to the agent). Read at each
 * datagram, so a reload or a new ANNOUNCE applies at once. Without a
 * session (an association forwarded to the server that holds the agent,
 * §2.6) the grant only: the holder checks the announcement.
 */
export function permitter(
  choice: AgentChoice,
  client: string,
  agent: string,
  session: Session | null,
): Permit {
  return (target) => {
    const n = normalizeTarget(target);
    if (!n.ok) return null;
    const t = n.value;
    const chosen = choice.of(client, agent);
    if (!chosen.ok) return null;
    const inGrant = chosen.value.rules.some((r) =>
      (r.client === "" || r.client === client) && matchRule(r, t, "never", "udp")
    );
    if (!inGrant) return null;
    if (session === null) return t; // a peer's stream: the holder checks the rest
    const announced = rulesFor(session.rules, client);
    return announced.some((r) => matchRule(r, t, "defer", "udp")) ? t : null;
  };
}

/** What both relays share: the agent's stream, the checks and the counts. */
export interface AssocSides {
  /** The association's stream to the agent, and bytes read past OPEN_RESULT. */
  agent: Conn;
  agentRest: Uint8Array;
  permit: Permit;
  counts: UdpCounts;
  /** The router's live byte counter of the stream (admin API). */
  live: RelayCounter;
  log: Logger;
  /** Called for a malformed record (a protocol error on the stream). */
  protocolError: (e: ProtocolError) => void;
  /** May `bytes` more go `up` (toward the agent) or down now? The bandwidth limits' hook. */
  allow: (bytes: number, up: boolean) => boolean;
}

/** Records from the agent, until the stream ends; a malformed one is reported, then it ends. */
async function fromAgent(s: AssocSides, each: (addr: Target, data: Uint8Array) => void) {
  try {
    await readRecords(s.agent, s.agentRest, (r) => each(r.addr, r.data));
  } catch (e) {
    if (e instanceof ProtocolError) s.protocolError(e);
  }
}

/** Check one datagram from the client and hand it to the agent's stream, or drop it. */
function toAgent(s: AssocSides, writer: RecordWriter, target: Target, data: Uint8Array): void {
  const t = s.permit(target);
  if (t === null) return s.counts.drop("refused");
  if (!s.allow(data.length, true)) return s.counts.drop("bandwidth");
  if (!writer.send(t, data)) return s.counts.drop("backpressure");
  s.counts.up(data.length);
  s.live.up += data.length;
}

/**
 * The SOCKS5 port's association: `sock` is its relay socket, `control`
 * the TCP connection of the UDP ASSOCIATE. Datagrams are taken from the
 * control connection's IP address only, and from the first one on from
 * that address and port only (`port`, the request's DST.PORT, when not 0).
 * Ends when the control connection, the socket or the stream ends.
 */
export async function relaySocks(
  s: AssocSides,
  sock: DatagramSocket,
  control: Conn,
  port: number,
): Promise<RelayResult> {
  const clientIp = normalizeIP(control.remote.host);
  let locked: Addr | null = null;
  const waiting = new Waiting();
  const end = () => {
    sock.close();
    control.close();
    s.agent.close();
  };
  const writer = new RecordWriter(s.agent, end);
  const watch = async () => {
    // Bytes after the request mean nothing (RFC 1928 §7): read and forget them.
    while ((await control.read()) !== null);
  };
  const fromClient = async () => {
    for (let d = await sock.receive(); d !== null; d = await sock.receive()) {
      const from = normalizeIP(d.from.host);
      const ok = locked
        ? d.from.host === locked.host && d.from.port === locked.port
        : from === clientIp && (port === 0 || d.from.port === port);
      if (!ok) {
        s.counts.drop("source");
        continue;
      }
      let dg;
      try {
        dg = parseUdpDatagram(d.data);
      } catch (e) {
        if (!(e instanceof SocksError)) throw e;
        s.counts.drop(e.code === "fragment" ? "fragment" : "malformed");
        continue;
      }
      locked ??= d.from;
      toAgent(s, writer, dg.target, dg.data);
    }
  };
  const toClient = (addr: Target, data: Uint8Array) => {
    if (locked === null) return s.counts.drop("source"); // no client address yet
    if (!s.allow(data.length, false)) return s.counts.drop("bandwidth");
    let out: Uint8Array;
    try {
      out = udpDatagram(addr, data);
    } catch {
      return s.counts.drop("malformed"); // too large for a SOCKS5 header
    }
    if (!waiting.take(out.length)) return s.counts.drop("backpressure");
    s.counts.down(data.length);
    s.live.down += data.length;
    sock.send(out, locked).then(
      () => waiting.done(out.length),
      () => {
        waiting.done(out.length);
        s.counts.drop("unreachable");
      },
    );
  };
  await Promise.all([
    watch().catch(() => {}).finally(end),
    fromClient().catch(() => {}).finally(end),
    fromAgent(s, toClient).finally(end),
  ]);
  s.counts.drop("queue", sock.dropped);
  return { aToB: s.counts.bytesUp, bToA: s.counts.bytesDown };
}

/**
 * A client proxy's association (CONNECT with protocol 17): `client` carries
 * records too. Each record from it is checked as a SOCKS5 datagram is; each
 * from the agent is handed on, one at a time. Ends when either side ends.
 */
export async function relayRecords(
  s: AssocSides,
  client: Conn,
  clientRest: Uint8Array,
): Promise<RelayResult> {
  const end = () => {
    client.close();
    s.agent.close();
  };
  const toAgentWriter = new RecordWriter(s.agent, end);
  const toClientWriter = new RecordWriter(client, end);
  const fromClient = async () => {
    try {
      await readRecords(client, clientRest, (r) => toAgent(s, toAgentWriter, r.addr, r.data));
    } catch (e) {
      if (e instanceof ProtocolError) s.protocolError(e);
    }
  };
  const toClient = (addr: Target, data: Uint8Array) => {
    if (!s.allow(data.length, false)) return s.counts.drop("bandwidth");
    if (!toClientWriter.send(addr, data)) return s.counts.drop("backpressure");
    s.counts.down(data.length);
    s.live.down += data.length;
  };
  await Promise.all([
    fromClient().finally(end),
    fromAgent(s, toClient).finally(end),
  ]);
  return { aToB: s.counts.bytesUp, bToA: s.counts.bytesDown };
}
