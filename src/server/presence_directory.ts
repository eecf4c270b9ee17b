/**
 * The peer directory (peer_directory.ts) read from the store's presence
 * (store.ts {@link Presence}): the live servers with a peer address, and
 * where each agent has sessions. A server whose lease expired (killed, cut
 * off) is gone from it, its sessions with it.
 *
 * @module
 */
import { readAddr } from "../config/walker.ts";
import type { FleetAgent, PeerAddress, PeerDirectory } from "./peer_directory.ts";
import type { Presence } from "./store.ts";

export class PresenceDirectory implements PeerDirectory {
  constructor(readonly presence: Presence) {}

  get self(): string {
    return this.presence.serverId;
  }

  holders(agent: string): PeerAddress[] {
    const out: PeerAddress[] = [];
    for (const p of this.presence.agents().get(agent) ?? []) {
      if (p.server === this.self || out.some((x) => x.name === p.server)) continue;
      const a = peerAddress(p.server, p.advertise);
      if (a) out.push(a);
    }
    return out;
  }

  peers(): PeerAddress[] {
    return this.presence.servers().flatMap((s) => {
      const a = s.id === this.self ? null : peerAddress(s.id, s.advertise);
      return a ? [a] : [];
    });
  }

  agents(): FleetAgent[] {
    return [...this.presence.agents()].flatMap(([agent, places]) =>
      places.map((p) => ({
        agent,
        server: p.server,
        instance: null,
        session: p.session,
        since: p.since,
      }))
    );
  }
}

/** A server with a usable `host:port`; null without one. */
function peerAddress(name: string, advertise: string | null): PeerAddress | null {
  const r = advertise === null ? null : readAddr(advertise);
  return r?.ok ? { name, advertise: r.value } : null;
}
