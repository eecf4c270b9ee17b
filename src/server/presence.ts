/**
 * Presence in memory (store.ts {@link Presence}): this server's agent
 * sessions, and what the store last said of the other live servers and
 * theirs. The embedded store has only this server; the PostgreSQL store
 * (store_presence.ts) writes this server's changes and fills in the others.
 *
 * @module
 */
import { randomBytes, toHex } from "../auth.ts";
import type { AgentPlace, LiveServer, Presence } from "./store.ts";

/** One agent session: its agent, and since when (ms since the epoch). */
export interface PresenceSession {
  agent: string;
  since: number;
}

/** What this server changed: its sessions, or its address. */
export type LocalChange =
  | { what: "up"; session: string; agent: string; since: number }
  | { what: "down"; agent: string; session: string }
  | { what: "advertise" };

/** Another live server as the store last said. */
export interface Remote {
  advertise: string | null;
  /** Session key → its agent and start. */
  sessions: Map<string, PresenceSession>;
}

/** Presence held in memory; see the module doc. */
export class PresenceMap implements Presence {
  #advertise: string | null = null;
  /** This server's sessions: session key → its agent and start. */
  readonly local = new Map<string, PresenceSession>();
  readonly #remote = new Map<string, Remote>();
  #agents: Map<string, AgentPlace[]> | null = null;
  #servers: LiveServer[] | null = null;
  readonly #listeners = new Set<() => void>();
  #pending = false;
  /** Told of each change this server makes (the PostgreSQL store writes them). */
  onLocal: (c: LocalChange) => void = () => {};

  constructor(readonly serverId: string = toHex(randomBytes(8))) {}

  /** This server's peer address. */
  get address(): string | null {
    return this.#advertise;
  }

  servers(): readonly LiveServer[] {
    if (this.#servers) return this.#servers;
    const all = [{ id: this.serverId, advertise: this.#advertise }];
    for (const [id, r] of this.#remote) all.push({ id, advertise: r.advertise });
    return this.#servers = all.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  agents(): ReadonlyMap<string, readonly AgentPlace[]> {
    if (this.#agents) return this.#agents;
    const m = new Map<string, AgentPlace[]>();
    const add = (
      server: string,
      advertise: string | null,
      sessions: Map<string, PresenceSession>,
    ) => {
      for (const [session, { agent, since }] of sessions) {
        let list = m.get(agent);
        if (!list) m.set(agent, list = []);
        list.push({ server, advertise, session, since });
      }
    };
    add(this.serverId, this.#advertise, this.local);
    const ids = [...this.#remote.keys()].sort();
    for (const id of ids) add(id, this.#remote.get(id)!.advertise, this.#remote.get(id)!.sessions);
    return this.#agents = m;
  }

  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  advertise(addr: string | null): void {
    if (addr === this.#advertise) return;
    this.#advertise = addr;
    this.onLocal({ what: "advertise" });
    this.changed();
  }

  up(agent: string, session: string): void {
    if (this.local.get(session)?.agent === agent) return;
    const since = Date.now();
    this.local.set(session, { agent, since });
    this.onLocal({ what: "up", agent, session, since });
    this.changed();
  }

  down(agent: string, session: string): void {
    if (!this.local.delete(session)) return;
    this.onLocal({ what: "down", agent, session });
    this.changed();
  }

  /** The ids of the other servers known live. */
  remotes(): string[] {
    return [...this.#remote.keys()];
  }

  /** Another live server, with its sessions (absent: keep those known). */
  setRemote(
    id: string,
    advertise: string | null,
    sessions?: Map<string, PresenceSession>,
  ): void {
    if (id === this.serverId) return;
    const r = this.#remote.get(id);
    if (r && r.advertise === advertise && !sessions) return;
    this.#remote.set(id, { advertise, sessions: sessions ?? r?.sessions ?? new Map() });
    this.changed();
  }

  /** A server whose lease is gone. */
  dropRemote(id: string): void {
    if (this.#remote.delete(id)) this.changed();
  }

  /** Replace everything known of the other servers (a full re-read). */
  replaceRemotes(all: Map<string, Remote>): void {
    this.#remote.clear();
    for (const [id, r] of all) if (id !== this.serverId) this.#remote.set(id, r);
    this.changed();
  }

  /** Drop the caches; tell the listeners once, after this turn's changes. */
  changed(): void {
    this.#agents = null;
    this.#servers = null;
    if (this.#pending) return;
    this.#pending = true;
    queueMicrotask(() => {
      this.#pending = false;
      for (const fn of [...this.#listeners]) {
        try {
          fn();
        } catch {
          // a listener's failure is its own
        }
      }
    });
  }
}
