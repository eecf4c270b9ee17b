/**
 * Health and metrics over HTTP (Hono). The runtime adapter serves `app.fetch`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Metrics } from "./metrics.ts";

export interface HealthSource {
  health(): { status: "ok" | "starting" | "stopping"; agents: number; streams: number };
  readonly metrics: Metrics;
}

export function httpApp(src: HealthSource): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => {
    const h = src.health();
    return c.json(h, h.status === "ok" ? 200 : 503);
  });
  app.get(
    "/metrics",
    (c) =>
      c.text(src.metrics.render(), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );
  return app;
}
