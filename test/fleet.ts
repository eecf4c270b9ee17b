/**
 * Servers of one fleet in this process, for the peer tests (SPEC.md §2.6):
 * each with a certificate of its own, the fleet's pins, a fleet secret and
 * a peer port; and {@link TestDirectory}, a test-only implementation of the
 * presence interface (src/server/peer_directory.ts) that reads which
 * servers are up and hold which agents from the servers themselves.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentOptions } from "../src/agent.ts";
import { AgentFleet } from "../src/agent_fleet.ts";
import { tokenCredential } from "../src/auth.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import type { Net } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import type { FleetAgent, PeerAddress, PeerDirectory } from "../src/server/peer_directory.ts";
import { Server } from "../src/server/mod.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";
import { STORE_KEY_ENV, storeFor } from "../src/server/store_open.ts";
import { AGENT_TOKEN, ALICE_TOKEN, memoryLogger, until } from "./helpers.ts";

export const ADMIN = "admin-token-0123456789";
export const SECRET = "fleet-secret-0123456789";

export interface Member {
  name: string;
  server: Server;
  lines: string[];
  /** False once stopped: the directory leaves it out (its lease expired). */
  up: boolean;
}

/** The fleet's members as the store's presence would tell them. */
export class TestDirectory implements PeerDirectory {
  constructor(readonly self: string, readonly members: Member[]) {}
  #others(): Member[] {
    return this.members.filter((m) => m.up && m.name !== this.self);
  }
  holders(agent: string): PeerAddress[] {
    return this.#others().filter((m) => m.server.agents.group(agent).length > 0).map(addr);
  }
  peers(): PeerAddress[] {
    return this.#others().map(addr);
  }
  agents(): FleetAgent[] {
    return this.members.filter((m) => m.up).flatMap((m) =>
      [...m.server.agents.names()].map((agent) => ({ agent, server: m.name, instance: null }))
    );
  }
}

/** A member as presence tells it: where its peer port really listens (configured on port 0). */
const addr = (m: Member): PeerAddress => ({ name: m.name, advertise: m.server.fleet!.addr });

export interface FleetOptions {
  /** The fleet secret of member i (default: {@link SECRET}). */
  secret?: (i: number) => string;
  /** The pins member i trusts (default: every member's). */
  pins?: (i: number, all: string[]) => string[];
  /** More `peer:` keys for every member. */
  peer?: Record<string, unknown>;
  /** More server config for every member (or for member i). */
  config?: Record<string, unknown> | ((i: number) => Record<string, unknown>);
  /**
   * A PostgreSQL URL (test/pg.ts): the members share it as their store and
   * find each other in its presence, and a member's name is its presence
   * id. Absent: a {@link TestDirectory} and the embedded store.
   */
  pg?: string;
}

/** The store key the members of a PostgreSQL fleet share. */
const STORE_KEY = "5a".repeat(32);

/** Until every up member's presence lists `n` sessions of `agent` (at most `ms`). */
export function known(members: Member[], agent: string, n: number, ms = 10_000): Promise<boolean> {
  // Only these members' sessions count: a server of an earlier test may linger until its lease ends.
  const ours = (m: Member) =>
    (m.server.store.presence.agents().get(agent) ?? []).filter((p) =>
      members.some((x) => x.up && x.name === p.server)
    ).length;
  return until(() => members.every((m) => !m.up || ours(m) === n), ms);
}

