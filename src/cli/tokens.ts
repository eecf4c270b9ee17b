/**
 * `burrow tokens issue|list|revoke`: issued tokens for machines (SPEC.md
 * §6.4) through a running server's admin API, as `burrow status` reaches it.
 * (`burrow token`, singular, makes a static token and stays as it is.)
 *
 * @module
 */
import type { Command } from "commander";
import type { Start } from "./common.ts";
import type { Host } from "./mod.ts";
import { type AdminFlags, adminOptions, adminRequest, table } from "./status.ts";

interface TokenView {
  id: string;
  kind: string;
  subject: string;
  issued_at: string;
  expires_at: string;
  revoked: boolean;
}

interface IssueFlags extends AdminFlags {
  client: string;
  ttl: string;
  json?: boolean;
}

async function issue(host: Host, f: IssueFlags): Promise<void> {
  const text = await adminRequest(host, f, "tokens", {
    method: "POST",
    body: { client: f.client, ttl: f.ttl },
  });
  if (f.json) return host.print(text);
  const t = JSON.parse(text) as { id: string; token: string; expires_at: string };
  host.print(t.token);
  console.error(`token ${t.id} for ${f.client}, expires ${t.expires_at}`);
}

async function list(host: Host, f: AdminFlags & { json?: boolean }): Promise<void> {
  const text = await adminRequest(host, f, "tokens");
  if (f.json) return host.print(text);
  const { tokens } = JSON.parse(text) as { tokens: TokenView[] };
  const rows = tokens.map((t) => [
    t.id,
    t.kind,
    t.subject,
    t.issued_at,
    t.expires_at,
    t.revoked ? "revoked" : "active",
  ]);
  for (const line of table(["ID", "KIND", "SUBJECT", "ISSUED", "EXPIRES", "STATE"], rows)) {
    host.print(line);
  }
}

async function revoke(host: Host, f: AdminFlags & { all?: boolean }, arg: string): Promise<void> {
  const path = f.all
    ? `clients/${encodeURIComponent(arg)}/tokens`
    : `tokens/${encodeURIComponent(arg)}`;
  const text = await adminRequest(host, f, path, { method: "DELETE" });
  const r = JSON.parse(text) as { revoked: string | string[] };
  for (const id of [r.revoked].flat()) host.print(`revoked ${id}`);
}

/** Adds `tokens issue|list|revoke` to the program. */
export function tokensCommand(program: Command, host: Host, start: Start): void {
  const tokens = program.command("tokens")
    .description("Issue, list and revoke tokens for machines (admin API; see `burrow token`).");
  adminOptions(
    tokens.command("issue")
      .description("Issue a token for a configured client; prints it (stdout) and its id (stderr).")
      .requiredOption("--client <name>", "the client it is for (clients: in server.yaml)")
      .requiredOption("--ttl <duration>", "how long it is valid, e.g. 1h (at most tokens.max_ttl)")
      .option("--json", "print the admin API's JSON as it is"),
  ).action((opts: IssueFlags) => start(issue(host, opts)));
  adminOptions(
    tokens.command("list")
      .description("List the tokens not yet expired.")
      .option("--json", "print the admin API's JSON as it is"),
  ).action((opts: AdminFlags) => start(list(host, opts)));
  adminOptions(
    tokens.command("rotate")
      .description(
        "Sign with a new key from now on; the old one is accepted until its tokens expire.",
      ),
  ).action((opts: AdminFlags) =>
    start(
      adminRequest(host, opts, "tokens/rotate", { method: "POST" }).then((text) =>
        host.print(`signing key ${(JSON.parse(text) as { key_id: string }).key_id}`)
      ),
    )
  );
  adminOptions(
    tokens.command("revoke <id>")
      .description(
        "Revoke a token at once (its open streams are closed); with --all, all of a client's or person's.",
      )
      .option("--all", "<id> is a client name or a person's subject: revoke all their tokens"),
  ).action((id: string, opts: AdminFlags) => start(revoke(host, opts, id)));
}
