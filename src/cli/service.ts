/**
 * `burrow service server|agent|client [flags]`: prints a hardened systemd
 * unit that runs exactly that command. The flags are checked as the command
 * itself checks them; the unit gets a dynamic (or the given) user, the
 * sandbox options, a state directory as its working directory, `Restart=always`
 * with a delay, and secret files through `LoadCredential=` (so they may stay
 * readable by root only). Secrets inline (`--token`, `--key`) are refused:
 * a unit file is world-readable and its command line shows in `ps`.
 *
 * @module
 */
import { Command, type Option } from "commander";
import {
  parseAddr,
  parseAgentConfig,
  parseClientConfig,
  parseForward,
  parseServerConfig,
  type ServerConfig,
} from "../config/mod.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { parseToken } from "../token.ts";
import { agentCommands } from "./agent.ts";
import { CREDENTIAL_ENV } from "./credential.ts";
import { type Start, VERSION } from "./common.ts";
import type { Host } from "./mod.ts";
import type { Addr } from "../net.ts";
import { serverCommand } from "./server.ts";

/** Where the unit keeps state; also its working directory (the server's `state_dir: .burrow` lands below). */
export const STATE_DIR = "/var/lib/burrow";

/** A word of ExecStart=: text (quoted and escaped) or a systemd specifier such as `%d/key` (as is). */
type Word = string | { specifier: string };

/**
 * One word of a systemd command line (ExecStart=), so that systemd hands it
 * to burrow unchanged: `%` and `$` doubled (no specifier or variable
 * expansion), and quoted with C escapes unless it is plainly safe.
 */
