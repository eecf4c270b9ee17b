/**
 * `limits.new_streams_per_client` (SPEC.md §10.1): CONNECTs admitted per
 * client per second, with a burst; one over it is refused with status 0x02
 * (not allowed) and reason `rate_limited` (§9.7), logged and counted as
 * `limit=new_streams_per_client`. A token bucket per client that opened a
 * stream lately; full buckets are forgotten (a full one and none are the
 * same), so memory follows the clients that are busy now.
 *
 * @module
 */
import { Reason, Status } from "../messages.ts";
import type { ServerContext } from "./context.ts";
import { refuse, type Refused } from "./replica_open.ts";

/** Past this many buckets, full ones are dropped (at each CONNECT that adds one). */
const SWEEP_AT = 1024;

export class NewStreams {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly ctx: ServerContext) {}

  /** Admit one more CONNECT of `client` now, or the refusal it gets. */
  check(client: string, now = Date.now()): Refused | null {
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
    ) as Refused;
  }

  #sweep(now: number, perSecond: number, burst: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * perSecond) / 1000 >= burst) this.#buckets.delete(k);
    }
  }
}
