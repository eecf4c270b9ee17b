/**
 * The limits a CONNECT meets before anything is dialed (SPEC.md §10.1):
 * `streams_per_client` and `streams_per_agent` (open streams; reply 0x01),
 * then `new_streams_per_client` (CONNECTs admitted per client per second,
 * with a burst; reply 0x02, not allowed, and reason `rate_limited`, §9.7).
 * Each one that triggers is logged and counted (`limit=…`). The rate is a
 * token bucket per client that opened a stream lately; full buckets are
 * forgotten (a full one and none are the same), so memory follows the
 * clients that are busy now.
 *
 * @module
 */
import { Reason, Status } from "../messages.ts";
import type { Err } from "../result.ts";
import type { ServerContext } from "./context.ts";
import { refuse, type Refused } from "./replica_open.ts";

/** Past this many buckets, full ones are dropped (at each CONNECT that adds one). */
const SWEEP_AT = 1024;

export class StreamLimits {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly ctx: ServerContext) {}

  /**
   * The refusal of a CONNECT of `client` through `agent`, which have
   * `clientStreams` and `agentStreams` open, or null: admitted (and counted
   * against the new-stream rate).
   */
  check(
    client: string,
    agent: string,
    clientStreams: number,
    agentStreams: number,
  ): Err<Refused> | null {
    const lim = this.ctx.config().limits;
    return this.#open("client", client, clientStreams, lim.streamsPerClient) ??
      this.#open("agent", agent, agentStreams, lim.streamsPerAgent) ??
      this.#rate(client);
  }

  /** `limits.streams_per_<kind>`: `who` has `open` streams of at most `max`. */
  #open(kind: "client" | "agent", who: string, open: number, max: number): Err<Refused> | null {
    if (open < max) return null;
    this.ctx.admission.limitHit(`streams_per_${kind}`, { [kind]: who, max });
    return refuse(
      Status.general_failure,
      kind === "client" ? Reason.client_streams : Reason.agent_streams,
      `${kind} has ${max} streams open (limits.streams_per_${kind})`,
    );
  }

  /** `limits.new_streams_per_client`: take one of `client`'s tokens, or refuse. */
  #rate(client: string, now = Date.now()): Err<Refused> | null {
    const lim = this.ctx.config().limits.newStreamsPerClient;
    if (!lim) {
      this.#buckets.clear();
      return null;
    }
    let b = this.#buckets.get(client);
    if (!b) {
      if (this.#buckets.size >= SWEEP_AT) this.#sweep(now, lim.perSecond, lim.burst);
      b = { tokens: lim.burst, at: now };
      this.#buckets.set(client, b);
    }
    b.tokens = Math.min(lim.burst, b.tokens + ((now - b.at) * lim.perSecond) / 1000);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return null;
    }
    this.ctx.admission.limitHit("new_streams_per_client", {
      client,
      per_second: lim.perSecond,
      burst: lim.burst,
    });
    return refuse(
      Status.not_allowed,
      Reason.rate_limited,
      `client opened more than ${lim.perSecond} streams per second (burst ${lim.burst}): limits.new_streams_per_client`,
    );
  }

  #sweep(now: number, perSecond: number, burst: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * perSecond) / 1000 >= burst) this.#buckets.delete(k);
    }
  }
}