export function systemdQuote(word: string): string {
  const s = word.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  const escaped = s.replace(/[\\"\p{Cc}]/gu, (c) => {
    const named: Record<string, string> = { "\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t" };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
  return `"${escaped}"`;
}

/** `path` made absolute against `cwd` (`.` and `..` resolved), `/`-separated. */
export function absolute(cwd: string, path: string): string {
  const parts: string[] = [];
  for (const p of (path.startsWith("/") ? path : `${cwd}/${path}`).split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return `/${parts.join("/")}`;
}

interface ServiceFlags {
  user?: string;
  exec?: string;
}

/** The unit being built: the command's words and the [Service] lines they need. */
interface Unit {
  words: Word[];
  credentials: Array<[name: string, path: string]>;
  environment: string[];
  /** Ports the command binds (server listen addresses, client --listen and --forward). */
  binds: Addr[];
  /** Paths the service reads itself (not through LoadCredential). */
  reads: string[];
  notes: string[];
}

/** Options of the wrapped command whose value is a file the service reads once, at start. */
const CREDENTIAL_FILES: Record<string, string> = {
  tokenFile: "token",
  keyFile: "key",
  ca: "ca",
  proxyFile: "proxy",
  tlsCert: "tls-cert",
  tlsKey: "tls-key",
};

/** Load `path` as the credential of option `attr` and pass it by that option's flag. */
function loadAs(cmd: Command, unit: Unit, attr: string, path: string): void {
  const credential = CREDENTIAL_FILES[attr]!;
  const flag = (cmd.options as readonly Option[]).find((o) => o.attributeName() === attr)!.long!;
  unit.credentials.push([credential, path]);
  unit.words.push(flag, { specifier: `%d/${credential}` });
}

/**
 * The files an agent's or client's config names (key_file, token_file, ca,
 * proxy_file), each loaded as a credential too and passed by its flag (flags
 * win over the file), so the unit needs nothing outside its credentials; and
 * a client's `listen:`. Returns whether the config holds a credential.
 */
async function configFiles(host: Host, cmd: Command, unit: Unit): Promise<boolean> {
  const path = unit.credentials.find(([name]) => name === "config")?.[1];
  if (path === undefined) return false;
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  const file = cmd.name() === "client"
    ? parseClientConfig(text, path)
    : parseAgentConfig(text, path);
  if ("listen" in file && file.listen && cmd.getOptionValueSource("listen") !== "cli") {
    unit.binds.push(file.listen);
  }
  if ("forwards" in file && file.forwards && cmd.getOptionValueSource("forward") !== "cli") {
    unit.binds.push(...file.forwards.map((f) => f.listen));
  }
  for (const attr of ["keyFile", "tokenFile", "ca", "proxyFile"] as const) {
    const named = file[attr];
    if (named !== undefined && cmd.getOptionValueSource(attr) !== "cli") {
      loadAs(cmd, unit, attr, absolute(host.cwd(), named));
    }
  }
  return [file.key, file.keyFile, file.token, file.tokenFile].some((v) => v);
}

/**
 * The files the server's config names as `tls: { cert, key }`: loaded as
 * credentials and passed as `--tls-cert`/`--tls-key` (which win over the
 * file), so they may stay readable by root only.
 */
function serverTlsFiles(config: ServerConfig, cmd: Command, unit: Unit): void {
  const given = ["tlsCert", "tlsKey"].filter((a) => cmd.getOptionValueSource(a) === "cli");
  if (given.length === 1) throw new UsageError("--tls-cert and --tls-key go together");
  if (config.tls.mode !== "files" || given.length > 0) return;
  loadAs(cmd, unit, "tlsCert", config.tls.cert);
  loadAs(cmd, unit, "tlsKey", config.tls.key);
}

/** Parse `[sub, ...args]` with the real command's definition (its actions do not run). */
async function parseCommand(host: Host, sub: string, args: string[]): Promise<Command> {
  const scratch = new Command("burrow")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => host.print(s.trimEnd()),
      writeErr: (s) => console.error(s.trimEnd()),
    });
  const ignore: Start = () => {};
  serverCommand(scratch, host, ignore);
  agentCommands(scratch, host, ignore);
  const cmd = scratch.commands.find((c) => c.name() === sub);
  if (!cmd || !["server", "agent", "client"].includes(sub)) {
    throw new UsageError(`service: the command must be server, agent or client, not "${sub}"`);
  }
  for (const c of scratch.commands) c.action(() => {});
  await scratch.parseAsync([sub, ...args], { from: "user" });
  return cmd;
}

/** The flags the user gave, rebuilt one by one (values as parsed), files turned into credentials. */
function rebuild(host: Host, sub: string, cmd: Command, unit: Unit): void {
  for (const opt of cmd.options as readonly Option[]) {
    const attr = opt.attributeName();
    if (cmd.getOptionValueSource(attr) !== "cli") continue;
    const name = opt.long ?? opt.short!;
    const value: unknown = cmd.getOptionValue(attr);
    if (attr === "token" || attr === "key") {
      throw new UsageError(
        `service: ${name} would put the secret into the unit file and into ps; write it to a ` +
          `file only root can read (e.g. /etc/burrow/${sub}.${attr}) and pass ${name}-file ` +
          `instead: the unit hands it to burrow with LoadCredential=`,
      );
    }
    // `--proxy <url>` and `--no-proxy` share one value: each option stands for its own kind.
    if (opt.negate !== (value === false)) continue;
    if (attr === "proxy" && typeof value === "string" && /\/\/[^/@]*@/.test(value)) {
      throw new UsageError(
        `service: --proxy with credentials would put them into the unit file and into ps; write ` +
          `the URL to a file only root can read and pass --proxy-file instead`,
      );
    }
    if (typeof value === "boolean") {
      unit.words.push(name); // a flag (`--plain`), or a negated one (`--no-watch`) set false
    } else if (Array.isArray(value)) {
      for (const v of value) unit.words.push(name, String(v));
    } else if (typeof value === "string") {
      const credential = CREDENTIAL_FILES[attr] ??
        (attr === "config" && sub !== "server" ? "config" : undefined);
      if (credential) {
        unit.credentials.push([credential, absolute(host.cwd(), value)]);
        unit.words.push(name, { specifier: `%d/${credential}` });
      } else if (attr === "config") {
        const path = absolute(host.cwd(), value);
        unit.reads.push(path);
        unit.words.push(name, path);
      } else {
        unit.words.push(name, value);
      }
    }
  }
}

/** A credential from the environment of `burrow service` (BURROW_KEY_FILE, …): only in files. */
function credentialFromEnv(host: Host, cmd: Command, unit: Unit, inConfig: boolean): void {
  if (inConfig || ["token", "tokenFile", "key", "keyFile"].some((a) => cmd.getOptionValue(a))) {
    return;
  }
  for (const [attr, variable] of Object.entries(CREDENTIAL_ENV)) {
    const value = host.env(variable);
    if (!value) continue;
    if (attr === "token" || attr === "key") {
      throw new UsageError(
        `service: ${variable} would put the secret into the unit file; set ${variable}_FILE ` +
          `(a file only root can read) instead: the unit hands it to burrow with LoadCredential=`,
      );
    }
    const credential = CREDENTIAL_FILES[attr]!;
    unit.credentials.push([credential, absolute(host.cwd(), value)]);
    unit.environment.push(`${variable}=%d/${credential}`);
    return;
  }
  throw new UsageError(
    `service: the ${cmd.name()} needs a credential: --key-file or --token-file (the unit ` +
      `loads the file with LoadCredential=)` +
      `, or key_file/token_file in its --config`,
  );
}

/** The server's listen addresses: its config file (read and checked now) with the flags over it. */
async function serverBinds(host: Host, cmd: Command, unit: Unit): Promise<void> {
  const path = unit.reads[0]!;
  let text: string;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  const config = parseServerConfig(text, path, true);
  serverTlsFiles(config, cmd, unit);
  const listen: Record<string, Addr | null> = { ...config.listen };
  for (const flag of ["agents", "socks", "clients", "http"]) {
    const v: unknown = cmd.getOptionValue(flag);
    if (typeof v === "string") listen[flag] = v === "" || v === "off" ? null : parseAddr(v);
  }
  for (const a of Object.values(listen)) if (a) unit.binds.push(a);
  const state = config.stateDir;
  if (state.startsWith("/") && !`${state}/`.startsWith(`${STATE_DIR}/`)) {
    unit.notes.push(
      `state_dir ${state} is outside ${STATE_DIR}, which is all ProtectSystem=strict lets the ` +
        `service write: remove state_dir from the config (it then lands in ${STATE_DIR}/.burrow) ` +
        `or add ReadWritePaths=${state}`,
    );
  }
}

/** The unit's text. */
function render(host: Host, sub: string, f: ServiceFlags, unit: Unit): string {
  const exec = f.exec ? [absolute(host.cwd(), f.exec)] : [...host.command];
  const execStart = [...exec, sub].map(systemdQuote).concat(
    unit.words.map((w) => (typeof w === "string" ? systemdQuote(w) : w.specifier)),
  );
  const privileged = unit.binds.some((a) => a.port > 0 && a.port < 1024);
  const deno = !f.exec && /(^|\/)deno$/.test(exec[0] ?? "");
  const lines = [
    `# burrow ${sub} as a systemd service; made by burrow ${VERSION} \`burrow service ${sub} …\`.`,
    `# Install: save as /etc/systemd/system/burrow-${sub}.service, then`,
    `#   systemctl daemon-reload && systemctl enable --now burrow-${sub}`,
    ...unit.notes.map((n) => `# Note: ${n}.`),
    "[Unit]",
    `Description=burrow ${sub}`,
    "Wants=network-online.target",
    "After=network-online.target",
    // Restart=always forever: never give up after a burst of failures.
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Type=exec",
    `ExecStart=${execStart.join(" ")}`,
    ...(sub === "server" ? ["ExecReload=/bin/kill -HUP $MAINPID"] : []),
    "Restart=always",
    "RestartSec=2s",
    ...(f.user ? [`User=${f.user}`, `Group=${f.user}`] : ["DynamicUser=yes"]),
    "StateDirectory=burrow",
    "StateDirectoryMode=0700",
    `WorkingDirectory=${STATE_DIR}`,
    ...unit.credentials.map(([name, path]) => `LoadCredential=${name}:${path}`),
    ...unit.environment.map((e) => `Environment=${e}`),
    ...(deno ? ["CacheDirectory=burrow", "Environment=DENO_DIR=%C/burrow/deno"] : []),
    "UMask=0077",
    "LimitNOFILE=65536",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "SystemCallArchitectures=native",
    "# No MemoryDenyWriteExecute=: the JavaScript JIT needs it off.",
    ...(privileged
      ? [
        "# It binds a port below 1024:",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
      ]
      : ["CapabilityBoundingSet="]),
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ];
  return lines.join("\n");
}

/** Warn about paths the sandbox hides (ProtectHome=yes) from what the service reads itself. */
function warnHidden(paths: string[]): void {
  for (const p of paths) {
    if (/^\/(home|root|run\/user)(\/|$)/.test(p)) {
      console.error(
        `burrow: warning: ${p} is under /home, /root or /run/user, which ProtectHome=yes hides ` +
          `from the service; move it (e.g. /usr/local/bin, /etc/burrow) or use --exec`,
      );
    }
  }
}

/**
 * A service logs in with a static token or an issued machine token
 * (`burrow tokens issue`), never a person's login token: refused when the
 * token file is readable here and holds one.
 */
async function machineTokenOnly(host: Host, path: unknown): Promise<void> {
  if (typeof path !== "string") return;
  const text = await host.readTextFile(path).catch(() => "");
  if (parseToken(text.trim())?.kind === "person") {
    throw new UsageError(
      `service: ${path} holds a person's login token; a service uses a machine token ` +
        "(burrow tokens issue --client NAME --ttl …)",
    );
  }
}

async function runService(host: Host, sub: string, args: string[], f: ServiceFlags): Promise<void> {
  if (f.exec !== undefined && f.exec === "") throw new UsageError("service: --exec needs a path");
  const cmd = await parseCommand(host, sub, args);
  if (sub === "client" && cmd.getOptionValue("config") === undefined) {
    if ((cmd.getOptionValue("server") as string[]).length === 0) {
      throw new UsageError("service: the client needs --server host:port or wss://host/path");
    }
    if (!cmd.getOptionValue("name")) throw new UsageError("service: the client needs --name");
  }
  if (sub === "client") await machineTokenOnly(host, cmd.getOptionValue("tokenFile"));
  const unit: Unit = {
    words: [],
    credentials: [],
    environment: [],
    binds: [],
    reads: [],
    notes: [],
  };
  rebuild(host, sub, cmd, unit);
  if (sub === "server") await serverBinds(host, cmd, unit);
  else credentialFromEnv(host, cmd, unit, await configFiles(host, cmd, unit));
  if (sub === "client") {
    const listen: unknown = cmd.getOptionValue("listen");
    if (typeof listen === "string" && listen !== "off") unit.binds.push(parseAddr(listen));
    for (const f of cmd.getOptionValue("forward") as string[]) {
      unit.binds.push(parseForward(f).listen);
    }
  }
  const exec = f.exec
    ? [absolute(host.cwd(), f.exec)]
    : host.command.filter((w) => w.startsWith("/"));
  warnHidden([...exec, ...unit.reads]);
  host.print(render(host, sub, f, unit));
}

/** Adds `service` to the program. */
export function serviceCommand(program: Command, host: Host, start: Start): void {
  // Everything after `service <command>` belongs to that command (its --help too).
  program.enablePositionalOptions();
  program.command("service")
    .description(
      "Print a hardened systemd unit that runs `burrow server|agent|client [flags]` as given.",
    )
    .usage("[--user <name>] [--exec <path>] server|agent|client [flags…]")
    .argument("<command>", "server, agent or client")
    .argument("[flags...]", "that command's flags, as you would run it (files made absolute)")
    .option("--user <name>", "run as this system user (default: a dynamic user, DynamicUser=yes)")
    .option(
      "--exec <path>",
      "the burrow executable to run (default: this one, with its runtime and entry script)",
    )
    .passThroughOptions()
    .action((sub: string, flags: string[], opts: ServiceFlags) =>
      start(runService(host, sub, flags, opts))
    );
}
