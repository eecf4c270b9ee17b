/**
 * The latest refused CONNECTs, kept for the dashboard and the admin API
 * (`refusals` in the snapshot): what an operator asks first when a client
 * says "it does not work". A fixed number are kept; older ones are in the
 * audit log (`connect refused`).
 *
 * @module
 */

/** A refused CONNECT. */
export interface Refusal {
  /** When (ms since the epoch). */
  readonly at: number;
  readonly port: string;
  readonly client: string;
  /** The agent the client named or was granted, "" if none was found. */
  readonly agent: string;
  /** `host:port`, "" when the request had none (a refused handshake). */
  readonly target: string;
  /** The SOCKS5 reply status (SPEC.md §9.3). */
  readonly status: number;
  readonly reason: string;
}

/** Refusals kept. */
export const RECENT_REFUSALS = 20;

/** A ring of the latest {@link RECENT_REFUSALS} refusals. */
export class RecentRefusals {
  readonly #ring: Refusal[] = [];

  add(r: Refusal): void {
    this.#ring.push(r);
    if (this.#ring.length > RECENT_REFUSALS) this.#ring.shift();
  }

  /** Oldest first. */
  list(): readonly Refusal[] {
    return this.#ring;
  }
}
