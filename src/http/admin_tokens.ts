/**
 * The admin API's issued tokens (README.md, "Tokens for machines"; SPEC.md
 * §6.4): issue one for a configured client, list them, revoke one, or all
 * of a client's or a person's. A token's text is in the answer to its issue
 * only; the log names tokens by id.
 *
 * @module
 */
import type { HttpEnv } from "./guard.ts";
import type { Hono } from "hono";
import type { Logger } from "../log.ts";
import { readDuration } from "../time.ts";
import { StoreError } from "../errors.ts";
import { tokenId, type TokenStore, tokenView } from "../server/tokens.ts";

/** What the token routes read and do; the server implements it. */
export interface TokenSource {
  readonly tokens: TokenStore;
  readonly admission: {
    limitHit(limit: string, fields: Record<string, string | number | undefined>): void;
  };
  readonly log: Logger;
  /** `tokens:` of the config in force, and its clients. */
  tokenPolicy(): { maxTtl: number; maxActive: number; clients: ReadonlyMap<string, unknown> };
}

const iso = (s: number) => new Date(s * 1000).toISOString();
const keyHex = (id: number) => id.toString(16).padStart(8, "0");

function fail(status: number, error: string, message: string): Response {
  return Response.json({ error, message }, {
    status,
    headers: { "cache-control": "no-store" },
  });
}

/**
 * `work`'s answer; 503 with the reason when the state store cannot take the
 * change (an outage, logged once by the store, not per request).
 */
async function needsStore(work: () => Promise<Response>): Promise<Response> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    return fail(503, "store_unavailable", e.message);
  }
}

/** `ttl` as seconds: a duration text (`1h`) or a number of seconds; or the error text. */
function ttlSeconds(v: unknown): number | string {
  if (typeof v === "number") {
    return Number.isInteger(v) && v >= 1 ? v : "ttl must be whole seconds ≥ 1";
  }
  if (typeof v !== "string") return "ttl is needed: a duration such as 1h, or seconds";
  const d = readDuration(v);
  if (!d.ok) return d.error;
  return d.value >= 1000 ? Math.floor(d.value / 1000) : "ttl must be at least 1s";
}

/** Issue a token for `client` after the checks of `tokens:` (POST /tokens). */
async function issue(src: TokenSource, body: unknown): Promise<Response> {
  const b = (body ?? {}) as { client?: unknown; ttl?: unknown };
  const policy = src.tokenPolicy();
  if (typeof b.client !== "string" || !policy.clients.has(b.client)) {
    return fail(
      400,
      "bad_request",
      "client must name a configured client (clients: in server.yaml)",
    );
  }
  const ttl = ttlSeconds(b.ttl);
  if (typeof ttl === "string") return fail(400, "bad_request", ttl);
  if (ttl > policy.maxTtl) {
    return fail(400, "bad_request", `ttl must be at most tokens.max_ttl (${policy.maxTtl}s)`);
  }
  if (src.tokens.active >= policy.maxActive) {
    src.admission.limitHit("tokens_max_active", { max: policy.maxActive, client: b.client });
    return fail(429, "limit", `tokens.max_active (${policy.maxActive}) tokens are active`);
  }
  const t = await src.tokens.issue("client", b.client, ttl);
  src.log.info("token issued", { token: t.id, client: b.client, expires_at: iso(t.expiresAt) });
  return Response.json({ id: t.id, token: t.token, expires_at: iso(t.expiresAt) }, {
    status: 201,
    headers: { "cache-control": "no-store" },
  });
}

/** Add the token routes to the `/api/v1` app (behind its admin token check). */
export function tokenRoutes(api: Hono<HttpEnv>, src: TokenSource): void {
  api.post("/tokens", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return fail(400, "bad_request", 'send JSON: {"client": "ci", "ttl": "1h"}');
    }
    return await needsStore(() => issue(src, body));
  });
  api.get("/tokens", () => Response.json({ tokens: src.tokens.list().map(tokenView) }));
  api.post("/tokens/rotate", () =>
    needsStore(async () => {
      const id = keyHex(await src.tokens.rotate());
      src.log.info("token signing key rotated", { key_id: id });
      return Response.json({ key_id: id });
    }));
  api.delete("/tokens/:id", (c) => {
    const id = tokenId(c.req.param("id"));
    if (id === null) return fail(400, "bad_request", "a token id is 32 hex digits (id in /tokens)");
    return needsStore(async () => {
      const ids = await src.tokens.revoke((t) => t.id === id);
      if (ids.length === 0) return fail(404, "not_found", "no active token with this id");
      src.log.info("token revoked", { token: id });
      return Response.json({ revoked: id });
    });
  });
  api.delete("/clients/:name/tokens", (c) =>
    needsStore(async () => {
      const name = c.req.param("name");
      const ids = await src.tokens.revoke((t) => t.subject === name);
      for (const id of ids) src.log.info("token revoked", { token: id, subject: name });
      return Response.json({ revoked: ids });
    }));
}
