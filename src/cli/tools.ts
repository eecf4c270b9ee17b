/**
 * `burrow token`, `burrow keygen` and `burrow demo`.
 *
 * @module
 */
import type { Command } from "commander";
import { fmt } from "../addr.ts";
import { Agent } from "../agent.ts";
import {
  generateKeyPair,
  randomBytes,
  toBase64,
  toHex,
  tokenCredential,
  tokenHash,
} from "../auth.ts";
import { parseAddr, parseServerConfig } from "../config/mod.ts";
import { parseRule } from "../policy.ts";
import { fingerprint, generateSelfSigned } from "../tls.ts";
import { logger, logLevelOption, software, type Start, untilSignal } from "./common.ts";
import type { Host } from "./mod.ts";
import { startServer } from "./server.ts";
import { UsageError } from "../errors.ts";

/**
 * Print `lines`, or with `out` write them to that file (mode 0600) and
 * print only `public`: what goes into the server's config.
 */
async function emit(host: Host, lines: string[], out: string | undefined, pub: string) {
  if (out === undefined) return lines.forEach((l) => host.print(l));
  const exists = await host.readTextFile(out).then(() => true, () => false);
  if (exists) throw new UsageError(`${out} exists already: not overwriting a key or token`);
  try {
    await host.writeSecretFile(out, lines.join("\n") + "\n");
  } catch (e) {
    throw new UsageError(`cannot write ${out}: ${(e as Error).message}`);
  }
  host.print(`# written to ${out} (mode 0600); for the server config:`);
  host.print(pub);
}

function runToken(host: Host, out: string | undefined): Promise<void> {
  const token = toBase64(randomBytes(24)).replace(/\+/g, "-").replace(/\//g, "_");
  const hash = `token_hash: sha256:${toHex(tokenHash(token))}`;
  return emit(
    host,
    [
      `# burrow token: give the token to the agent or client (--token-file),`,
      `# put the hash in the server config (token_hash:), which then never holds the token.`,
      `token: ${token}`,
      hash,
    ],
    out,
    hash,
  );
}

async function runKeygen(host: Host, out: string | undefined): Promise<void> {
  const k = await generateKeyPair();
  await emit(
    host,
    [
      `# burrow Ed25519 key pair`,
      `# server config (agents: or clients: entry):  public_key: ${k.publicKey}`,
      `# keep secret; pass with --key-file:`,
      `public_key: ${k.publicKey}`,
      `private_key: ${k.privateKey}`,
    ],
    out,
    `public_key: ${k.publicKey}`,
  );
}

interface DemoFlags {
  socks: string;
  agents: string;
  target: string;
  logLevel: string;
}

/** Server + agent + a small HTTP target on loopback, all in this process. */
async function runDemo(host: Host, f: DemoFlags): Promise<void> {
  const log = logger(f.logLevel);
  const token = toBase64(randomBytes(12)).replace(/[+/=]/g, "x");
  const agentToken = toBase64(randomBytes(12)).replace(/[+/=]/g, "x");
  const config = parseServerConfig(
    JSON.stringify({
      listen: { agents: f.agents, socks: f.socks, clients: "", http: "" },
      agents: [{ name: "office", token: agentToken }],
      clients: [{ name: "demo", token }],
      grants: [{ client: "demo", agent: "office", targets: ["*"] }],
    }),
    "(demo config)",
  );
  const target = await host.serveHttp(
    parseAddr(f.target),
    () =>
      new Response("Hello from inside the closed network, through burrow.\n", {
        headers: { "content-type": "text/plain" },
      }),
  );
  // TLS as recommended: a self-signed certificate, the agent pins its fingerprint.
  const tls = await generateSelfSigned();
  const pin = await fingerprint(tls.cert);
  const s = await startServer(host, config, log.with({ role: "server" }), tls);
  const agent = new Agent(host.net, {
    server: s.server.addrs.agents!,
    tls: { fingerprint: pin },
    name: "office",
    credential: tokenCredential(agentToken),
    rules: [
      ...parseRule(`localhost:${target.addr.port}`),
      ...parseRule(`127.0.0.0/8:${target.addr.port}`),
    ],
    software: software(host),
  }, log.with({ role: "agent" }));
  agent.start();
  await agent.connected();
  host.print("");
  host.print(
    `burrow demo is up on ${host.net.runtime}: server, agent "office" and an HTTP target the agent can reach.`,
  );
  host.print(`The agent reaches the server over TLS, pinned to fingerprint ${pin}.`);
  host.print(`Try:`);
  host.print(
    `  curl --socks5-hostname ${
      fmt(s.server.addrs.socks)
    } --proxy-user demo:${token} http://localhost:${target.addr.port}/`,
  );
  host.print(`Press Ctrl-C to stop.`);
  host.print("");
  await untilSignal(host, async () => {
    await agent.stop();
    await s.stop();
    await target.close();
  }, log);
}

/** Adds `token`, `keygen` and `demo` to the program. */
export function toolCommands(program: Command, host: Host, start: Start): void {
  program.command("token")
    .description("Print a new random token and the token_hash for the server config.")
    .option("-o, --out <file>", "write it to this file (mode 0600), print only the token_hash")
    .action((o: { out?: string }) => start(runToken(host, o.out)));

  program.command("keygen")
    .description("Print a new Ed25519 key pair for an agent or client.")
    .option("-o, --out <file>", "write it to this file (mode 0600), print only the public_key")
    .action((o: { out?: string }) => start(runKeygen(host, o.out)));

  program.command("demo")
    .description("Server, agent and an HTTP target on loopback, with a curl line to try.")
    .option("--socks <addr>", "SOCKS5 port", "127.0.0.1:1080")
    .option("--agents <addr>", "agent port", "127.0.0.1:7000")
    .option("--target <addr>", "the demo HTTP target", "127.0.0.1:8080")
    .addOption(logLevelOption())
    .action((opts: DemoFlags) => start(runDemo(host, opts)));
}
