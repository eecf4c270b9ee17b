/**
 * The admin API under `/api/v1/` (README.md, "Admin API"): what is
 * connected and what flows, what moved in the last 15 minutes (`/series`),
 * and three actions (close a stream, disconnect an agent or one of its
 * replicas). Every request needs `Authorization: Bearer <admin token>`; the
 * token is configured as `admin: {token | token_hash}` and compared in
 * constant time. Without an `admin:` section the API is off: 404 saying how
 * to turn it on. Failed tokens are logged and counted per source address
 * ({@link HttpPeer}); past `limits.auth_failures_per_minute` the source gets
 * 429 for `limits.auth_block`, even with the right token. JSON field names
 * are stable (src/server/snapshot.ts).
 *
 * @module
 */
import { Hono } from "hono";
import type { AdminConfig } from "../config/mod.ts";
import type { Metrics } from "../metrics.ts";
import type {
  AgentView,
  ClientView,
  ServerView,
  Snapshot,
  StreamView,
  ViewSnapshot,
} from "../server/snapshot.ts";
import type { SeriesView } from "../server/series.ts";
import { type HttpEnv, type HttpPeer, peerOf } from "./guard.ts";
import { tokenRoutes, type TokenSource } from "./admin_tokens.ts";
import { FleetOp } from "../server/peer_links.ts";

/** What the admin API reads and does; the server implements it. */
export interface AdminSource extends TokenSource {
  readonly config: { readonly admin: AdminConfig | null };
  readonly metrics: Metrics;
  serverView(): ServerView;
  agentViews(): AgentView[];
  clientViews(): ClientView[];
  streamViews(): StreamView[];
  snapshot(): Snapshot;
  closeStream(id: number): boolean;
  disconnectAgent(name: string): boolean;
  /** The dashboard's graphs (`GET /series`). */
  seriesView(): SeriesView;
  /** End one replica of an agent, by its instance id (hex). */
  disconnectReplica(name: string, instance: string): boolean;
  /** Log and count a failed admin authentication from `peer`'s source (may block it). */
  adminAuthFailed(peer: HttpPeer | undefined, reason: string): void;
  /** Seconds `peer`'s source stays blocked from the admin API; 0 when it is not. */
  adminBlocked(peer: HttpPeer | undefined): number;
  /** The fleet this server is one of (server/fleet.ts); absent or null: this server alone. */
  readonly fleet?: FleetView | null;
}

/** The fleet view: every server's agents and streams; actions done where they are held. */
export interface FleetView {
  /** This server's name in the fleet (its id in the store's presence). */
  readonly self: string;
  snapshot(local: Snapshot): Promise<ViewSnapshot>;
  /**
   * A FLEET op (SPEC.md §5.24) on `where.server` alone, or on the servers
   * holding `where.agent` first and then the others; true once one did it.
   */
  act(op: number, arg: string, where: { agent?: string; server?: string }): Promise<boolean>;
}

/** This server's snapshot, or the fleet's. */
const whole = (src: AdminSource): Promise<ViewSnapshot> =>
  src.fleet ? src.fleet.snapshot(src.snapshot()) : Promise.resolve(src.snapshot());

const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
};

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...JSON_HEADERS, ...headers },
  });
}

/** An error answer: `{"error": code, "message": text}`. */
function fail(status: number, error: string, message: string, headers = {}): Response {
  return json({ error, message }, status, headers);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  return m ? m[1]! : null;
}

/**
 * Check a request's bearer token against the config in force. Returns the
 * answer to send when it is refused (404: API off, or 403 for `what` other
 * than the API; 429: source blocked; 401: no or wrong token), or null when
 * it may go on.
 */
