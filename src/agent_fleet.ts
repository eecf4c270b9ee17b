/**
 * An agent given several servers (README "A fleet of servers"): it keeps
 * sessions with `servers_per_agent` of them (K), the first K in its
 * rendezvous order (rendezvous.ts) that answer. When one of those fails, the
 * next in order takes its place; the failed one keeps retrying (its own
 * backoff), and once it is back the one that stood in for it stops. So
 * every agent ranks the servers alike wherever it runs, the fleet's agents
 * spread evenly, and a server that comes or goes moves only the agents that
 * rank it among their first K.
 *
 * @module
 */
import { fmt } from "./addr.ts";
import { Agent, type AgentOptions } from "./agent.ts";
import type { ServerAddress } from "./config/agent.ts";
import { UsageError } from "./errors.ts";
import { parseIP } from "./ip.ts";
import type { Logger } from "./log.ts";
import type { Net, TlsClientOptions } from "./net.ts";
import { rendezvousOrder } from "./rendezvous.ts";

/** `servers_per_agent` unless configured. */
export const SERVERS_PER_AGENT = 2;

interface Slot {
  opts: AgentOptions;
  agent: Agent | null;
  /** Its last attempt failed and no session came since. */
  down: boolean;
}

export class AgentFleet {
  /** The servers in this agent's rendezvous order. */
  readonly #slots: Slot[];
  #stopped = false;

  /**
   * `servers`: one set of options per server (the same name, credential and
   * rules); `perAgent`: K, at least 1.
   */
  constructor(
    readonly net: Net,
    servers: AgentOptions[],
    readonly perAgent: number,
    readonly log: Logger,
  ) {
    const name = servers[0]?.name ?? "";
    const order = rendezvousOrder(name, servers.map((o) => fmt(o.server)));
    this.#slots = order.map((i) => ({ opts: servers[i]!, agent: null, down: false }));
  }

  /** The servers in order, and which have a session now (tests, logs). */
  get state(): Array<{ server: string; running: boolean; connected: boolean }> {
    return this.#slots.map((s) => ({
      server: fmt(s.opts.server),
      running: s.agent !== null,
      connected: s.agent?.session !== undefined,
    }));
  }

  /** Sessions established now. */
  get connected(): number {
    return this.#slots.filter((s) => s.agent?.session !== undefined).length;
  }

  start(): void {
    this.log.info("servers ranked", {
      servers: this.#slots.length,
      servers_per_agent: this.perAgent,
      order: this.#slots.map((s) => fmt(s.opts.server)).join(","),
    });
    this.#rebalance();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#slots.map((s) => s.agent?.stop()));
  }

  /**
   * Run an agent on each of the first servers in order until K of them are
   * not down; stop the agents on the servers after those.
   */
  #rebalance(): void {
    if (this.#stopped) return;
    let up = 0;
    for (const s of this.#slots) {
      if (up < this.perAgent) {
        if (!s.agent) this.#run(s);
        if (!s.down) up++;
      } else if (s.agent) {
        this.log.info("leaving a stand-in server", { server: fmt(s.opts.server) });
        const a = s.agent;
        s.agent = null;
        s.down = false;
        void a.stop();
      }
    }
  }

  #run(s: Slot): void {
    const agent = new Agent(
      this.net,
      {
        ...s.opts,
        onState: (connected) => {
          if (s.agent !== agent || s.down === !connected) return;
          s.down = !connected;
          this.#rebalance();
        },
      },
      this.log.with({
        agent: s.opts.name,
        ...(this.#slots.length > 1 ? { server: fmt(s.opts.server) } : {}),
      }),
    );
    s.agent = agent;
    agent.start();
  }
}

/**
 * The servers as given, each with `tls`; but one host name (not an IP
 * literal) given alone is resolved, and each of its addresses is a server of
 * its own, its certificate verified for the name given.
 */
export async function expandServers(
  net: Net,
  servers: ServerAddress[],
  tls: TlsClientOptions | undefined,
): Promise<Array<{ server: ServerAddress; tls: TlsClientOptions | undefined }>> {
  const only = servers.length === 1 ? servers[0]! : undefined;
  const host = only?.addr.host ?? "";
  if (!only || parseIP(host) !== null || host === "localhost") {
    return servers.map((server) => ({ server, tls }));
  }
  const ips = [...new Set(await net.lookup(host))].sort();
  if (ips.length < 2) return [{ server: only, tls }];
  const named = tls ? { serverName: host, ...tls } : undefined;
  return ips.map((ip) => ({ server: { ...only, addr: { ...only.addr, host: ip } }, tls: named }));
}

/** `--servers-per-agent` over `servers_per_agent:` over the default; 1..64. */
export function serversPerAgent(flag: string | undefined, file: number | undefined): number {
  const n = flag === undefined ? file ?? SERVERS_PER_AGENT : Number(flag);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new UsageError("--servers-per-agent must be an integer in 1..64");
  }
  return n;
}
