/**
 * The server config's `tokens:` section: what the admin API may issue
 * (SPEC.md §6.4, §10.1) and what a revocation does to open streams.
 *
 * @module
 */
import { readDuration } from "../time.ts";
import type { Walker } from "./walker.ts";

export interface TokensConfig {
  /** The longest ttl a token may be issued with, seconds (`max_ttl`, default 720h: 30 days). */
  maxTtl: number;
  /** Tokens not yet expired nor revoked at once (`max_active`, default 10000). */
  maxActive: number;
  /** Whether revoking a token closes its open streams (`revoke_closes_streams`, default true). */
  revokeClosesStreams: boolean;
}

export const tokensDefaults = { maxTtl: "720h", maxActive: 10000 } as const;

/** `tokens: {max_ttl, max_active, revoke_closes_streams}`. */
export function tokensConfig(w: Walker, section: unknown): TokensConfig {
  const t = w.obj(section, "tokens");
  w.known(t, "tokens", ["max_ttl", "max_active", "revoke_closes_streams"]);
  // Longer than Walker.duration's 24 h: tokens for machines may live for weeks.
  const v = t.max_ttl ?? tokensDefaults.maxTtl;
  const d = readDuration(typeof v === "number" ? v : w.str(v, "tokens.max_ttl"));
  if (!d.ok) w.fail("tokens.max_ttl", d.error);
  const maxTtl = Math.floor(d.value / 1000);
  if (maxTtl < 1 || maxTtl > 366 * 86400) w.fail("tokens.max_ttl", "must be between 1s and 8784h");
  return {
    maxTtl,
    maxActive: w.int(t.max_active, "tokens.max_active", tokensDefaults.maxActive, 1, 1_000_000),
    revokeClosesStreams: t.revoke_closes_streams === undefined
      ? true
      : w.bool(t.revoke_closes_streams, "tokens.revoke_closes_streams"),
  };
}
