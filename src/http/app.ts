/**
 * The HTTP app: health, readiness and metrics, plus the admin API
 * (admin.ts) and the dashboard (dashboard.ts). The runtime adapter serves
 * `app.fetch`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Metrics } from "../metrics.ts";
import { adminApi, type AdminSource, authorize } from "./admin.ts";
import { DASHBOARD_CSP, dashboardHtml } from "./dashboard.ts";
import { loginApi, type LoginSource } from "./login.ts";

export interface HealthSource {
  health(): { status: "ok" | "starting" | "stopping"; agents: number; streams: number };
  readonly metrics: Metrics;
}

/** What the whole app needs: the server implements it. */
export interface HttpSource extends HealthSource, AdminSource, LoginSource {
  /** True once the config is loaded and every listener is up, false again while stopping. */
  ready(): boolean;
}

export function httpApp(src: HttpSource): Hono {
  const app = new Hono();
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
    const admin = src.config.admin;
    if (admin?.metricsAuth) {
      const denied = authorize(c.req.header("authorization"), src);
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
