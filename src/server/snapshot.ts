/**
 * The server's read model for the admin API and the dashboard: what is
 * connected and what flows, as plain JSON-ready objects with stable
 * snake_case field names (documented in README.md, "Admin API"). Built from
 * the server's public state only; nothing here changes it. An agent's
 * replicas (SPEC.md §2.1) are one entry each, with their own streams and
 * bytes.
 *
 * @module
 */
import type { UdpFront } from "./udp_front.ts";
import type { TokenView } from "./tokens.ts";
import { toHex } from "../auth.ts";
import { formatRule } from "../policy.ts";
import type { AgentPort } from "./agent_port.ts";
import type { Session } from "./carrier.ts";
import type { LiveStream, Router } from "./router.ts";
import type { ServerConfig } from "../config/mod.ts";
import { limitOf } from "./bandwidth.ts";

export interface ServerView {
  version: string;
  runtime: string;
  runtime_version: string;
  protocol: { min: number; max: number };
  /** ISO 8601. */
  started_at: string;
  ready: boolean;
}

export interface AgentView {
  name: string;
  /** The agent id the server assigned (WELCOME). */
  id: number;
  /** First 8 hex digits of the session id (as in the logs). */
  session: string;
  /** The agent process's instance id (hex), null until its INSTANCE came. */
  instance: string | null;
  /** Negotiated protocol version. */
  protocol: number;
  /** As the agent sent it in AGENT_HELLO. */
  software: string;
  /** `host:port` of the control connection. */
  remote: string;
  /** ISO 8601. */
  connected_since: string;
  /** The rules the agent announced, as rule texts. */
  rules: string[];
  pool: { idle: number; target: number; waiting: number; outstanding: number };
  /** Open streams through this replica (session). */
  streams: number;
  /** Bytes through this replica since its session began. */
  bytes_up: number;
  bytes_down: number;
}

/**
 * In a fleet's view (README "A fleet of servers"): an agent session of a
 * server that did not answer, as the store's presence has it (its lease
 * still live). No live counts: nobody asked its server.
 */
export interface PresenceAgentView {
  name: string;
  /** First 8 hex digits of the session id (as in the logs). */
  session: string;
  /** The server holding it, which did not answer. */
  server: string;
  /** ISO 8601, as its server wrote it to the store. */
  connected_since: string;
  source: "presence";
  reachable: false;
}

export interface ClientView {
  name: string;
  /** The client id (SPEC.md §5.13), null until the client first connects. */
  id: number | null;
  /** False for a client removed from the config that still has live streams. */
  configured: boolean;
  streams: number;
  /** Bytes of its finished and live streams since the server started. */
  bytes_up: number;
  bytes_down: number;
  /** Its current rate each way, bytes/s, smoothed over a few seconds (bandwidth.ts). */
  rate_up: number;
  rate_down: number;
  /** Its bandwidth limit each way in force, bytes/s; null: none. */
  limit_up: number | null;
  limit_down: number | null;
}

export interface StreamView {
  id: number;
  client: string;
  client_id: number;
  agent: string;
  target: string;
  /** `socks` or `clients`: the port the client came in on. */
  port: string;
  /** ISO 8601. */
  since: string;
  bytes_up: number;
  bytes_down: number;
  /** The id of the issued token it was opened with (SPEC.md §6.4), if any. */
  token?: string;
}

/** A refused CONNECT (the latest few: refusals.ts). */
export interface RefusalView {
  /** ISO 8601. */
  at: string;
  port: string;
  client: string;
  agent: string;
  target: string;
  /** The SOCKS5 reply status (SPEC.md §9.3). */
  status: number;
  reason: string;
}

export interface Snapshot {
  server: ServerView;
  /** One entry per live session: an agent's replicas are entries with the same name. */
  agents: AgentView[];
  clients: ClientView[];
  streams: StreamView[];
  /** The latest refused CONNECTs, newest first. */
  refusals: RefusalView[];
  /** Issued tokens not expired nor revoked, oldest first. */
  tokens?: TokenView[];
  /** Open UDP associations (SPEC.md §2.5), oldest first. */
  associations?: AssociationView[];
}