export function authorize(
  header: string | undefined,
  src: AdminSource,
  peer: HttpPeer | undefined,
  what = "the admin API",
): Response | null {
  const admin = src.config.admin;
  if (!admin) {
    const how = "add `admin: {token_hash: sha256:…}` to the server config " +
      "(`burrow token` prints a token and its hash) and reload";
    return what === "the admin API"
      ? fail(404, "admin_disabled", `the admin API is off: ${how}`)
      : fail(403, "admin_disabled", `${what} on this listener needs the admin token: ${how}`);
  }
  const blocked = src.adminBlocked(peer);
  if (blocked > 0) {
    return fail(
      429,
      "too_many_failures",
      "too many failed admin tokens from this address: try again later",
      { "retry-after": String(blocked) },
    );
  }
  const token = bearerToken(header);
  if (token !== null && admin.check(token)) return null;
  src.metrics.inc("burrow_auth_failures_total", "Failed authentications", { role: "admin" });
  src.adminAuthFailed(peer, token === null ? "no token" : "wrong token");
  return fail(
    401,
    "unauthorized",
    token === null
      ? "send the admin token as Authorization: Bearer <token>"
      : "the admin token is wrong",
    { "www-authenticate": 'Bearer realm="burrow"' },
  );
}

/** A stream id from a path: a decimal integer in 1..2^32-1, else null. */
function streamId(text: string): number | null {
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 0xffffffff ? n : null;
}

/** The `/api/v1` routes, to mount with `app.route("/api/v1", adminApi(src))`. */
export function adminApi(src: AdminSource): Hono<HttpEnv> {
  const api = new Hono<HttpEnv>();
  api.use("*", async (c, next) => {
    const denied = authorize(c.req.header("authorization"), src, peerOf(c.env));
    if (denied) return denied;
    await next();
  });
  api.get("/snapshot", async () => json(await whole(src)));
  api.get("/server", () => json({ server: src.serverView() }));
  api.get("/agents", async () => json({ agents: (await whole(src)).agents }));
  api.get("/agents/:name", async (c) => {
    const name = c.req.param("name");
    const a = (await whole(src)).agents.find((v) => v.name === name);
    return a ? json({ agent: a }) : fail(404, "not_found", `agent ${name} is not connected`);
  });
  api.delete("/agents/:name", async (c) => {
    const name = c.req.param("name");
    return src.disconnectAgent(name) ||
        await src.fleet?.act(FleetOp.disconnect_agent, name, { agent: name })
      ? json({ disconnected: name })
      : fail(404, "not_found", `agent ${name} is not connected`);
  });
  api.delete("/agents/:name/instances/:instance", async (c) => {
    const { name, instance } = c.req.param();
    if (!/^[0-9a-fA-F]{32}$/.test(instance)) {
      return fail(400, "bad_request", "an instance id is 32 hex digits (instance in /agents)");
    }
    return src.disconnectReplica(name, instance) ||
        await src.fleet?.act(FleetOp.disconnect_replica, `${name} ${instance.toLowerCase()}`, {
          agent: name,
        })
      ? json({ disconnected: name, instance: instance.toLowerCase() })
      : fail(404, "not_found", `agent ${name} has no replica with instance ${instance}`);
  });
  api.get("/series", () => json(src.seriesView()));
  api.get("/clients", () => json({ clients: src.clientViews() }));
  api.get("/streams", async () => json({ streams: (await whole(src)).streams }));
  api.get("/streams/:id", (c) => {
    const id = streamId(c.req.param("id"));
    const s = id === null ? undefined : src.streamViews().find((v) => v.id === id);
    return s ? json({ stream: s }) : fail(404, "not_found", "no live stream with this id");
  });
  api.delete("/streams/:id", async (c) => {
    // Ids are each server's own: `?server=NAME` (the fleet view's `server`) says whose.
    const id = streamId(c.req.param("id"));
    const on = c.req.query("server");
    const f = src.fleet;
    const here = !f || on === undefined || on === f.self;
    const there = f && on !== f.self ? { ...(on === undefined ? {} : { server: on }) } : null;
    return id !== null && ((here && src.closeStream(id)) ||
        (there !== null && await f?.act(FleetOp.close_stream, String(id), there)))
      ? json({ closed: id })
      : fail(404, "not_found", "no live stream with this id");
  });
  tokenRoutes(api, src);
  api.all("*", () => fail(404, "not_found", "no such endpoint (see README.md, Admin API)"));
  return api;
}
