/**
 * Where a server learns about the rest of its fleet (SPEC.md §2.6): which
 * servers hold a session of an agent, and where each takes peer links. The
 * state store's presence (leases and agent-session rows) implements it;
 * tests may give a directory of their own.
 *
 * @module
 */
import type { Addr } from "../net.ts";

/** A server of the fleet as the others see it. */
export interface PeerAddress {
  /** Its name in the fleet (the store's server id). */
  name: string;
  /** Its `peer.advertise`. */
  advertise: Addr;
}

/** One agent session somewhere in the fleet (the fleet view). */
export interface FleetAgent {
  agent: string;
  /** The server holding it. */
  server: string;
  /** The agent's instance id (hex), if known. */
  instance: string | null;
  /** The session's key (hex), if known. */
  session?: string;
  /** When the session started, ms since the epoch, if known. */
  since?: number;
}

export interface PeerDirectory {
  /** This server's name in the fleet (the store's server id). */
  readonly self: string;
  /**
   * The other live servers with a session of `agent`, the one to try first
   * first (its lease freshest); never this server.
   */
  holders(agent: string): PeerAddress[];
  /** Every other live server of the fleet. */
  peers(): PeerAddress[];
  /** Every agent session of the fleet, this server's included. */
  agents(): FleetAgent[];
}
