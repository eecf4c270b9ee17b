/**
 * Which agent a client means (SPEC.md §7.1): the one it names, or "" for its
 * only granted one, with the client's grants for it; or why there is none,
 * as a SPEC.md §9.7 reason and a text for the log. Used by the router for
 * CONNECT, CHECK and the pool's demand count.
 *
 * @module
 */
import { type Grant, type ServerConfig, stableIds } from "../config/server.ts";
import { Reason, type Rule } from "../messages.ts";
import { err, type Ok, ok, type Result } from "../result.ts";

/** The agent chosen and the client's grants for it. */
export type Chosen = { agent: string; granted: Grant[]; rules: Rule[] };

/** Signed-in people (server/tokens.ts): their groups, and a version of them all. */
export interface People {
  person(name: string): { groups: readonly string[] } | undefined;
  readonly peopleVersion: number;
}

const NOBODY: People = { person: () => undefined, peopleVersion: 0 };

/** Why no agent: the SPEC.md §9.7 reason and a text for the log. */
export type NoAgent = { code: number; reason: string };

export class AgentChoice {
  /** Answers found, for one config and one version of people's groups. */
  #found: { config: ServerConfig; people: number; found: Map<string, Ok<Chosen>> } | null = null;

  /**
   * `people`: the groups of signed-in people (not configured clients), and
   * a version that changes when anyone's groups do.
   */
  constructor(readonly config: () => ServerConfig, readonly people: () => People = () => NOBODY) {}

  /** The id of `name`: a configured client's; a person's, from their subject; else 0. */
  clientId(name: string): number {
    const id = this.config().clients.get(name)?.id;
    if (id !== undefined) return id;
    return this.people().person(name) ? stableIds([name]).get(name)! : 0;
  }

  /** The grants of `client`: its own; a person's, and their groups' (SPEC.md §7.2). */
  #grantsOf(config: ServerConfig, client: string): Grant[] {
    const p = config.clients.has(client) ? undefined : this.people().person(client);
    return config.grants.filter((g) =>
      g.client === client ||
      (p !== undefined &&
        (g.person === client || (g.group !== undefined && p.groups.includes(g.group))))
    );
  }

  /** The agent `client` means by `agent` ("" for its only granted one), or why there is none. */
  of(client: string, agent: string): Result<Chosen, NoAgent> {
    // Every CONNECT asks twice (expect, open): answers found are kept for
    // the config they came from. Only found ones: a name a client typed is
    // kept only when it is a configured agent granted to it.
    const config = this.config();
    const people = this.people().peopleVersion;
    if (this.#found?.config !== config || this.#found.people !== people) {
      this.#found = { config, people, found: new Map() };
    }
    const key = `${client}\n${agent}`;
    const known = this.#found.found.get(key);
    if (known) return known;
    const grants = this.#grantsOf(config, client);
    let name = agent;
    if (name === "") {
      const names = [...new Set(grants.flatMap((g) => g.agents))];
      if (names.length !== 1) {
        return err({
          code: names.length === 0 ? Reason.not_granted : Reason.agent_ambiguous,
          reason: names.length === 0
            ? "client has no grant"
            : `client is granted ${names.length} agents; name one as ${client}@agent`,
        });
      }
      name = names[0]!;
    }
    const granted = grants.filter((g) => g.agents.includes(name));
    if (granted.length === 0) {
      // A name that is no agent may be a token typed in its place: not logged (SPEC.md §11.2).
      const reason = config.agents.has(name)
        ? `client is not granted agent ${name}`
        : `no agent of that name (${new TextEncoder().encode(name).length} bytes)`;
      return err({ code: Reason.not_granted, reason });
    }
    const found = ok({ agent: name, granted, rules: granted.flatMap((g) => g.rules) });
    this.#found.found.set(key, found);
    return found;
  }
}
