/**
 * The systems under test: how each is started on 127.0.0.1, how the load
 * generator reaches the target through it, which processes make it up (for
 * memory and CPU), and how it is stopped (by PID).
 */
import { execFileSync, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { DENO_V8 } from "../runtimes/deno/flags.ts";
import type { Endpoint } from "./loadgen.ts";
import { freePort, type Proc, sleep, start, stop, tail } from "./proc.ts";

export interface Ctx {
  /** The target, host:port. */
  target: string;
  /** A fresh temporary directory for this start. */
  dir: string;
  /** Repository root. */
  root: string;
  /** burrow's --log-level. */
  burrowLogLevel: string;
  /** burrow's pool settings (default {@link BURROW_POOL}). */
  burrowPool: { min: number; max: number };
  /**
   * The WAN scenario: given the port the server side listens on for the
   * agent side (burrow's agent port, sshd's port), the port the agent side
   * should connect to instead (a delay relay in front of it). Absent: direct.
   */
  link?: (serverPort: number) => Promise<number>;
  /** The address the agent side dials for `link`'s port (default 127.0.0.1). */
  linkHost?: string;
  /**
   * The bottleneck scenario (bench/fair.ts): how to start an agent-side
   * process (burrow's agent, ssh -R's `ssh`) in its network namespace, e.g.
   * `ip netns exec NAME cmd …` (which execs: the PID stays the process's).
   */
  agentSide?: (cmd: string, args: string[]) => [string, string[]];
  /** Extra arguments for burrow's agent, e.g. `--no-link`. */
  agentArgs?: string[];
  /** Extra top-level keys of burrow's server.yaml, e.g. `store:` (bench/audit.ts). */
  burrowConfig?: Record<string, unknown>;
  /**
   * More clients of burrow's server, each granted the agent like `bench`
   * (bench/fair_limit.ts: one with a `bandwidth` limit).
   */
  burrowClients?: Array<{ name: string; token: string; bandwidth?: Record<string, string> }>;
}

/** `cmd args` as `ctx.agentSide` wants it started (unchanged without it). */
function onAgentSide(ctx: Ctx, cmd: string, args: string[]): [string, string[]] {
  return ctx.agentSide ? ctx.agentSide(cmd, args) : [cmd, args];
}

export interface Running {
  endpoint: Endpoint;
  /** Root PIDs of the system's processes (their descendants count too). */
  roots: number[];
  /** Facts to report, e.g. the ssh cipher or a runtime version. */
  info: Record<string, string>;
  /** Extra figures sampled with memory, e.g. burrow's idle pool size. */
  sample?: () => Promise<Record<string, number>>;
  /** Log files, for error messages. */
  logs: string[];
  stop(): Promise<void>;
}

export interface System {
  id: string;
  label: string;
  /** Whether the idle-stream memory scenario applies (not to direct). */
  memory: boolean;
  start(ctx: Ctx): Promise<Running>;
}

async function stopAllOf(procs: Proc[]): Promise<void> {
  for (const p of [...procs].reverse()) await stop(p);
}

/** Fail early with the log's tail if a process died during start. */
function checkAlive(procs: Proc[]): void {
  for (const p of procs) {
    if (p.exitCode !== null) {
      throw new Error(`${p.name} exited (${p.exitCode}) at start:\n${tail(p.logFile)}`);
    }
  }
}

// ------------------------------------------------------------------ peers

const direct: System = {
  id: "direct",
  label: "direct",
  memory: false,
  start: (ctx) =>
    Promise.resolve({
      endpoint: { target: ctx.target },
      roots: [],
      info: {},
      logs: [],
      stop: () => Promise.resolve(),
    }),
};

/** Two plain relays chained: the floor for a two-hop tunnel. */
const relay2: System = {
  id: "relay2",
  label: "relay2 (socat×2)",
  memory: true,
  async start(ctx) {
    const [a, b] = [await freePort(), await freePort()];
    const log = path.join(ctx.dir, "socat.log");
    const socat = (listen: number, to: string) => [
      "-b",
      "65536",
      `TCP-LISTEN:${listen},bind=127.0.0.1,fork,reuseaddr,backlog=4096`,
      `TCP:${to}`,
    ];
    const p2 = start("socat hop 2", "socat", socat(b, ctx.target), { logFile: log });
    const p1 = start("socat hop 1", "socat", socat(a, `127.0.0.1:${b}`), { logFile: log });
    await sleep(100);
    checkAlive([p1, p2]);
    return {
      endpoint: { target: `127.0.0.1:${a}` },
      roots: [p1.pid, p2.pid],
      info: { cmd: "socat -b 65536 TCP-LISTEN:…,fork TCP:… (two chained)" },
      logs: [log],
      stop: () => stopAllOf([p1, p2]),
    };
  },
};

const microsocks: System = {
  id: "microsocks",
  label: "microsocks",
  memory: true,
  async start(ctx) {
    const port = await freePort();
    const log = path.join(ctx.dir, "microsocks.log");
    const p = start("microsocks", "microsocks", ["-i", "127.0.0.1", "-p", String(port)], {
      logFile: log,
    });
    await sleep(100);
    checkAlive([p]);
    return {
      endpoint: { target: ctx.target, socks: `127.0.0.1:${port}` },
      roots: [p.pid],
      info: {},
      logs: [log],
      stop: () => stopAllOf([p]),
    };
  },
};

/**
 * sshd and `ssh -R PORT` (dynamic reverse forwarding: the ssh client is the
 * SOCKS server, reached through the port sshd listens on). `pty`: hold a
 * session with a pty open (`-tt … sleep`), which makes sshd turn Nagle off.
 */
function sshR(pty: boolean): System {
  return {
    id: pty ? "ssh-pty" : "ssh",
    label: pty ? "ssh -R (pty session)" : "ssh -N -R",
    memory: true,
    async start(ctx) {
      fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // privilege separation directory
      const d = ctx.dir;
      const keygen = (file: string) =>
        execFileSync("ssh-keygen", [
          "-q",
          "-t",
          "ed25519",
          "-N",
          "",
          "-C",
          "burrow-bench",
          "-f",
          file,
        ], { stdio: "ignore" });
      keygen(path.join(d, "host_key"));
      keygen(path.join(d, "client_key"));
      fs.copyFileSync(path.join(d, "client_key.pub"), path.join(d, "authorized_keys"));
      const [sshPort, socksPort] = [await freePort(), await freePort()];
      const cfg = path.join(d, "sshd_config");
      fs.writeFileSync(
        cfg,
        [
          `Port ${sshPort}`,
          `ListenAddress 127.0.0.1`,
          `HostKey ${d}/host_key`,
          `AuthorizedKeysFile ${d}/authorized_keys`,
          `PidFile ${d}/sshd.pid`,
          `UsePAM no`,
          `StrictModes no`,
          `PermitRootLogin prohibit-password`,
          `PasswordAuthentication no`,
          `KbdInteractiveAuthentication no`,
          `AllowTcpForwarding yes`,
          `GatewayPorts no`,
          `PrintMotd no`,
          `PrintLastLog no`,
          `MaxStartups 100:30:200`,
          `LogLevel ERROR`,
          "",
        ].join("\n"),
      );
      const sshdLog = path.join(d, "sshd.log");
      const sshd = start("sshd", "/usr/sbin/sshd", ["-D", "-e", "-f", cfg], { logFile: sshdLog });
      const common = [
        "-F",
        "/dev/null",
        "-i",
        path.join(d, "client_key"),
        "-p",
        String(sshPort),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
      ];
      // The negotiated cipher, from a one-off verbose login with the same options
      // (the tunnel itself runs without -v: per-channel debug output would slow it).
      let cipher = "?";
      for (let i = 0; i < 50 && cipher === "?"; i++) {
        const r = spawnSync("ssh", [...common, "-v", "root@127.0.0.1", "true"], {
          encoding: "utf8",
          timeout: 10_000,
        });
        cipher = /kex: server->client cipher: (\S+)/.exec(r.stderr ?? "")?.[1] ?? "?";
        if (cipher === "?") {
          checkAlive([sshd]);
          await sleep(100);
        }
      }
      const sshLog = path.join(d, "ssh.log");
      // The tunnel's own connection goes through the WAN relay when there is one.
      const linkPort = ctx.link ? await ctx.link(sshPort) : sshPort;
      const tunnel = common.map((a) => a === String(sshPort) ? String(linkPort) : a);
      const host = `root@${ctx.linkHost ?? "127.0.0.1"}`;
      const fwd = [
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "LogLevel=ERROR",
        "-R",
        `127.0.0.1:${socksPort}`,
      ];
      const ssh = pty
        ? start(
          "ssh -tt -R",
          ...onAgentSide(ctx, "ssh", [...tunnel, ...fwd, "-tt", host, "sleep 100000"]),
          {
            logFile: sshLog,
            stdin: "pipe", // kept open for the session
          },
        )
        : start("ssh -N -R", ...onAgentSide(ctx, "ssh", [...tunnel, ...fwd, "-N", host]), {
          logFile: sshLog,
        });
      await sleep(100);
      checkAlive([sshd, ssh]);
      return {
        endpoint: { target: ctx.target, socks: `127.0.0.1:${socksPort}` },
        roots: [sshd.pid, ssh.pid],
        info: { cipher, session: pty ? "pty (-tt, sleep)" : "none (-N)" },
        logs: [sshdLog, sshLog],
        // ssh first: its session ends, then sshd.
        stop: () => stopAllOf([sshd, ssh]),
      };
    },
  };
}

// ----------------------------------------------------------------- burrow

type Runtime = "node" | "deno" | "bun";

export function runtimeCmd(root: string, rt: Runtime): [string, string[]] {
  const bin = (n: string) => path.join(root, "node_modules", ".bin", n);
  switch (rt) {
    case "node": {
      // BENCH_NODE_FLAGS: extra flags for a diagnosis (e.g. --trace-gc), never in a reported run.
      const extra = process.env.BENCH_NODE_FLAGS?.split(" ").filter(Boolean) ?? [];
      return [process.execPath, [
        ...extra,
        "--import",
        "tsx",
        path.join(root, "runtimes/node/main.ts"),
      ]];
    }
    case "deno":
      return [bin("deno"), ["run", "-A", DENO_V8, path.join(root, "runtimes/deno/main.ts")]];
    case "bun":
      return [bin("bun"), ["run", path.join(root, "runtimes/bun/main.ts")]];
  }
}

/**
 * Pool and limits for the benchmark: a warm pool of 16, room for the 5000
 * idle streams of the memory scenario, per-client and per-agent stream limits
 * above that.
 */
export const BURROW_POOL = { min: 16, max: 6000 };
export const BURROW_LIMITS = {
  streams_per_client: 20000,
  streams_per_agent: 20000,
  pending_handshakes: 4096,
  // One load generator on 127.0.0.1 opens thousands of streams at once.
  pending_handshakes_per_source: 4096,
};

/**
 * Whether this checkout's CLI has TLS (`tls:` in the server config, `--plain`
 * on the agent). Before TLS existed, plain TCP was the only transport and
 * neither is accepted.
 */
export function cliHasTls(root: string): boolean {
  try {
    // The CLI lived in src/cli.ts, then in src/cli/ (one file per group of commands); the
    // agent's TLS flags moved to src/cli/tls_flags.ts.
    return ["cli.ts", "cli/agent.ts", "cli/tls_flags.ts"].some((f) => {
      const p = path.join(root, "src", f);
      return fs.existsSync(p) && fs.readFileSync(p, "utf8").includes('"--plain"');
    });
  } catch {
    return false;
  }
}

/**
 * burrow over plain TCP, TLS, or WebSocket over TLS (`wss://`, the
 * agent↔server link only); `fwd`: plain TCP, and the load generator connects
 * to a local port forward of a `burrow client` (`--forward PORT=target
 * --listen off`) instead of the SOCKS5 port.
 */
function burrow(rt: Runtime, mode: "plain" | "tls" | "wss" | "fwd"): System {
  const tls = mode === "tls" || mode === "wss";
  const wss = mode === "wss";
  const fwd = mode === "fwd";
  return {
    id: `burrow-${rt}${mode === "plain" ? "" : `-${mode}`}`,
    label: `burrow ${rt}${mode === "plain" ? "" : fwd ? " forward" : ` ${mode.toUpperCase()}`}`,
    memory: !fwd,
    async start(ctx) {
      const d = ctx.dir;
      const token = () => crypto.randomBytes(18).toString("base64url");
      const clientToken = token();
      const agentToken = token();
      const [agentsPort, socksPort, httpPort, httpsPort, clientsPort, fwdPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const hasTls = cliHasTls(ctx.root);
      if (tls && !hasTls) throw new Error("this checkout's burrow CLI has no TLS yet");
      const config = {
        listen: {
          agents: `127.0.0.1:${agentsPort}`,
          socks: `127.0.0.1:${socksPort}`,
          clients: fwd ? `127.0.0.1:${clientsPort}` : "",
          http: `127.0.0.1:${httpPort}`,
          ...(wss ? { https: `127.0.0.1:${httpsPort}` } : {}),
        },
        // TLS: the server's own self-signed certificate (auto, kept in state_dir); the agent pins it.
        ...(hasTls ? { tls: tls ? "auto" : "off", state_dir: path.join(d, "state") } : {}),
        pool: ctx.burrowPool,
        limits: BURROW_LIMITS,
        agents: [{ name: "bench", token: agentToken }],
        clients: [{ name: "bench", token: clientToken }, ...(ctx.burrowClients ?? [])],
        grants: ["bench", ...(ctx.burrowClients ?? []).map((c) => c.name)].map((client) => ({
          client,
          agent: "bench",
          targets: ["127.0.0.1:*"],
        })),
        ...ctx.burrowConfig,
      };
      const cfgFile = path.join(d, "server.yaml");
      fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2) + "\n"); // JSON is YAML
      fs.writeFileSync(path.join(d, "agent.token"), agentToken + "\n", { mode: 0o600 });
      const [cmd, pre] = runtimeCmd(ctx.root, rt);
      const serverLog = path.join(d, "server.log");
      const agentLog = path.join(d, "agent.log");
      const server = start(`burrow server (${rt})`, cmd, [
        ...pre,
        "server",
        "-c",
        cfgFile,
        "--no-watch",
        "--log-level",
        ctx.burrowLogLevel,
      ], { logFile: serverLog, cwd: ctx.root });
      const procs = [server];
      let agentTls = hasTls ? ["--plain"] : [];
      if (tls) {
        let fp: string | undefined;
        for (let i = 0; i < 300 && !fp; i++) {
          fp = /TLS certificate fingerprint: (\S+)/.exec(fs.readFileSync(serverLog, "utf8"))?.[1];
          if (!fp) {
            checkAlive(procs);
            await sleep(50);
          }
        }
        if (!fp) {
          throw new Error(`burrow server (${rt}) printed no TLS fingerprint:\n${tail(serverLog)}`);
        }
        agentTls = ["--fingerprint", fp];
      }
      const serverPort = wss ? httpsPort : agentsPort;
      const linkPort = ctx.link ? await ctx.link(serverPort) : serverPort;
      const linkHost = ctx.linkHost ?? "127.0.0.1";
      const agent = start(
        `burrow agent (${rt})`,
        ...onAgentSide(ctx, cmd, [
          ...pre,
          "agent",
          "--server",
          wss ? `wss://${linkHost}:${linkPort}/burrow` : `${linkHost}:${linkPort}`,
          "--name",
          "bench",
          "--token-file",
          path.join(d, "agent.token"),
          "--allow",
          "127.0.0.1:*",
          ...agentTls,
          ...(ctx.agentArgs ?? []),
          "--log-level",
          ctx.burrowLogLevel,
        ]),
        { logFile: agentLog, cwd: ctx.root },
      );
      procs.push(agent);
      await sleep(200);
      checkAlive(procs);
      const logs = [serverLog, agentLog];
      if (fwd) {
        fs.writeFileSync(path.join(d, "client.token"), clientToken + "\n", { mode: 0o600 });
        const clientLog = path.join(d, "client.log");
        logs.push(clientLog);
        procs.push(start(`burrow client (${rt})`, cmd, [
          ...pre,
          "client",
          ...["--server", `127.0.0.1:${clientsPort}`, "--plain", "--name", "bench"],
          ...["--token-file", path.join(d, "client.token"), "--agent", "bench"],
          ...["--listen", "off", "--forward", `${fwdPort}=${ctx.target}`],
          ...["--log-level", ctx.burrowLogLevel],
        ], { logFile: clientLog, cwd: ctx.root }));
        await untilListening(clientLog, procs);
      }
      return {
        endpoint: fwd ? { target: `127.0.0.1:${fwdPort}` } : {
          target: ctx.target,
          socks: `127.0.0.1:${socksPort}`,
          user: "bench",
          pass: clientToken,
        },
        roots: procs.map((p) => p.pid),
        info: {
          pool: `min ${ctx.burrowPool.min}, max ${ctx.burrowPool.max}`,
          transport: wss
            ? "WebSocket over TLS (self-signed, pinned)"
            : tls
            ? "TLS (self-signed, pinned)"
            : "plain TCP",
          log_level: ctx.burrowLogLevel,
        },
        logs,
        sample: async (): Promise<Record<string, number>> => {
          try {
            const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
            const m = /^burrow_pool_idle\{[^}]*\} (\d+)/m.exec(text);
            const active = /^burrow_streams_active(?:\{[^}]*\})? (\d+)/m.exec(text);
            return {
              pool_idle: m ? Number(m[1]) : NaN,
              streams_active: active ? Number(active[1]) : NaN,
            };
          } catch {
            return {};
          }
        },
        stop: () => stopAllOf(procs),
      };
    },
  };
}

/** Wait (at most 15 s) until the client's log says its forward listens. */
async function untilListening(log: string, procs: Proc[]): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (fs.existsSync(log) && fs.readFileSync(log, "utf8").includes("forward listening")) return;
    checkAlive(procs);
    await sleep(50);
  }
  throw new Error(`burrow client did not listen on its forward:\n${tail(log)}`);
}

export const RUNTIMES: Runtime[] = ["node", "deno", "bun"];

/** Every system, in report order. TLS rows only with `tls`. */
export function allSystems(opts: { tls: boolean }): System[] {
  const list = [
    direct,
    relay2,
    microsocks,
    sshR(false),
    sshR(true),
    ...RUNTIMES.map((rt) => burrow(rt, "plain")),
    ...RUNTIMES.map((rt) => burrow(rt, "fwd")),
  ];
  if (opts.tls) {
    list.push(...RUNTIMES.map((rt) => burrow(rt, "tls")));
    list.push(...RUNTIMES.map((rt) => burrow(rt, "wss")));
  }
  return list;
}
