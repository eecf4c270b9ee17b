/**
 * The server's gauges (README "Health, readiness and metrics"): what is
 * connected and in flight, read when /metrics is rendered.
 *
 * @module
 */
import type { Metrics } from "../metrics.ts";
import { VERSION_MAX, VERSION_MIN } from "../messages.ts";
import { VERSION } from "../version.ts";
import type { Admission } from "./admission.ts";
import type { AgentPort } from "./agent_port.ts";
import type { Router } from "./router.ts";
import type { TokenStore } from "./tokens.ts";

/** Register the gauges of `s` on `m`; `build` names the runtime and its version. */
export function serverGauges(
  m: Metrics,
  s: {
    readonly agents: AgentPort;
    readonly router: Router;
    readonly tokens: TokenStore;
    readonly admission: Admission;
  },
  build: { runtime: string; version: string },
): void {
  m.gauge(
    "burrow_agents_connected",
    "Agents with a live session",
    () => [[{}, s.agents.connected]],
  );
  m.gauge("burrow_streams_active", "Streams being relayed", () => [[{}, s.router.active]]);
  m.gauge(
    "burrow_tokens_active",
    "Issued tokens not expired nor revoked (tokens.max_active)",
    () => [[
      {},
      s.tokens.active,
    ]],
  );
  m.gauge(
    "burrow_pool_idle",
    "Idle pool connections per agent",
    () =>
      [...s.agents.names()].map((name) => [
        { agent: name },
        s.agents.group(name).reduce((n, s) => n + s.idle, 0),
      ]),
  );
  m.gauge(
    "burrow_agent_replicas",
    "Live sessions per agent: its replicas (SPEC.md §2.1)",
    () =>
      [...s.agents.names()].map((
        name,
      ) => [{ agent: name }, s.agents.group(name).length]),
  );
  m.gauge(
    "burrow_agent_links",
    "Links per agent (SPEC.md §2.4); 0: pool connections of their own",
    () => [...s.agents.names()].map((name) => [{ agent: name }, s.agents.links(name)]),
  );
  m.gauge(
    "burrow_pending_handshakes",
    "Connections in their handshake per port (cap: limits.pending_handshakes)",
    () =>
      (["agents", "socks", "clients", "https"] as const).map((port) => [
        { port },
        s.admission.pending(port),
      ]),
  );
  m.gauge(
    "burrow_build_info",
    "burrow's version, runtime and protocol versions; always 1",
    () => [[
      {
        version: VERSION,
        runtime: build.runtime,
        runtime_version: build.version,
        protocol_min: String(VERSION_MIN),
        protocol_max: String(VERSION_MAX),
      },
      1,
    ]],
  );
}
