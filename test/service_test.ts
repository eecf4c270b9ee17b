/**
 * `burrow service server|agent|client [flags]`: the systemd unit it prints,
 * read back line by line, by `systemd-analyze verify`, and run as the unit
 * would run them.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type Host, main } from "../src/cli/mod.ts";
import { absolute, systemdQuote } from "../src/cli/service.ts";
import {
  AGENT_TOKEN,
  burrowCommand,
  freePorts,
  type Proc,
  repo,
  runtime as rt,
  runtimeNet,
  spawnProc,
  tunnel,
} from "./helpers.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";

interface Run {
  code: number;
  out: string[];
  err: string[];
}

/** Run `burrow service …` in this process with `host` overrides. */
async function service(args: string[], host: Partial<Host> = {}): Promise<Run> {
  const real = (await import(`../runtimes/${rt}/main.ts`) as { host: Host }).host;
  const out: string[] = [];
  const err: string[] = [];
  const consoleError = console.error;
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main({
      ...real,
      print: (l) => void out.push(...l.split("\n")),
      env: () => undefined,
      ...host,
    }, ["service", ...args]);
    return { code, out, err };
  } finally {
    console.error = consoleError;
  }
}

interface Ini {
  /** section → key → values in order (a key may repeat). */
  sections: Map<string, Map<string, string[]>>;
  get(section: string, key: string): string[];
}

/** The unit file as systemd reads it: comments dropped, `[Section]`, `Key=Value`. */
function parseIni(lines: string[]): Ini {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of lines) {
    if (line === "" || line.startsWith("#")) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      current = new Map();
      sections.set(s[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && current, `not an INI line in a section: ${line}`);
    current.set(kv[1]!, [...current.get(kv[1]!) ?? [], kv[2]!]);
  }
  return { sections, get: (section, key) => sections.get(section)?.get(key) ?? [] };
}

/** Split a systemd command line back into words (quotes, C escapes, %% and $$; %d stays). */
function splitExec(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === " ") {
      i++;
      continue;
    }
    let w = "";
    const quoted = line[i] === '"';
    if (quoted) i++;
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (quoted ? c === '"' : c === " ") break;
      if (c === "\\" && quoted) {
        const n = line[++i]!;
        if (n === "x") {
          w += String.fromCharCode(parseInt(line.slice(i + 1, i + 3), 16));
          i += 2;
        } else w += ({ n: "\n", t: "\t" } as Record<string, string>)[n] ?? n;
      } else if ((c === "%" || c === "$") && line[i + 1] === c) {
        w += c;
        i++;
      } else w += c;
    }
    if (quoted) i++;
    words.push(w);
  }
  return words;
}

const HARDENING: Array<[string, string]> = [
  ["NoNewPrivileges", "yes"],
  ["ProtectSystem", "strict"],
  ["ProtectHome", "yes"],
  ["PrivateTmp", "yes"],
  ["StateDirectory", "burrow"],
  ["WorkingDirectory", "/var/lib/burrow"],
  ["Restart", "always"],
  ["RestartSec", "2s"],
];

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-service-"));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test(`${rt}: service: systemdQuote round-trips through systemd's own splitting`, () => {
  const words = [
    "plain",
    "*.corp:80,443",
    "a b",
    'q"uote',
    "back\\slash",
    "100%",
    "$HOME",
    "",
    "\t\n",
  ];
  assert.deepEqual(splitExec(words.map(systemdQuote).join(" ")), words);
  assert.equal(systemdQuote("/usr/local/bin/burrow"), "/usr/local/bin/burrow");
  assert.equal(systemdQuote("50%"), "50%%");
  assert.equal(absolute("/etc/burrow", "../x/./y.key"), "/etc/x/y.key");
  assert.equal(absolute("/cwd", "/abs/k"), "/abs/k");
});