/** `n` servers of one fleet, started; `close()` stops them and removes their files. */
export async function startFleet(net: Net, n: number, o: FleetOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "burrow-fleet-"));
  const certs = await Promise.all(Array.from({ length: n }, () => generateSelfSigned()));
  const pins = await Promise.all(certs.map((c) => fingerprint(c.cert)));
  const members: Member[] = [];
  for (let i = 0; i < n; i++) {
    const name = `s${i + 1}`;
    const tokenFile = join(dir, `${name}.secret`);
    writeFileSync(tokenFile, o.secret?.(i) ?? SECRET, { mode: 0o600 });
    const config = parseServerConfig(
      JSON.stringify({
        listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "127.0.0.1:0", http: "" },
        heartbeat: { interval: "200ms", timeout: "1s" },
        pool: { min: 2, max: 32, wait: "2s", idle: "600ms" },
        agents: [{ name: "office", token: AGENT_TOKEN }, { name: "lab", token: AGENT_TOKEN }],
        clients: [{ name: "alice", token: ALICE_TOKEN }],
        grants: [{ client: "alice", agents: ["office", "lab"], targets: ["127.0.0.1:*"] }],
        admin: { token: ADMIN },
        peer: {
          listen: "127.0.0.1:0",
          advertise: "127.0.0.1:0",
          token_file: tokenFile,
          fingerprint: o.pins?.(i, pins) ?? pins,
          ...o.peer,
        },
        ...(typeof o.config === "function" ? o.config(i) : o.config),
        ...(o.pg ? { store: { postgres: o.pg } } : {}),
      }),
      `(${name})`,
    );
    const read = (p: string) => Promise.resolve(readFileSync(p, "utf8"));
    const store = o.pg
      ? await storeFor(config, {
        readTextFile: read,
        env: (k) => k === STORE_KEY_ENV ? STORE_KEY : undefined,
        tokenFile: { read: () => Promise.resolve(null), write: () => Promise.resolve() },
      })
      : undefined;
    const { log, lines } = memoryLogger();
    const server = new Server(net, config, log.with({ server: name }), certs[i], {
      ...(store ? { store } : { directory: new TestDirectory(name, members) }),
      readTextFile: read,
    });
    members.push({ name: store ? store.presence.serverId : name, server, lines, up: true });
  }
  for (const m of members) await m.server.start();
  return {
    members,
    pins,
    /** Stop member `m` (its lease is gone at once). */
    async stop(m: Member) {
      m.up = false;
      await m.server.stop();
    },
    async close() {
      for (const m of members) if (m.up) await this.stop(m);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Agent `name` on `k` of the servers (an agent fleet, servers_per_agent =
 * k; `pins[i]` is server i's certificate), allowing `allow`, with `more`
 * options (its nameserver…), started.
 */
export function fleetAgent(
  net: Net,
  name: string,
  servers: Server[],
  pins: string[],
  k = 2,
  allow = ["127.0.0.1:*"],
  more: Partial<AgentOptions> = {},
) {
  const { log, lines } = memoryLogger();
  const fleet = new AgentFleet(
    net,
    servers.map((s, i) => ({
      server: s.addrs.agents!,
      tls: { fingerprint: pins[i]! },
      name,
      credential: tokenCredential(AGENT_TOKEN),
      rules: allow.flatMap((r) => parseRule(r)),
      backoffBaseMs: 50,
      backoffMaxMs: 200,
      ...more,
    })),
    k,
    log,
  );
  fleet.start();
  return { fleet, lines };
}

/** Does `s` hold an announced, live session of `agent`? */
export const holds = (s: Server, agent: string): boolean =>
  s.agents.group(agent).some((x) => x.announced && !x.closed);

/**
 * Two servers of one fleet (`o`), agent "office" on the first only,
 * allowing `allow` (with `more` options), returned once the first holds it
 * and every member's presence says so; `closeAll()` stops it all.
 */
export async function officeOnFirst(
  net: Net,
  o: FleetOptions,
  allow: string[],
  more: Partial<AgentOptions> = {},
) {
  const f = await startFleet(net, 2, o);
  const [s1, s2] = f.members as [Member, Member];
  const agent = fleetAgent(net, "office", [s1.server], [f.pins[0]!], 1, allow, more);
  const ready = await until(() => holds(s1.server, "office"), 10_000) &&
    await known(f.members, "office", 1);
  if (!ready) {
    await agent.fleet.stop();
    await f.close();
    throw new Error("the agent did not reach the first server");
  }
  return {
    ...f,
    s1,
    s2,
    agent,
    async closeAll() {
      await agent.fleet.stop();
      await f.close();
    },
  };
}
