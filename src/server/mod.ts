/**
 * The routing server, room by room:
 *
 * | file | job |
 * |---|---|
 * | server.ts | listeners and lifecycle (start, reload, stop, health) |
 * | admission.ts | handshake budgets per port and source, auth-failure blocks |
 * | login.ts | version negotiation, CHALLENGE/AUTH verification, SOCKS5 passwords |
 * | agent_port.ts | agents' control loop and pool hellos |
 * | carrier.ts | pool entries: connections of their own and links (granted stream ids) |
 * | session.ts | one agent's session and its pool policy (no sockets) |
 * | router.ts | grants, limits, relay and counting |
 * | replica_open.ts | which replica, which pool entry, OPEN/OPEN_RESULT |
 * | socks_front.ts, client_front.ts | the SOCKS5 port and the client-proxy port |
 * | snapshot.ts, series.ts, refusals.ts | what the admin API and dashboard show: now, the last 15 minutes, the latest refusals |
 *
 * @module
 */
export { Server } from "./server.ts";
export { type OpenRequest, type OpenResult, Router } from "./router.ts";
export { AgentSession, type Pooled, type PoolParams } from "./session.ts";
export { Admission, type Port, sourceOf } from "./admission.ts";