test(`${rt}: service: an agent unit runs exactly that command, hardened, its key as a credential`, async () => {
  const name = 'of"fice $x 100%';
  const r = await service([
    "agent",
    "--server",
    "burrow.example.com:7000",
    "--name",
    name,
    "--key-file",
    "keys/office.key",
    "--allow",
    "*.corp:80,443",
    "--allow",
    "client=alice 10.0.0.0/8:22",
    "--plain",
  ], { cwd: () => "/etc/burrow", command: ["/usr/bin/node", "/opt/burrow/main.js"] });
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.deepEqual(r.err, []);
  const ini = parseIni(r.out);
  assert.deepEqual([...ini.sections.keys()], ["Unit", "Service", "Install"]);
  for (const [k, v] of HARDENING) assert.deepEqual(ini.get("Service", k), [v], k);
  assert.deepEqual(ini.get("Service", "DynamicUser"), ["yes"]);
  assert.deepEqual(ini.get("Service", "User"), []);
  assert.deepEqual(ini.get("Service", "LoadCredential"), ["key:/etc/burrow/keys/office.key"]);
  assert.deepEqual(ini.get("Service", "AmbientCapabilities"), []);
  assert.deepEqual(ini.get("Service", "CapabilityBoundingSet"), [""]);
  assert.deepEqual(ini.get("Service", "ExecReload"), []);
  assert.deepEqual(ini.get("Install", "WantedBy"), ["multi-user.target"]);
  const exec = ini.get("Service", "ExecStart");
  assert.equal(exec.length, 1);
  assert.deepEqual(splitExec(exec[0]!), [
    "/usr/bin/node",
    "/opt/burrow/main.js",
    "agent",
    "--server",
    "burrow.example.com:7000",
    "--name",
    name,
    "--key-file",
    "%d/key", // the credentials directory: systemd fills it in
    "--allow",
    "*.corp:80,443",
    "--allow",
    "client=alice 10.0.0.0/8:22",
    "--plain",
  ]);
});

test(`${rt}: service: secrets inline are refused, pointing to files and LoadCredential`, async () => {
  for (const [flag, value] of [["--token", "agent-token-0123456789"], ["--key", "MC4CAQAw"]]) {
    const r = await service(["agent", "-s", "h:7000", "-n", "o", flag!, value!, "--allow", "*"]);
    assert.equal(r.code, 2);
    assert.equal(r.err.length, 1, r.err.join("\n"));
    assert.match(r.err[0]!, new RegExp(`^burrow: service: ${flag} would put the secret`));
    assert.match(r.err[0]!, new RegExp(`${flag}-file`));
    assert.match(r.err[0]!, /LoadCredential=/);
    assert.ok(!r.err[0]!.includes(value!), "the secret is not echoed");
    assert.deepEqual(r.out, []);
  }
  const env = await service(["client", "-s", "h:7001", "-n", "alice"], {
    env: (n) => (n === "BURROW_TOKEN" ? "alice-token-0123456789" : undefined),
  });
  assert.equal(env.code, 2);
  assert.match(env.err[0]!, /BURROW_TOKEN would put the secret .* BURROW_TOKEN_FILE/);
  const none = await service(["client", "-s", "h:7001", "-n", "alice"]);
  assert.equal(none.code, 2);
  assert.match(none.err[0]!, /needs a credential: --key-file or --token-file/);
});

test(`${rt}: service: a credential file from the environment becomes LoadCredential + Environment`, async () => {
  const r = await service(["client", "-s", "h:7001", "-n", "alice", "--agent", "office"], {
    cwd: () => "/srv",
    env: (n) => (n === "BURROW_KEY_FILE" ? "alice.key" : undefined),
    command: ["/usr/local/bin/burrow"],
  });
  assert.equal(r.code, 0, r.err.join("\n"));
  const ini = parseIni(r.out);
  assert.deepEqual(ini.get("Service", "LoadCredential"), ["key:/srv/alice.key"]);
  assert.deepEqual(ini.get("Service", "Environment"), ["BURROW_KEY_FILE=%d/key"]);
  assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!), [
    "/usr/local/bin/burrow",
    "client",
    "--server",
    "h:7001",
    "--name",
    "alice",
    "--agent",
    "office",
  ]);
});

