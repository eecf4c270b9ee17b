/**
 * The router (SPEC.md §7.2): decides a CONNECT (target form, grant, limits,
 * the agent's announcement), takes a pool connection of the agent, sends OPEN
 * and reads OPEN_RESULT; then relays and counts the stream. Nothing is
 * dialed unless every check passes.
 *
 * @module
 */
import { targetText } from "../addr.ts";
import { normalizeTarget } from "../host.ts";
import type { Logger } from "../log.ts";
import { type Message, Status, type Target } from "../messages.ts";
import type { Conn } from "../net.ts";
import { allowed, rulesFor } from "../policy.ts";
import { relay } from "../relay.ts";
import { deadline } from "../time.ts";
import type { AgentPort, PoolConn, Session } from "./agent_port.ts";
import type { ServerContext } from "./context.ts";
import { TimeoutError } from "../errors.ts";

export interface OpenRequest {
  client: string;
  clientId: number;
  /** Agent named by the client, or "" for the client's only granted agent. */
  agent: string;
  /** As the client sent it; normalized here before any check. */
  target: Target;
  log: Logger;
}

/** An opened stream, or why not (a SPEC.md §9.3 status and a reason for the log). */
export type OpenResult =
  | {
    ok: true;
    conn: Conn;
    rest: Uint8Array;
    bound: Target;
    streamId: number;
    agent: string;
    /** The target as matched and opened (normalized). */
    target: Target;
  }
  | { ok: false; status: number; reason: string };

const refuse = (status: number, reason: string): OpenResult => ({ ok: false, status, reason });

/** Attempts on other pool connections when the one taken turns out dead (SPEC.md §7.4). */
const ATTEMPTS = 3;

export class Router {
  #nextStream = 1;
  readonly #clientIds = new Map<string, number>();
  readonly #clientStreams = new Map<string, number>();
  readonly #agentStreams = new Map<string, number>();
  /** Streams being relayed. */
  active = 0;

  constructor(readonly ctx: ServerContext, readonly agents: AgentPort) {}

  /** The stable id of client `name` (SPEC.md §5.13). */
  clientId(name: string): number {
    let id = this.#clientIds.get(name);
    if (id === undefined) this.#clientIds.set(name, id = this.#clientIds.size + 1);
    return id;
  }

