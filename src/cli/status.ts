/**
 * `burrow status`: asks a running server's admin API (`/api/v1/snapshot`)
 * and prints its agents and live streams as aligned tables (or the JSON).
 *
 * @module
 */
import type { Command } from "commander";
import type { AgentView, PresenceAgentView, ViewSnapshot } from "../server/snapshot.ts";
import { parseServerConfig, serverDefaults } from "../config/mod.ts";
import { fmt } from "../addr.ts";
import type { Addr } from "../net.ts";
import type { Start } from "./common.ts";
import type { Host } from "./mod.ts";
import { ConfigError, UsageError } from "../errors.ts";

interface StatusFlags extends AdminFlags {
  json?: boolean;
}

/** Lay out rows under a header: columns padded to their widest cell, two spaces apart. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Bytes in binary units, e.g. `1.5 MiB`. */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** A duration since `iso`, e.g. `3m12s`. */
export function since(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** An agents table row; an agent of a fleet server that did not answer has only presence's columns. */
function agentRow(a: AgentView | PresenceAgentView, now: number): string[] {
  if ("source" in a) {
    const at = since(a.connected_since, now);
    return [a.name, "-", a.session, "-", "unreachable (presence)", at, "-", "-", "-", "-"];
  }
  return [
    a.name,
    String(a.id),
    a.session,
    String(a.protocol),
    a.remote,
    since(a.connected_since, now),
    `${a.pool.idle}/${a.pool.target}`,
    String(a.streams),
    humanBytes(a.bytes_up),
    humanBytes(a.bytes_down),
  ];
}

/** The snapshot as text: a server line, an agents table and a streams table. */
export function renderStatus(s: ViewSnapshot, now = Date.now()): string[] {
  const out = [
    `burrow ${s.server.version} on ${s.server.runtime} ${s.server.runtime_version}, ` +
    `${s.server.ready ? "ready" : "not ready"}, up ${since(s.server.started_at, now)}`,
    "",
    `AGENTS (${s.agents.length})`,
  ];
  out.push(...table(
    ["NAME", "ID", "SESSION", "PROTO", "REMOTE", "CONNECTED", "POOL", "STREAMS", "UP", "DOWN"],
    s.agents.map((a) => agentRow(a, now)),
    new Set([1, 3, 6, 7, 8, 9]),
  ));
  out.push("", `STREAMS (${s.streams.length})`);
  out.push(...table(
    ["ID", "CLIENT", "AGENT", "TARGET", "PORT", "AGE", "UP", "DOWN"],
    s.streams.map((t) => [
      String(t.id),
      t.client,
      t.agent,
      t.target,
      t.port,
      since(t.since, now),
      humanBytes(t.bytes_up),
      humanBytes(t.bytes_down),
    ]),
    new Set([0, 5, 6, 7]),
  ));
  return out;
}

async function adminToken(host: Host, f: AdminFlags): Promise<string> {
  if (f.token) return f.token;
  if (f.tokenFile) {
    let text: string;
    try {
      text = await host.readTextFile(f.tokenFile);
    } catch (e) {
      throw new UsageError(`cannot read ${f.tokenFile}: ${(e as Error).message}`);
    }
    // Accept the output of `burrow token` as it is.
    const m = /^token:\s*(\S+)\s*$/m.exec(text);
    return m ? m[1]! : text.trim();
  }
  const env = host.env("BURROW_ADMIN_TOKEN");
  if (env) return env;
  throw new UsageError("this command needs --token, --token-file or BURROW_ADMIN_TOKEN");
}

/** A listen address as a client dials it: an all-interfaces address becomes loopback. */
function dialable(a: Addr): string {
  const h = a.host === "0.0.0.0" ? "127.0.0.1" : a.host === "::" ? "::1" : a.host;
  return fmt({ host: h, port: a.port });
}

/** The admin API's base URL: `--url`, else `listen.http` of `-c server.yaml`, else the default. */
async function baseUrl(host: Host, f: AdminFlags): Promise<{ base: string; guessed: boolean }> {
  if (f.url !== undefined) return { base: f.url, guessed: false };
  if (f.config === undefined) return { base: `http://${serverDefaults.http}`, guessed: true };
  let text: string;
  try {
    text = await host.readTextFile(f.config);
  } catch (e) {
    throw new ConfigError(`${f.config}: cannot read: ${(e as Error).message}`);
  }
  const http = parseServerConfig(text, f.config).listen.http;
  if (!http) {
    throw new UsageError(
      `${f.config}: listen.http is off: pass --url with the address the admin API is served on`,
    );
  }
  return { base: `http://${dialable(http)}`, guessed: false };
}

/** The admin API flags `burrow status` and `burrow tokens` share. */
export interface AdminFlags {
  url?: string;
  config?: string;
  token?: string;
  tokenFile?: string;
  timeout: string;
}

/**
 * One request to a running server's admin API (`path` under `/api/v1/`):
 * the body of its 2xx answer, or a UsageError saying what went wrong.
 */
export async function adminRequest(
  host: Host,
  f: AdminFlags,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<string> {
  const { base, guessed } = await baseUrl(host, f);
  let url: URL;
  try {
    url = new URL(`api/v1/${path}`, base.endsWith("/") ? base : `${base}/`);
  } catch {
    throw new UsageError(`--url ${base} is not a URL (e.g. http://127.0.0.1:7002)`);
  }
  const ms = Number(f.timeout);
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError("--timeout must be milliseconds > 0");
  const token = await adminToken(host, f);
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method ?? "GET",
      headers: {
        authorization: `Bearer ${token}`,
        accept: "application/json",
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(ms),
    });
  } catch (e) {
    // fetch's "fetch failed" keeps the reason in `cause` (Node, Deno); Bun has a `code`
    const err = e as Error & { code?: string; cause?: { code?: string; message?: string } };
    const why = err.cause?.code ?? err.code ?? err.cause?.message ?? err.message;
    throw new UsageError(
      guessed
        ? `cannot reach the server at ${url.origin} (the default; ${why}): pass -c server.yaml ` +
          `(its listen.http is used) or --url http://host:port of its listen.http`
        : `cannot reach ${url.origin}: ${why}: is the server running, and is this its listen.http?`,
    );
  }
  const text = await res.text();
  if (res.status < 200 || res.status > 299) {
    let message = text.slice(0, 200);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: show the start of the body
    }
    throw new UsageError(`${url.href}: HTTP ${res.status}: ${message}`);
  }
  return text;
}

async function runStatus(host: Host, f: StatusFlags): Promise<void> {
  const text = await adminRequest(host, f, "snapshot");
  if (f.json) return host.print(text);
  for (const line of renderStatus(JSON.parse(text) as ViewSnapshot)) host.print(line);
}

/** The options of every admin API command: where the server is, and the admin token. */
export function adminOptions(cmd: Command): Command {
  return cmd
    .option("-c, --config <file>", "the server's config: the admin API is on its listen.http")
    .option(
      "--url <url>",
      `the server's HTTP endpoint (listen.http; default: that of -c, else http://${serverDefaults.http})`,
    )
    .option("--token <token>", "the admin token (admin: in server.yaml)")
    .option("--token-file <file>", "read the admin token from a file")
    .option("--timeout <ms>", "give up after this many milliseconds", "5000")
    .addHelpText("after", "\nThe token may also come from the environment: BURROW_ADMIN_TOKEN.");
}

/** Adds `status` to the program. */
export function statusCommand(program: Command, host: Host, start: Start): void {
  adminOptions(
    program.command("status")
      .description("Show a running server's agents and live streams (admin API).")
      .option("--json", "print the admin API's JSON as it is"),
  )
    .action((opts: StatusFlags) => start(runStatus(host, opts)));
}