test(`${rt}: service: ports below 1024 get CAP_NET_BIND_SERVICE, and only they`, async () => {
  const low = await service(
    [
      "client",
      "-s",
      "h:7001",
      "-n",
      "alice",
      "--token-file",
      "/etc/burrow/alice.token",
      "-l",
      "127.0.0.1:80",
    ],
    { command: ["/usr/local/bin/burrow"] },
  );
  assert.equal(low.code, 0, low.err.join("\n"));
  let ini = parseIni(low.out);
  assert.deepEqual(ini.get("Service", "AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
  assert.deepEqual(ini.get("Service", "CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
  await withDir(async (dir) => {
    writeFileSync(join(dir, "server.yaml"), "listen: { socks: '0.0.0.0:443' }\nagents: []\n");
    const args = ["server", "-c", "server.yaml"];
    const opts = { cwd: () => dir, command: ["/usr/local/bin/burrow"] };
    const s = await service(args, opts);
    assert.equal(s.code, 0, s.err.join("\n"));
    ini = parseIni(s.out);
    assert.deepEqual(ini.get("Service", "AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
    assert.deepEqual(ini.get("Service", "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert.deepEqual(ini.get("Service", "LoadCredential"), []);
    assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!), [
      "/usr/local/bin/burrow",
      "server",
      "--config",
      join(dir, "server.yaml"), // the live file: reloads read it again
    ]);
    // The flag wins over the file, as in `burrow server`.
    const high = await service([...args, "--socks", "127.0.0.1:1080", "--no-watch"], opts);
    ini = parseIni(high.out);
    assert.deepEqual(ini.get("Service", "AmbientCapabilities"), []);
    assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!).slice(-3), [
      "--socks",
      "127.0.0.1:1080",
      "--no-watch",
    ]);
    // The config is checked as the server checks it.
    writeFileSync(join(dir, "server.yaml"), "agents:\n  - name: office\n    token: short\n");
    const bad = await service(args, opts);
    assert.equal(bad.code, 2);
    assert.match(bad.err[0]!, /server\.yaml: agents\[0\]\.token: must be at least 8 characters/);
  });
});

test(`${rt}: service: --user, --exec, and the wrapped command's own usage errors`, async () => {
  await withDir(async (dir) => {
    const config = join(dir, "agent.yaml");
    writeFileSync(config, "server: h\nname: office\ntoken: '12345678'\nallow: ['*']\n");
    const r = await service([
      "--user",
      "burrow",
      "--exec",
      "/usr/local/bin/burrow",
      "agent",
      "-c",
      config,
    ]);
    assert.equal(r.code, 0, r.err.join("\n"));
    const ini = parseIni(r.out);
    assert.deepEqual(ini.get("Service", "User"), ["burrow"]);
    assert.deepEqual(ini.get("Service", "DynamicUser"), []);
    // An agent config may hold a key: it is loaded as a credential too.
    assert.deepEqual(ini.get("Service", "LoadCredential"), [`config:${config}`]);
    assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!), [
      "/usr/local/bin/burrow",
      "agent",
      "--config",
      "%d/config",
    ]);
  });
  const unknown = await service(["agent", "--colour", "blue"]);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.err.join("\n"), /unknown option '--colour'/);
  const which = await service(["demo"]);
  assert.equal(which.code, 2);
  assert.match(which.err[0]!, /must be server, agent or client/);
  const missing = await service(["client", "--name", "alice"]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.err.join("\n"), /--server/);
});

test(`${rt}: service: systemd-analyze verify accepts the unit (Debian systemd, scripts/test.ts)`, async () => {
  await withDir(async (dir) => {
    writeFileSync(join(dir, "office.key"), "private_key: x\n");
    const r = await service(
      [
        "agent",
        "-s",
        "h:7000",
        "-n",
        "office",
        "--key-file",
        "office.key",
        "--allow",
        "*.corp:443",
      ],
      { cwd: () => dir, command: ["/bin/sh"] },
    );
    assert.equal(r.code, 0, r.err.join("\n"));
    const unit = join(dir, "burrow-agent.service");
    writeFileSync(unit, r.out.join("\n") + "\n");
    const v = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8", timeout: 20000 });
    const mine = `${v.stdout}\n${v.stderr}`.split("\n").filter((l) => l.includes("burrow-agent"));
    assert.deepEqual(mine, [], `systemd-analyze verify: ${v.stdout}${v.stderr}`);
    assert.equal(v.status, 0, `${v.stdout}${v.stderr}`);
  });
});

/** How this runtime's burrow starts, as its own `Host.command` says it (Node: the bin). */
function burrowExec(): string[] {
  if (rt === "node") return [process.execPath, join(repo, "bin", "burrow.mjs")];
  const [cmd, pre] = burrowCommand(rt);
  return [cmd, ...pre];
}

/**
 * Run a unit's ExecStart= as systemd would: each LoadCredential= copied
 * into a credentials directory (`%d`), the working directory an empty
 * stand-in for /var/lib/burrow, the environment only what the unit sets.
 */
function runUnit(ini: Ini, dir: string): Proc {
  const creds = join(dir, "credentials");
  const work = join(dir, "var-lib-burrow");
  mkdirSync(creds);
  mkdirSync(work);
  for (const line of ini.get("Service", "LoadCredential")) {
    const [name, path] = line.split(/:(.*)/s) as [string, string];
    copyFileSync(path, join(creds, name));
  }
  const spec = (w: string) => w.replaceAll("%d", creds).replaceAll("%C", join(dir, "cache"));
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  for (const e of ini.get("Service", "Environment")) {
    const [k, v] = e.split(/=(.*)/s) as [string, string];
    env[k] = spec(v);
  }
  const [cmd, ...args] = splitExec(ini.get("Service", "ExecStart")[0]!).map(spec);
  return spawnProc(cmd!, args, { cwd: work, env });
}

test(`${rt}: service: the files an agent config names become credentials, and the unit runs`, async () => {
  const t = await tunnel({ tls: true, startAgent: false });
  let agent: Proc | undefined;
  try {
    await withDir(async (dir) => {
      const etc = join(dir, "etc");
      mkdirSync(etc);
      writeFileSync(join(etc, "agent.token"), `token: ${AGENT_TOKEN}\n`);
      const config = join(etc, "agent.yaml");
      // Relative paths: taken from the config's folder, not from where the unit runs.
      writeFileSync(
        config,
        `server: 127.0.0.1:${t.server.addrs.agents!.port}\nname: office\n` +
          `token_file: agent.token\nfingerprint: [${t.pin!.fingerprint}]\n` +
          `allow: ['127.0.0.1:*']\n`,
      );
      const r = await service(["agent", "--config", config, "--no-proxy"], {
        cwd: () => "/",
        command: burrowExec(),
      });
      assert.equal(r.code, 0, r.err.join("\n"));
      const ini = parseIni(r.out);
      assert.deepEqual(ini.get("Service", "LoadCredential"), [
        `config:${config}`,
        `token:${join(etc, "agent.token")}`,
      ]);
      assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!).slice(-5), [
        "--config",
        "%d/config",
        "--no-proxy",
        "--token-file",
        "%d/token",
      ]);
      // A flag wins over the file: its file is the one loaded.
      writeFileSync(join(etc, "other.token"), `token: ${AGENT_TOKEN}\n`);
      const flag = await service(["agent", "-c", config, "--token-file", join(etc, "other.token")]);
      assert.deepEqual(parseIni(flag.out).get("Service", "LoadCredential").slice(0, 2), [
        `config:${config}`,
        `token:${join(etc, "other.token")}`,
      ]);
      // The unit's command line, in its working directory with its credentials only.
      agent = runUnit(ini, dir);
      await agent.waitFor(/msg="?connected\b/, 30000);
      assert.doesNotMatch(agent.output(), /cannot read/);
      await agent.stop();
      agent = undefined;
      // A config without a credential anywhere is refused at once.
      writeFileSync(config, "server: h\nname: office\nallow: ['*']\n");
      const none = await service(["agent", "-c", config]);
      assert.equal(none.code, 2);
      assert.match(none.err[0]!, /needs a credential: .*key_file\/token_file in its --config/);
    });
  } finally {
    await agent?.stop();
    await t.close();
  }
});