/** A snapshot whose agents, in a fleet, include those of servers that did not answer. */
export interface ViewSnapshot extends Omit<Snapshot, "agents"> {
  agents: Array<AgentView | PresenceAgentView>;
}

/** One open UDP association: its stream, relay socket and counts. */
export interface AssociationView {
  stream: number;
  client: string;
  agent: string;
  port: string;
  /** The SOCKS5 relay socket, or "" for a client proxy's association. */
  relay: string;
  since: string;
  datagrams_up: number;
  datagrams_down: number;
  bytes_up: number;
  bytes_down: number;
  /** Datagrams dropped, all reasons. */
  dropped: number;
}

export function associationViews(udp: UdpFront): AssociationView[] {
  return [...udp.live.values()].sort((a, b) => a.since - b.since || a.stream - b.stream).map((
    a,
  ) => ({
    stream: a.stream,
    client: a.client,
    agent: a.agent,
    port: a.port,
    relay: a.relay,
    since: iso(a.since),
    datagrams_up: a.counts.datagramsUp,
    datagrams_down: a.counts.datagramsDown,
    bytes_up: a.counts.bytesUp,
    bytes_down: a.counts.bytesDown,
    dropped: a.counts.droppedTotal,
  }));
}

const iso = (ms: number) => new Date(ms).toISOString();

export function agentViews(agents: AgentPort, router: Router): AgentView[] {
  // Per session: its finished streams' bytes plus its live streams.
  const live = new Map<Session | null, { streams: number; up: number; down: number }>();
  for (const t of router.streams.values()) {
    const l = live.get(t.session) ?? { streams: 0, up: 0, down: 0 };
    live.set(t.session, {
      streams: l.streams + 1,
      up: l.up + t.bytes.up,
      down: l.down + t.bytes.down,
    });
  }
  return agents.all().map((s) => {
    const info = agents.info(s);
    const done = router.finishedBytes(s);
    const l = live.get(s) ?? { streams: 0, up: 0, down: 0 };
    return {
      name: s.name,
      id: s.who.agentId,
      session: s.key.slice(0, 8),
      instance: s.instance ? toHex(s.instance) : null,
      protocol: s.who.version,
      software: info?.software ?? "",
      remote: info?.remote ?? "",
      connected_since: iso(info?.since ?? 0),
      rules: s.rules.map(formatRule),
      pool: { idle: s.idle, target: s.target, waiting: s.waiting, outstanding: s.outstanding },
      streams: l.streams,
      bytes_up: done.up + l.up,
      bytes_down: done.down + l.down,
    };
  }).sort((a, b) =>
    a.name.localeCompare(b.name) || a.connected_since.localeCompare(b.connected_since)
  );
}

export function refusalViews(router: Router): RefusalView[] {
  return router.refusals.list().map((r) => ({ ...r, at: iso(r.at) })).reverse();
}

export function clientViews(config: ServerConfig, router: Router): ClientView[] {
  const names = new Set(config.clients.keys());
  for (const s of router.streams.values()) names.add(s.client);
  const byClient = router.bytesBy("client");
  const rates = router.bandwidth.rates("client");
  return [...names].sort().map((name) => {
    const bytes = byClient.get(name) ?? { up: 0, down: 0 };
    const limit = limitOf(config, "client", name);
    return {
      name,
      id: router.knownClientId(name) ?? null,
      configured: config.clients.has(name),
      streams: router.clientStreams(name),
      bytes_up: bytes.up,
      bytes_down: bytes.down,
      rate_up: rates.get(name)?.up ?? 0,
      rate_down: rates.get(name)?.down ?? 0,
      limit_up: limit.up ?? null,
      limit_down: limit.down ?? null,
    };
  });
}

export function streamView(s: LiveStream): StreamView {
  return {
    id: s.id,
    client: s.client,
    client_id: s.clientId,
    agent: s.agent,
    target: s.target,
    port: s.port,
    since: iso(s.since),
    bytes_up: s.bytes.up,
    bytes_down: s.bytes.down,
  };
}

export function streamViews(router: Router): StreamView[] {
  return [...router.streams.values()].sort((a, b) => a.since - b.since || a.id - b.id).map(
    streamView,
  );
}
