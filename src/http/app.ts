/**
 * The HTTP app: health, readiness and metrics, plus the admin API
 * (admin.ts) and the dashboard (dashboard.ts). Served on `listen.http` by
 * the runtime adapter and on `listen.https` by the server (https_front.ts),
 * each giving `app.fetch` the request's {@link HttpPeer} as its env.
 *
 * @module
 */
import { Hono } from "hono";
import type { Metrics } from "../metrics.ts";
import { adminApi, type AdminSource, authorize } from "./admin.ts";
import { DASHBOARD_CSP, dashboardHtml } from "./dashboard.ts";
import {
  type GuardSource,
  hostGuard,
  type HttpEnv,
  metricsOpenByDefault,
  peerOf,
} from "./guard.ts";

export type { HttpEnv, HttpPeer } from "./guard.ts";
import { loginApi, type LoginSource } from "./login.ts";

export interface HealthSource {
  health(): { status: "ok" | "starting" | "stopping"; agents: number; streams: number };
  readonly metrics: Metrics;
}

/** What the whole app needs: the server implements it. */
export interface HttpSource extends HealthSource, AdminSource, GuardSource, LoginSource {
  readonly config: AdminSource["config"] & GuardSource["config"];
  /** True once the config is loaded and every listener is up, false again while stopping. */
  ready(): boolean;
}

export function httpApp(src: HttpSource): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();
  app.use("*", hostGuard(src));
  app.get("/healthz", (c) => {
    const h = src.health();
    return c.json(h, h.status === "ok" ? 200 : 503);
  });
  app.get("/readyz", (c) => {
    const ready = src.ready();
    const status = ready ? "ready" : src.health().status === "stopping" ? "stopping" : "starting";
    return c.json({ status }, ready ? 200 : 503);
  });
  app.get("/metrics", (c) => {
    // Open by default only on a loopback-only listen.http; admin.metrics_auth decides when set.
    const peer = peerOf(c.env);
    const auth = src.config.admin?.metricsAuth ?? !metricsOpenByDefault(peer);
    if (auth) {
      const denied = authorize(c.req.header("authorization"), src, peer, "/metrics");
      if (denied) return denied;
    }
    return c.text(src.metrics.render(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
  app.route("/api/v1", adminApi(src));
  app.route("/login", loginApi(src));
  app.get("/", (c) =>
    c.html(dashboardHtml, 200, {
      "content-security-policy": DASHBOARD_CSP,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
    }));
  return app;
}