test(`${rt}: service: the server's own TLS files become credentials, and the unit runs`, async () => {
  let server: Proc | undefined;
  try {
    await withDir(async (dir) => {
      const etc = join(dir, "etc");
      mkdirSync(etc);
      const own = await generateSelfSigned();
      writeFileSync(join(etc, "cert.pem"), own.cert);
      writeFileSync(join(etc, "key.pem"), own.key);
      const [agents, clients] = await freePorts(await runtimeNet(), 2);
      const config = join(etc, "server.yaml");
      writeFileSync(
        config,
        `tls: { cert: cert.pem, key: key.pem }\nlisten: { agents: '127.0.0.1:${agents}', ` +
          `clients: '127.0.0.1:${clients}', socks: '', http: '' }\n`,
      );
      const r = await service(["server", "-c", config], { command: burrowExec() });
      assert.equal(r.code, 0, r.err.join("\n"));
      const ini = parseIni(r.out);
      assert.deepEqual(ini.get("Service", "LoadCredential"), [
        `tls-cert:${join(etc, "cert.pem")}`,
        `tls-key:${join(etc, "key.pem")}`,
      ]);
      assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!).slice(-6), [
        "--config",
        config,
        "--tls-cert",
        "%d/tls-cert",
        "--tls-key",
        "%d/tls-key",
      ]);
      server = runUnit(ini, dir);
      await server.waitFor(new RegExp(`fingerprint: ${await fingerprint(own.cert)}`), 30000);
      await server.stop();
      server = undefined;
      // --tls-cert and --tls-key go together.
      const half = await service(["server", "-c", config, "--tls-cert", "x.pem"]);
      assert.equal(half.code, 2);
      assert.match(half.err[0]!, /--tls-cert and --tls-key go together/);
    });
  } finally {
    await server?.stop();
  }
});