  /** Decide and open a stream. */
  async open(req: OpenRequest): Promise<OpenResult> {
    const n = normalizeTarget(req.target);
    if (!n.ok) return refuse(Status.not_allowed, n.reason);
    const target = n.target;
    const c = this.ctx.config();
    const grants = c.grants.filter((g) => g.client === req.client);
    let agent = req.agent;
    if (agent === "") {
      const names = [...new Set(grants.flatMap((g) => g.agents))];
      if (names.length !== 1) {
        return refuse(
          Status.not_allowed,
          names.length === 0
            ? "client has no grant"
            : `client is granted ${names.length} agents; name one as ${req.client}@agent`,
        );
      }
      agent = names[0]!;
    }
    const granted = grants.filter((g) => g.agents.includes(agent));
    if (granted.length === 0) {
      return refuse(Status.not_allowed, `client is not granted agent ${agent}`);
    }
    if (!allowed(granted.flatMap((g) => g.rules), req.client, target, "never")) {
      return refuse(Status.not_allowed, "target outside the grant");
    }
    const lim = c.limits;
    if ((this.#clientStreams.get(req.client) ?? 0) >= lim.streamsPerClient) {
      this.ctx.admission.limitHit("streams_per_client", {
        client: req.client,
        max: lim.streamsPerClient,
      });
      return refuse(
        Status.general_failure,
        `client has ${lim.streamsPerClient} streams open (limits.streams_per_client)`,
      );
    }
    if ((this.#agentStreams.get(agent) ?? 0) >= lim.streamsPerAgent) {
      this.ctx.admission.limitHit("streams_per_agent", { agent, max: lim.streamsPerAgent });
      return refuse(
        Status.general_failure,
        `agent has ${lim.streamsPerAgent} streams open (limits.streams_per_agent)`,
      );
    }
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const s = this.agents.sessions.get(agent);
      if (!s) return refuse(Status.host_unreachable, `agent ${agent} is offline`);
      if (!allowed(rulesFor(s.rules, req.client), req.client, target, "defer")) {
        return refuse(Status.not_allowed, "target outside what the agent announced");
      }
      const pc = await s.take();
      try {
        const r = await this.#openOn(s, pc, req, target, agent);
        if (r) return r;
      } finally {
        s.release();
      }
    }
    return refuse(Status.general_failure, "pool connections kept failing");
  }

  /** Send OPEN on `pc` and read its result; null means "that pool connection was dead, try another". */
  async #openOn(
    s: Session,
    pc: PoolConn | null,
    req: OpenRequest,
    target: Target,
    agent: string,
  ): Promise<OpenResult | null> {
    const c = this.ctx.config();
    if (!pc) {
      return refuse(
        Status.host_unreachable,
        s.closed ? `agent ${agent} went offline` : `no pool connection within ${c.poolWaitMs} ms`,
      );
    }
    const streamId = this.#nextStream;
    this.#nextStream = this.#nextStream >= 0xffffffff ? 1 : this.#nextStream + 1;
    let res: Message | null;
    try {
      await pc.wire.send({
        type: "OPEN",
        streamId,
        clientId: req.clientId,
        client: req.client,
        target,
      });
      res = await deadline(pc.first, c.openTimeoutMs, "OPEN_RESULT");
    } catch (e) {
      pc.close();
      if (e instanceof TimeoutError) {
        return refuse(Status.ttl_expired, "agent did not answer OPEN in time");
      }
      return null;
    }
    if (res === null) {
      pc.close(); // closed under us: try another pool connection
      return null;
    }
    if (res.type !== "OPEN_RESULT" || res.streamId !== streamId) {
      s.hooks.log.warn("bad answer to OPEN", { got: res.type });
      void pc.wire.fail("unexpected_message", `expected OPEN_RESULT for stream ${streamId}`);
      return refuse(Status.general_failure, "agent answered OPEN wrongly");
    }
    if (res.status !== Status.succeeded) {
      pc.close();
      return refuse(res.status, "agent could not open the target");
    }
    return {
      ok: true,
      conn: pc.wire.conn,
      rest: pc.wire.rest(),
      bound: res.bound,
      streamId,
      agent,
      target,
    };
  }

  /** Relay an opened stream to its end; log and count it. Never throws. */
  async stream(
    client: string,
    clientConn: Conn,
    clientRest: Uint8Array,
    r: Extract<OpenResult, { ok: true }>,
    log: Logger,
  ): Promise<void> {
    bump(this.#clientStreams, client, 1);
    bump(this.#agentStreams, r.agent, 1);
    this.active++;
    const m = this.ctx.metrics;
    m.inc("burrow_streams_total", "Streams opened", { agent: r.agent });
    const t0 = Date.now();
    try {
      const { aToB, bToA } = await relay(clientConn, r.conn, clientRest, r.rest);
      m.inc("burrow_bytes_total", "Bytes relayed", { direction: "up" }, aToB);
      m.inc("burrow_bytes_total", "Bytes relayed", { direction: "down" }, bToA);
      log.debug("stream closed", { stream: r.streamId, up: aToB, down: bToA, ms: Date.now() - t0 });
    } finally {
      this.active--;
      bump(this.#clientStreams, client, -1);
      bump(this.#agentStreams, r.agent, -1);
    }
  }

  /** Log and count a refused CONNECT. */
  refused(
    log: Logger,
    port: string,
    client: string,
    target: Target | null,
    status: number,
    reason: string,
  ): void {
    this.ctx.metrics.inc("burrow_connects_refused_total", "CONNECTs refused", {
      port,
      status: String(status),
    });
    log.warn("connect refused", {
      port,
      client,
      target: target ? targetText(target) : undefined,
      status,
      reason,
    });
  }
}

function bump(m: Map<string, number>, k: string, d: number): void {
  const n = (m.get(k) ?? 0) + d;
  if (n === 0) m.delete(k);
  else m.set(k, n);
}
