/**
 * Bandwidth and stream-rate limits in the server config (README "Bandwidth
 * limits", SPEC.md §10.1): `bandwidth: {up, down}` on a client or agent
 * entry, its defaults `limits.client_bandwidth` and `limits.agent_bandwidth`,
 * and `limits.new_streams_per_client`.
 *
 * @module
 */
import type { Obj, Walker } from "./walker.ts";

/**
 * Bytes per second in each direction: `up` toward the target, `down` toward
 * the client. A number is a limit, null is none (`off`); on a client or
 * agent entry an absent direction takes the default of `limits`.
 */
export interface BandwidthLimit {
  up?: number | null;
  down?: number | null;
}

/** New streams (CONNECTs admitted) per second per client, with a burst. */
export interface StreamRate {
  perSecond: number;
  burst: number;
}

/** The smallest limit: below it a 64 KiB chunk would hold a stream back for over a minute. */
export const MIN_RATE = 1024;
/** The largest: beyond any link. */
export const MAX_RATE = 2 ** 40;

/** `bandwidth: {up, down}` (each a rate such as `10MiB/s`, or `off`) at `path`. */
export function bandwidthConfig(w: Walker, v: unknown, path: string): BandwidthLimit {
  const o = w.obj(v, path);
  w.known(o, path, ["up", "down"]);
  const out: BandwidthLimit = {};
  for (const dir of ["up", "down"] as const) {
    if (o[dir] !== undefined) out[dir] = w.rate(o[dir], `${path}.${dir}`, MIN_RATE, MAX_RATE);
  }
  return out;
}

/** `limits.new_streams_per_client: {per_second, burst}`; absent or `off`: null (no limit). */
export function streamRateConfig(w: Walker, v: unknown, path: string): StreamRate | null {
  if (v === undefined || v === null || v === "off" || v === false) return null;
  const o = w.obj(v, path);
  w.known(o, path, ["per_second", "burst"]);
  const r = o.per_second;
  if (typeof r !== "number" || !Number.isFinite(r) || r < 0.001 || r > 1_000_000) {
    w.fail(`${path}.per_second`, "must be a number in 0.001..1000000");
  }
  const burst = w.int(o.burst, `${path}.burst`, Math.max(1, Math.ceil(r)), 1, 1_000_000);
  return { perSecond: r, burst };
}

/** The rate limits of `limits:` (config/server.ts's Limits has them). */
export interface LimitsOfRate {
  /** Bandwidth of each client's (agent's) streams together, unless its entry says (null: none). */
  clientBandwidth: BandwidthLimit;
  agentBandwidth: BandwidthLimit;
  /** CONNECTs admitted per client per second, with a burst; null: no limit. */
  newStreamsPerClient: StreamRate | null;
}

/** `limits.client_bandwidth`, `limits.agent_bandwidth`, `limits.new_streams_per_client` of `l`. */
export function rateLimits(w: Walker, l: Obj): LimitsOfRate {
  return {
    clientBandwidth: bandwidthConfig(w, l.client_bandwidth, "limits.client_bandwidth"),
    agentBandwidth: bandwidthConfig(w, l.agent_bandwidth, "limits.agent_bandwidth"),
    newStreamsPerClient: streamRateConfig(
      w,
      l.new_streams_per_client,
      "limits.new_streams_per_client",
    ),
  };
}
