/**
 * burrow's HTTP endpoint (Hono), served on `listen.http` by the runtime
 * adapter (`Host.serveHttp`) and on `listen.https` by the server
 * (server/https_front.ts); both give `app.fetch` the request's
 * {@link HttpPeer} (remote address, listener, bound address) as its env:
 *
 * | file | what |
 * |---|---|
 * | app.ts | the app: `/healthz`, `/readyz`, `/metrics`, and the two below mounted |
 * | admin.ts | the admin API under `/api/v1/` (bearer token from `admin:` in server.yaml) |
 * | dashboard.ts | the dashboard at `/`: one self-contained page (inline CSS and JS), with its parts in dashboard_*.ts |
 * | guard.ts | {@link HttpPeer}; the Host guard (DNS rebinding) and which listeners are loopback-only |
 *
 * @module
 */
export { type HealthSource, httpApp, type HttpEnv, type HttpPeer, type HttpSource } from "./app.ts";
export { type AdminSource, bearerToken } from "./admin.ts";
export { DASHBOARD_CSP, dashboardHtml } from "./dashboard.ts";
