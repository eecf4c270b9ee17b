/**
 * Login checks (SPEC.md §2.3, §2.6): a client proxy's CHECK, or a peer's
 * FORWARD_CHECK, decided here: the grant, then a session of the agent on
 * this server; without one, a CHECK goes to the server of the fleet that
 * holds one (a FORWARD_CHECK never goes further). The answer is
 * CONNECT_RESULT, its `bound` the nameserver the agent reported (§5.18).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { Reason, Status, type Target } from "../messages.ts";
import { ok, type Result } from "../result.ts";
import type { Wire } from "../wire.ts";
import { NO_ADDR } from "../writer.ts";
import type { ServerContext } from "./context.ts";
import { refuse, type Refused } from "./replica_open.ts";
import type { Router } from "./router.ts";
import { loggableAgent } from "./socks_front.ts";

/** A login check that passed: the agent, its nameserver, and the server that decided it if not this one. */
export interface Checked {
  agent: string;
  /** The agent's nameserver (SPEC.md §5.19), or IPv4 0.0.0.0:0. */
  nameserver: Target;
  /** The server of the fleet that holds the agent and decided the check. */
  holder?: string;
}

/**
 * Decide a login check of `client` for `agent` ("": its only granted
 * agent), log it and answer CONNECT_RESULT on `wire`. `forwarded`: the
 * server it came from (FORWARD_CHECK), never forwarded again.
 */
export async function answerCheck(
  wire: Wire,
  ctx: ServerContext,
  router: Router,
  check: { client: string; agent: string; log: Logger; forwarded?: string },
): Promise<void> {
  const { agent, log } = check;
  const r = await decide(ctx, router, check);
  if (r.ok) {
    const { holder } = r.value;
    log.info("login check", { agent: r.value.agent, result: "ok", ...(holder ? { holder } : {}) });
  } else {
    const shown = loggableAgent(agent, (n) => ctx.config().agents.has(n));
    log.warn("login check", { ...shown, status: r.error.status, reason: r.error.reason });
  }
  const [status, reason] = r.ok ? [0, 0] : [r.error.status, r.error.code];
  const bound = r.ok ? r.value.nameserver : NO_ADDR;
  await wire.last({ type: "CONNECT_RESULT", status, reason, bound });
}

async function decide(
  ctx: ServerContext,
  router: Router,
  check: { client: string; agent: string; log: Logger; forwarded?: string },
): Promise<Result<Checked, Refused>> {
  const granted = router.check(check.client, check.agent);
  if (!granted.ok) return granted;
  const agent = granted.value;
  const group = router.agents.group(agent);
  if (group.length > 0) {
    // The agent's nameserver, for `burrow client --dns` (SPEC.md §5.18).
    const live = group.filter((s) => s.announced && !s.closed);
    return ok({ agent, nameserver: live.find((s) => s.nameserver)?.nameserver ?? NO_ADDR });
  }
  // No session here: a server of the fleet that holds one decides it (SPEC.md §2.6).
  const peers = check.forwarded === undefined ? ctx.forwarder : null;
  const fwd = await peers?.check(check.client, agent, check.log);
  return fwd ?? refuse(Status.host_unreachable, Reason.agent_offline, `agent ${agent} is offline`);
}
