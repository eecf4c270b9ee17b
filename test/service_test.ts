/**
 * `burrow service server|agent|client [flags]`: the systemd unit it prints,
 * read back line by line (and by `systemd-analyze verify` where it exists).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type Host, main } from "../src/cli/mod.ts";
import { absolute, systemdQuote } from "../src/cli/service.ts";
import { runtime as rt } from "./helpers.ts";

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

test(`${rt}: service: systemd-analyze verify accepts the unit (where systemd is installed)`, async () => {
  const has =
    spawnSync("sh", ["-c", "command -v systemd-analyze"], { stdio: "ignore" }).status === 0;
  if (!has) return; // nothing more to check than the lines above
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
