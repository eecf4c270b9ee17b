/**
 * This server as one of a fleet (SPEC.md §2.6, README "A fleet of
 * servers"): its peer port (peer_port.ts), its links to the others
 * (peer_links.ts), and the fleet view of the admin API and the dashboard.
 *
 * The fleet view asks the other live servers (from the directory) over the
 * peer links on each request, for what they hold now: their agents and
 * streams, each entry marked with its server's name. A server that does not
 * answer within 5 s is listed in `fleet.unreachable`, and its agents as the
 * store's presence has them (`source: "presence"`, `reachable: false`, no
 * live counts) until its lease expires. An operator's action
 * (disconnect an agent or replica, close a stream) is done here when this
 * server holds it, else asked of the others, and done where it is held.
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { ConfigError, ListenError } from "../errors.ts";
import type { Addr, Listener, Net, TlsServerOptions } from "../net.ts";
import type { ServerContext } from "./context.ts";
import type { Logger } from "../log.ts";
import type { PeerDirectory } from "./peer_directory.ts";
import { PresenceDirectory } from "./presence_directory.ts";
import type { Store } from "./store.ts";
import { peerKey } from "./peer_handshake.ts";
import { FleetOp, PeerLinks } from "./peer_links.ts";
import { type FleetHost, PeerPort } from "./peer_port.ts";
import type { Router } from "./router.ts";
import type { AgentView, PresenceAgentView, Snapshot, ViewSnapshot } from "./snapshot.ts";

/** What the fleet needs of its server. */
export interface FleetServer extends FleetHost {
  readonly store: Store;
  readonly log: Logger;
  readonly net: Net;
  readonly tls?: TlsServerOptions | undefined;
  readonly router: Router;
  readonly agents: { readonly ctx: ServerContext };
  snapshot(): Snapshot;
}

/** What a server is given for its fleet (ServerInfo). */
export interface FleetInfo {
  /** Where the other servers of the fleet are; default: the store's presence. Tests give one. */
  directory?: PeerDirectory;
  /** How `peer.token_file` and `peer.ca` are read (the CLI's host); absent: no fleet. */
  readTextFile?: (path: string) => Promise<string>;
}

/** The fleet view: each server's part, marked with its name. */
export interface FleetSnapshot extends ViewSnapshot {
  fleet: { self: string; servers: string[]; unreachable: string[] };
}

export class Fleet {
  readonly #listener: Listener;

  private constructor(
    readonly self: string,
    readonly links: PeerLinks,
    readonly port: PeerPort,
    listener: Listener,
    readonly directory: PeerDirectory,
  ) {
    this.#listener = listener;
  }

  /** Where the peer port listens. */
  get addr(): Addr {
    return this.#listener.addr;
  }

  /**
   * With `peer:` (and a way to read its files): start the fleet (below),
   * find the others in `info.directory` or else the store's presence, and
   * advertise `peer.advertise` there. Null without `peer:`.
   */
  static async forServer(
    server: FleetServer,
    info: FleetInfo,
  ): Promise<Fleet | null> {
    const peer = server.agents.ctx.config().peer;
    if (!peer || !info.readTextFile) return null;
    const dir = info.directory ?? new PresenceDirectory(server.store.presence);
    const fleet = await Fleet.start(server, dir, info.readTextFile);
    // Port 0 (tests): the port the peer port got.
    const port = peer.advertise.port || fleet.addr.port;
    server.store.presence.advertise(fmt({ host: peer.advertise.host, port }));
    if (server.store.kind === "file") {
      server.log.warn("peer: without store: {postgres} this server finds no other servers");
    }
    return fleet;
  }

