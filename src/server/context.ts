/**
 * What every room of the server shares: the live config, metrics, the log,
 * admission; and how a framed connection ends on an error.
 *
 * @module
 */
import type { ServerConfig } from "../config/mod.ts";
import { NetError, PeerError, ProtocolError, TimeoutError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type Wire } from "../wire.ts";
import type { Admission, Port } from "./admission.ts";
import type { TokenStore } from "./tokens.ts";
import type { Target } from "../messages.ts";
import type { OpenRequest, OpenResult, Refused } from "./replica_open.ts";
import type { Result } from "../result.ts";
import type { Checked } from "./login_check.ts";
import type { Store } from "./store.ts";
import type { FleetInfo } from "./fleet.ts";

export interface ServerContext {
  /** The config in force (it changes on reload: read it at each decision). */
  config(): ServerConfig;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly admission: Admission;
  /** Issued tokens (SPEC.md §6.4). */
  readonly tokens: TokenStore;
  /** The state store (presence of this server's agent sessions). */
  readonly store: Store;
  /** Opens a CONNECT on the server of the fleet that holds its agent (SPEC.md §2.6); none: null. */
  forwarder?: Forwarder | null;
}

/** What forwards a CONNECT or a login check to another server (server/peer_links.ts). */
export interface Forwarder {
  /** Null when no other server holds `agent`. */
  forward(
    req: OpenRequest,
    target: Target,
    agent: string,
    streamId: number,
  ): Promise<OpenResult | null>;
  /** A login check (FORWARD_CHECK) for `agent`, decided by a server holding it; null when none does. */
  check(client: string, agent: string, log: Logger): Promise<Result<Checked, Refused> | null>;
}

/**
 * End a framed connection after `e`: a protocol violation gets ERROR (SPEC.md
 * §3, §9.2) unless the spec says to close without reply; the peer's ERROR,
 * network failures and timeouts just close. Anything else is a bug: rethrown.
 */
export async function closeOnError(
  ctx: ServerContext,
  wire: Wire,
  e: unknown,
  log: Logger,
  port: Port,
): Promise<void> {
  if (e instanceof ProtocolError) {
    ctx.metrics.inc("burrow_protocol_errors_total", "Connections closed for a protocol error", {
      port,
      code: e.code,
    });
    log.warn("protocol error, closing", { port, code: e.code, error: e.message });
    if (e.reply) await wire.fail(e.code, e.message);
    else wire.conn.close();
  } else if (e instanceof PeerError) {
    log.warn("peer sent error", { port, code: e.code, error: e.peerMessage });
    wire.conn.close();
  } else if (e instanceof NetError || e instanceof TimeoutError) {
    log.debug("connection ended", { port, error: e.message });
    wire.conn.close();
  } else {
    throw e;
  }
}

/** What the server reports about where it runs (build info, admin API). */
export interface ServerInfo extends FleetInfo {
  /** The runtime's version (`Host.version`). */
  runtimeVersion?: string;
  /** The state store (store_open.ts `storeFor`), opened by start(); absent: in memory. */
  store?: Store;
  /** How `oidc.ca` is read (the CLI's host); absent: the runtime's roots only. */
  readTextFile?: (path: string) => Promise<string>;
  /** How `oidc.client_secret_file` is read (Host.readSecretFile); absent: it cannot be. */
  readSecretFile?: (path: string) => Promise<string>;
}
