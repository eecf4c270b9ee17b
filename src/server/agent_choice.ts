/**
 * Which agent a client means (SPEC.md §7.1): the one it names, or "" for its
 * only granted one, with the client's grants for it; or why there is none,
 * as a SPEC.md §9.7 reason and a text for the log. Used by the router for
 * CONNECT, CHECK and the pool's demand count.
 *
 * @module
 */
import type { Grant, ServerConfig } from "../config/server.ts";
import { Reason, type Rule } from "../messages.ts";

/** The agent chosen and the client's grants for it. */
export type Chosen = { agent: string; granted: Grant[]; rules: Rule[] };

/** Why no agent: the SPEC.md §9.7 reason and a text for the log. */
export type NoAgent = { code: number; reason: string };

export class AgentChoice {
  /** Answers found, for one config. */
  #found: { config: ServerConfig; found: Map<string, Chosen> } | null = null;

  constructor(readonly config: () => ServerConfig) {}

  /** The agent `client` means by `agent` ("" for its only granted one), or why there is none. */
  of(client: string, agent: string): Chosen | NoAgent {
    // Every CONNECT asks twice (expect, open): answers found are kept for
    // the config they came from. Only found ones: a name a client typed is
    // kept only when it is a configured agent granted to it.
    const config = this.config();
    if (this.#found?.config !== config) this.#found = { config, found: new Map() };
    const key = `${client}\n${agent}`;
    const known = this.#found.found.get(key);
    if (known) return known;
    const grants = config.grants.filter((g) => g.client === client);
    let name = agent;
    if (name === "") {
      const names = [...new Set(grants.flatMap((g) => g.agents))];
      if (names.length !== 1) {
        return {
          code: names.length === 0 ? Reason.not_granted : Reason.agent_ambiguous,
          reason: names.length === 0
            ? "client has no grant"
            : `client is granted ${names.length} agents; name one as ${client}@agent`,
        };
      }
      name = names[0]!;
    }
    const granted = grants.filter((g) => g.agents.includes(name));
    if (granted.length === 0) {
      // A name that is no agent may be a token typed in its place: not logged (SPEC.md §11.2).
      const reason = config.agents.has(name)
        ? `client is not granted agent ${name}`
        : `no agent of that name (${new TextEncoder().encode(name).length} bytes)`;
      return { code: Reason.not_granted, reason };
    }
    const found = { agent: name, granted, rules: granted.flatMap((g) => g.rules) };
    this.#found.found.set(key, found);
    return found;
  }
}
