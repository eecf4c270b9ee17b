/**
 * The server config's `limits:` as the server reads them (SPEC.md §10.1).
 *
 * @module
 */
import type { LimitsOfRate } from "./bandwidth.ts";

/** Limits against abuse; each one that triggers is logged by name and counted. */
export interface Limits extends LimitsOfRate {
  /** Connections still in their handshake, per port. */
  pendingHandshakes: number;
  /** Connections still in their handshake, per port and source address (IPv6: per /64). */
  pendingHandshakesPerSource: number;
  /** Streams open at once per client. */
  streamsPerClient: number;
  /** Streams open at once per agent. */
  streamsPerAgent: number;
  /** Failed authentications per port and source address (IPv6: /64) per minute before it is blocked there. */
  authFailuresPerMinute: number;
  /** How long a source address stays blocked. */
  authBlockMs: number;
  /**
   * Failed authentications per port per minute that the IPv6 prefixes of
   * {@link ipv6Shares} take their shares of (SPEC.md §10.1).
   */
  authFailureBudget: number;
  /**
   * IPv6 prefixes wider than a /64 and the share of a port's pending
   * handshakes and of its {@link authFailureBudget} each may hold, widest last.
   */
  ipv6Shares: { prefix: number; share: number }[];
}