  /**
   * Read the fleet secret (and CA), listen on `peer.listen` and make this
   * server forward CONNECTs for agents it does not hold.
   */
  static async start(
    server: FleetServer,
    directory: PeerDirectory,
    readTextFile: (path: string) => Promise<string>,
  ): Promise<Fleet> {
    const ctx = server.agents.ctx;
    const peer = ctx.config().peer!;
    if (!server.tls) {
      throw new ConfigError(
        "peer: needs TLS (peer links are TLS pinned to the fleet's certificates)",
      );
    }
    const read = async (path: string, key: string) => {
      try {
        return await readTextFile(path);
      } catch (e) {
        throw new ConfigError(`peer.${key} ${path}: cannot read: ${(e as Error).message}`);
      }
    };
    const secret = (await read(peer.tokenFile, "token_file")).trim();
    if (secret.length < 16) {
      throw new ConfigError(
        `peer.token_file ${peer.tokenFile}: the fleet secret needs 16 characters or more`,
      );
    }
    const key = peerKey(secret);
    const caPem = peer.ca === null ? null : await read(peer.ca, "ca");
    const links = new PeerLinks({ net: server.net, ctx, key, caPem, directory });
    const port = new PeerPort(ctx, server.router, key, server, directory.self);
    const listener = await server.net.listen({ ...peer.listen, tls: server.tls }).catch((e) => {
      throw new ListenError(fmt(peer.listen), "peer.listen", e);
    });
    const fleet = new Fleet(directory.self, links, port, listener, directory);
    void fleet.#accept();
    ctx.forwarder = links;
    ctx.log.info("peer port listening", {
      peer: directory.self,
      listen: fmt(listener.addr),
      advertise: fmt(peer.advertise),
    });
    return fleet;
  }

  async #accept(): Promise<void> {
    for (;;) {
      const c = await this.#listener.accept().catch(() => null);
      if (!c) return;
      void this.port.handle(c).catch(() => c.close());
    }
  }

  close(): void {
    this.#listener.close();
    this.links.close();
    this.port.close();
  }

  /** `local` and what every other live server holds, each entry marked with its server. */
  async snapshot(local: Snapshot): Promise<FleetSnapshot> {
    const peers = this.directory.peers().map((p) => p.name);
    const answers = await this.links.ask(FleetOp.view);
    const mark = <T>(list: T[] | undefined, server: string) =>
      (list ?? []).map((x) => ({ ...x, server }));
    const out: FleetSnapshot = {
      ...local,
      agents: mark<AgentView | PresenceAgentView>(local.agents, this.self),
      streams: mark(local.streams, this.self),
      fleet: { self: this.self, servers: [this.self], unreachable: [] },
    };
    for (const name of peers) {
      const a = answers.get(name) as Partial<Snapshot> | undefined;
      if (!a || typeof a !== "object") {
        out.fleet.unreachable.push(name);
        continue;
      }
      out.fleet.servers.push(name);
      out.agents.push(...mark(Array.isArray(a.agents) ? a.agents : [], name));
      out.streams.push(...mark(Array.isArray(a.streams) ? a.streams : [], name));
    }
    out.agents.push(...this.#fromPresence(new Set(out.fleet.unreachable)));
    return out;
  }

  /** The agent sessions of `servers` as the directory (presence) has them. */
  #fromPresence(servers: ReadonlySet<string>): PresenceAgentView[] {
    return this.directory.agents().flatMap((a) =>
      servers.has(a.server)
        ? [{
          name: a.agent,
          session: (a.session ?? "").slice(0, 8),
          server: a.server,
          connected_since: new Date(a.since ?? 0).toISOString(),
          source: "presence" as const,
          reachable: false as const,
        }]
        : []
    );
  }

  /**
   * An operator's action on the server that holds it: `where.server` alone;
   * or the servers holding `where.agent` (from the directory) first, then
   * every other. True once one did it.
   */
  async act(op: number, arg: string, where: { agent?: string; server?: string }): Promise<boolean> {
    const all = this.directory.peers();
    const first = where.agent === undefined ? [] : this.directory.holders(where.agent);
    const order = where.server !== undefined
      ? all.filter((p) => p.name === where.server)
      : [...first, ...all.filter((p) => !first.some((h) => h.name === p.name))];
    for (const p of order) {
      const a = await this.links.askOne(p, op, arg).catch(() => null) as { done?: unknown } | null;
      if (a?.done === true) return true;
    }
    return false;
  }
}