test(`${rt}: service: systemd-analyze verify accepts a unit made from an agent config`, async () => {
  await withDir(async (dir) => {
    const config = join(dir, "agent.yaml");
    writeFileSync(
      config,
      "server: h\nname: office\nkey_file: office.key\nca: ca.pem\nproxy_file: /etc/burrow/proxy\n" +
        "allow: ['*']\n",
    );
    const r = await service(["agent", "-c", config], { command: ["/bin/sh"] });
    assert.equal(r.code, 0, r.err.join("\n"));
    const ini = parseIni(r.out);
    assert.deepEqual(ini.get("Service", "LoadCredential"), [
      `config:${config}`,
      `key:${join(dir, "office.key")}`,
      `ca:${join(dir, "ca.pem")}`,
      "proxy:/etc/burrow/proxy",
    ]);
    assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!).slice(1), [
      "agent",
      "--config",
      "%d/config",
      "--key-file",
      "%d/key",
      "--ca",
      "%d/ca",
      "--proxy-file",
      "%d/proxy",
    ]);
    const unit = join(dir, "burrow-agent.service");
    writeFileSync(unit, r.out.join("\n") + "\n");
    const v = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8", timeout: 20000 });
    assert.equal(v.error, undefined, "systemd-analyze runs (Debian systemd, scripts/test.ts)");
    const mine = `${v.stdout}\n${v.stderr}`.split("\n").filter((l) => l.includes("burrow-agent"));
    assert.deepEqual(mine, [], `systemd-analyze verify: ${v.stdout}${v.stderr}`);
    assert.equal(v.status, 0, `${v.stdout}${v.stderr}`);
  });
});

test(`${rt}: service: a client from its config: its files as credentials, its listen port`, async () => {
  await withDir(async (dir) => {
    const config = join(dir, "client.yaml");
    writeFileSync(
      config,
      "server: [eu.example, us.example]\nname: alice\ntoken_file: alice.token\n" +
        "listen: 127.0.0.1:80\n",
    );
    const r = await service(["client", "-c", config], { command: ["/usr/local/bin/burrow"] });
    assert.equal(r.code, 0, r.err.join("\n"));
    const ini = parseIni(r.out);
    assert.deepEqual(ini.get("Service", "LoadCredential"), [
      `config:${config}`,
      `token:${join(dir, "alice.token")}`,
    ]);
    assert.deepEqual(ini.get("Service", "AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
    assert.deepEqual(splitExec(ini.get("Service", "ExecStart")[0]!), [
      "/usr/local/bin/burrow",
      "client",
      "--config",
      "%d/config",
      "--token-file",
      "%d/token",
    ]);
    const noName = await service(["client", "-s", "h"]);
    assert.equal(noName.code, 2);
    assert.match(noName.err[0]!, /service: the client needs --name/);
  });
});

test(`${rt}: service: a client's forward ports count: below 1024 gets the capability`, async () => {
  const base = ["client", "-s", "h:7001", "-n", "alice", "--token-file", "/etc/burrow/a.token"];
  const opts = { command: ["/usr/local/bin/burrow"] };
  const low = await service([...base, "--listen", "off", "--forward", "443=web.corp:443"], opts);
  assert.equal(low.code, 0, low.err.join("\n"));
  assert.deepEqual(parseIni(low.out).get("Service", "AmbientCapabilities"), [
    "CAP_NET_BIND_SERVICE",
  ]);
  const high = await service([...base, "--forward", "[::1]:5432=db.corp:5432"], opts);
  assert.equal(high.code, 0, high.err.join("\n"));
  assert.deepEqual(parseIni(high.out).get("Service", "AmbientCapabilities"), []);
  await withDir(async (dir) => {
    const config = join(dir, "client.yaml");
    writeFileSync(
      config,
      "server: h\nname: alice\ntoken_file: a.token\nlisten: off\n" +
        "forwards: [{ listen: 22, target: 'git.corp:22' }]\n",
    );
    const file = await service(["client", "-c", config], opts);
    assert.equal(file.code, 0, file.err.join("\n"));
    assert.deepEqual(parseIni(file.out).get("Service", "AmbientCapabilities"), [
      "CAP_NET_BIND_SERVICE",
    ]);
    // --forward replaces the file's forwards, as in `burrow client`.
    const over = await service(["client", "-c", config, "--forward", "2222=git.corp:22"], opts);
    assert.deepEqual(parseIni(over.out).get("Service", "AmbientCapabilities"), []);
  });
});
