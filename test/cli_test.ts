/**
 * The CLI as a user meets it: help, keygen/token output that the other
 * commands accept as it is, and clear errors for bad input.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Host } from "../src/cli/mod.ts";
import { main } from "../src/cli/mod.ts";
import { VERSION_MAX, VERSION_MIN } from "../src/messages.ts";
import { burrow, runtime } from "./helpers.ts";
import { generateKeyPair } from "../src/auth.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  echoTarget,
  freePort,
  freePorts,
  runtimeNet,
  socks,
  tunnel,
} from "./helpers.ts";
import { DEFAULT_PORTS, parseServer, parseServerConfig } from "../src/config/mod.ts";
import { restartOnly } from "../src/cli/server.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";

const rt = runtime;

interface Run {
  code: number;
  /** Lines printed to standard output. */
  out: string[];
  /** What went to console.error (error reports and log lines), one entry per call. */
  err: string[];
}

/**
 * Run `main` in this process. A command that runs until a signal gets
 * SIGTERM once `until(err)` holds, or after 5 s at the latest.
 */
async function capture(
  args: string[],
  opts: { host?: Partial<Host>; until?: (err: string[]) => boolean } = {},
): Promise<Run> {
  const { host } = await import(`../runtimes/${rt}/main.ts`) as { host: Host };
  const out: string[] = [];
  const err: string[] = [];
  const handlers = new Set<() => void>();
  const onSignal: Host["onSignal"] = (signal, fn) => {
    if (signal === "SIGHUP") return () => {};
    handlers.add(fn);
    return () => void handlers.delete(fn);
  };
  const consoleError = console.error;
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  let running = true;
  const signaller = (async () => {
    for (let i = 0; i < 250 && running; i++) {
      if (handlers.size > 0 && (!opts.until || opts.until(err))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const fn of [...handlers]) fn();
  })();
  try {
    const code = await main(
      { ...host, onSignal, print: (l) => void out.push(l), ...opts.host },
      args,
    );
    return { code, out, err };
  } finally {
    running = false;
    await signaller;
    console.error = consoleError;
  }
}

/** A temporary directory for the duration of `fn`. */
async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-cli-"));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Exit code 2 and exactly one line on stderr: `burrow: ` and a message matching `re` (or starting with it). */
function usageFailure(r: Run, re: RegExp | string): void {
  assert.equal(r.code, 2, r.err.join("\n"));
  assert.equal(r.err.length, 1, r.err.join("\n"));
  assert.ok(!r.err[0]!.includes("\n"), r.err[0]);
  assert.match(r.err[0]!, /^burrow: /);
  if (typeof re === "string") assert.ok(r.err[0]!.startsWith(re), `${r.err[0]} starts with ${re}`);
  else assert.match(r.err[0]!, re);
}

test(`${rt}: cli: --help lists every command`, async () => {
  const { code, out } = await capture(["--help"]);
  assert.equal(code, 0);
  for (
    const cmd of [
      "server",
      "agent",
      "client",
      "keygen",
      "token",
      "demo",
      "fingerprint",
      "service",
      "status",
    ]
  ) {
    assert.match(out.join("\n"), new RegExp(`\\b${cmd}\\b`));
  }
});

test(`${rt}: cli: keygen and token print what the config and --key-file/--token-file take`, async () => {
  const k = await capture(["keygen"]);
  assert.equal(k.code, 0);
  const pub = /^public_key: (\S+)$/m.exec(k.out.join("\n"))?.[1];
  assert.ok(pub && Buffer.from(pub, "base64").length === 32);
  const t = await capture(["token"]);
  assert.match(t.out.join("\n"), /^token_hash: sha256:[0-9a-f]{64}$/m);
  const dir = mkdtempSync(join(tmpdir(), "burrow-cli-"));
  try {
    // The agent takes the keygen output file as it is (it fails later, at the missing --allow).
    writeFileSync(join(dir, "office.key"), k.out.join("\n"));
    writeFileSync(join(dir, "alice.token"), t.out.join("\n"));
    const bad = await capture([
      "agent",
      "--server",
      "127.0.0.1:1",
      "--name",
      "office",
      "--key-file",
      join(dir, "office.key"),
    ]);
    assert.equal(bad.code, 2);
    writeFileSync(join(dir, "broken.key"), "private_key: not-a-key");
    const broken = await capture([
      "agent",
      "--server",
      "127.0.0.1:1",
      "--name",
      "o",
      "--key-file",
      join(dir, "broken.key"),
      "--allow",
      "*",
    ]);
    assert.equal(broken.code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${rt}: cli: a bad config is refused at start naming the file, the path and the problem`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-cli-"));
  const file = join(dir, "server.yaml");
  writeFileSync(file, "agents:\n  - name: office\n    token: short\n");
  const p = burrow(rt, ["server", "-c", file]);
  try {
    const line = await p.waitFor(/burrow: .*/);
    assert.equal(line, `burrow: ${file}: agents[0].token: must be at least 8 characters`);
    assert.equal(await p.exited, 2);
    assert.ok(!p.output().includes("short"), "the token's value is not echoed");
  } finally {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${rt}: cli: --version names burrow's version, the runtime and the protocol versions`, async () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  const g = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } };
  const version = g.Deno?.version.deno ?? g.Bun?.version ?? process.versions.node;
  const { code, out } = await capture(["--version"]);
  assert.equal(code, 0);
  assert.deepEqual(out, [
    `burrow ${pkg.version} (${rt} ${version}; protocol ${VERSION_MIN}..${VERSION_MAX})`,
  ]);
});

test(`${rt}: cli: bad configuration is exit 2 and one line, in the file or in a flag`, async () => {
  await withDir(async (dir) => {
    const file = join(dir, "server.yaml");
    writeFileSync(file, "heartbeat: { interval: 5 parsecs }\n");
    usageFailure(
      await capture(["server", "-c", file]),
      `burrow: ${file}: heartbeat.interval: Cannot parse duration "5 parsecs"`,
    );
    writeFileSync(file, "listen: { socks: 'nope' }\n");
    usageFailure(
      await capture(["server", "-c", file]),
      /: listen\.socks: Cannot parse address "nope"/,
    );
    writeFileSync(file, "limits: { pending_handshakes_per_source: 0 }\n");
    usageFailure(
      await capture(["server", "-c", file]),
      /: limits\.pending_handshakes_per_source: must be an integer/,
    );
    writeFileSync(file, "agents: []\n");
    usageFailure(
      await capture(["server", "-c", file, "--socks", "nope"]),
      /^burrow: Cannot parse address "nope"/,
    );
    usageFailure(
      await capture(["server", "-c", join(dir, "missing.yaml")]),
      /missing\.yaml: cannot read/,
    );
    const args = ["agent", "--server", "127.0.0.1:1", "--name", "o", "--token", "12345678"];
    usageFailure(
      await capture([...args, "--allow", "x:99999"]),
      /^burrow: Cannot parse rule "x:99999"/,
    );
    usageFailure(
      await capture([...args, "--allow", "*.corp:53/udp", "--allow", "x:53/sctp"]),
      /^burrow: Cannot parse rule "x:53\/sctp": unknown protocol "sctp"/,
    );
    usageFailure(
      await capture([...args, "--allow", "*", "--fingerprint", "zz"]),
      /SHA-256 fingerprint/,
    );
    usageFailure(
      await capture([...args, "--allow", "*", "--log-level", "loud"]),
      /--log-level must be/,
    );
    usageFailure(
      await capture(["client", "--server", "a:b:c", "--name", "o", "--token", "12345678"]),
      /Cannot parse address/,
    );
  });
});

test(`${rt}: cli: the agent's config file is checked path by path`, async () => {
  await withDir(async (dir) => {
    const file = join(dir, "agent.yaml");
    writeFileSync(
      file,
      "server: 127.0.0.1:1\nname: office\ntoken: '12345678'\nallow: ['*.corp:80', 'x:99999']\n",
    );
    usageFailure(
      await capture(["agent", "-c", file]),
      `burrow: ${file}: allow[1]: Cannot parse rule "x:99999"`,
    );
    writeFileSync(file, "server: 127.0.0.1:1\ncolour: blue\n");
    usageFailure(await capture(["agent", "-c", file]), /agent\.yaml: colour: unknown key/);
    writeFileSync(file, "server: [1, 2\n");
    usageFailure(
      await capture(["agent", "-c", file]),
      /agent\.yaml: \(top level\): not valid YAML or JSON/,
    );
    writeFileSync(file, "name: office\ntoken: '12345678'\nallow: ['*']\n");
    usageFailure(await capture(["agent", "-c", file]), /^burrow: agent needs --server/);
  });
});

test(`${rt}: cli: the agent merges its flags over its config file, flags win`, async () => {
  await withDir(async (dir) => {
    const file = join(dir, "agent.yaml");
    writeFileSync(join(dir, "agent.token"), "token: agent-token-0123456789\n");
    // Port 1 on loopback refuses: the agent logs the failed session (with its name) and retries.
    writeFileSync(
      file,
      `server: 127.0.0.1:1\nname: from-file\ntoken_file: ${
        JSON.stringify(join(dir, "agent.token"))
      }\n`,
    );
    const r = await capture([
      "agent",
      "-c",
      file,
      "--name",
      "from-flag",
      "--allow",
      "*.corp:80",
      "--plain",
    ], {
      until: (err) => err.some((l) => /session failed/.test(l)),
    });
    assert.equal(r.code, 0, r.err.join("\n"));
    const failed = r.err.find((l) => /session failed/.test(l));
    assert.ok(failed, r.err.join("\n"));
    assert.match(failed, /agent=from-flag/);
    assert.ok(!r.err.some((l) => l.includes("from-file")));
  });
});

test(`${rt}: cli: a bug is exit 1 with its stack, not a usage error`, async () => {
  const r = await capture(["token"], {
    host: {
      print: () => {
        throw new TypeError("a bug, not bad input");
      },
    },
  });
  assert.equal(r.code, 1);
  assert.equal(r.err.length, 1);
  assert.match(r.err[0]!, /^burrow: TypeError: a bug, not bad input\n/);
  assert.match(r.err[0]!, /\n\s+at /);
});

test(`${rt}: cli: agent credentials from the environment; flags and the config file win`, async () => {
  const t = await tunnel({ startAgent: false });
  try {
    const args = [
      "agent",
      "--server",
      `127.0.0.1:${t.server.addrs.agents!.port}`,
      "--name",
      "office",
      "--plain",
      "--allow",
      "127.0.0.1:*",
    ];
    const until = (err: string[]) =>
      err.some((l) => /msg="?connected\b|refused our credentials/.test(l));
    const run = (extra: string[], vars: Record<string, string>) =>
      capture([...args, ...extra], { host: { env: (n) => vars[n] }, until });
    const connected = (r: Run) => {
      assert.equal(r.code, 0, r.err.join("\n"));
      assert.ok(r.err.some((l) => /msg="?connected\b/.test(l)), r.err.join("\n"));
      assert.ok(!r.err.join("\n").includes(AGENT_TOKEN), "the token is never logged");
    };
    connected(await run([], { BURROW_TOKEN: AGENT_TOKEN }));
    await withDir(async (dir) => {
      const file = join(dir, "agent.token");
      writeFileSync(file, `token: ${AGENT_TOKEN}\n`); // as `burrow token` prints it
      connected(await run([], { BURROW_TOKEN_FILE: file, BURROW_TOKEN: "" }));
      // The config file's credential wins over the environment's.
      const config = join(dir, "agent.yaml");
      writeFileSync(config, `token_file: ${JSON.stringify(file)}\n`);
      connected(await run(["-c", config], { BURROW_TOKEN: "wrong-token-0123456789" }));
    });
    // A flag wins over the environment.
    const flag = await run(["--token", "wrong-token-0123456789"], { BURROW_TOKEN: AGENT_TOKEN });
    assert.ok(flag.err.some((l) => /refused our credentials/.test(l)), flag.err.join("\n"));
    // Nothing anywhere: one line that names the variables too.
    usageFailure(await run([], {}), /needs a credential: .*BURROW_KEY_FILE/);
  } finally {
    await t.close();
  }
});

test(`${rt}: cli: BURROW_KEY_FILE takes the keygen output, BURROW_KEY the bare key`, async () => {
  const k = await generateKeyPair();
  const t = await tunnel({
    startAgent: false,
    config: { agents: [{ name: "office", public_key: k.publicKey }], grants: [] },
  });
  try {
    const args = ["agent", "-s", `127.0.0.1:${t.server.addrs.agents!.port}`, "-n", "office"];
    const until = (err: string[]) =>
      err.some((l) => /msg="?connected\b|refused our credentials/.test(l));
    const run = (vars: Record<string, string>) =>
      capture([...args, "--plain", "--allow", "127.0.0.1:*"], {
        host: { env: (n) => vars[n] },
        until,
      });
    await withDir(async (dir) => {
      const file = join(dir, "office.key");
      writeFileSync(file, `public_key: ${k.publicKey}\nprivate_key: ${k.privateKey}\n`);
      for (const vars of [{ BURROW_KEY_FILE: file }, { BURROW_KEY: k.privateKey }]) {
        const r = await run(vars);
        assert.equal(r.code, 0, r.err.join("\n"));
        assert.ok(r.err.some((l) => /msg="?connected\b/.test(l)), r.err.join("\n"));
        assert.ok(!r.err.join("\n").includes(k.privateKey), "the key is never logged");
      }
    });
  } finally {
    await t.close();
  }
});

// ------------------------------------------------------------ the first hour (#31)

test(`${rt}: cli: one agent on two servers with certificates of their own, a pin for each`, async () => {
  const two = [await tunnel({ tls: true, startAgent: false })];
  two.push(await tunnel({ tls: true, startAgent: false }));
  try {
    const [p1, p2] = two.map((t) => t.pin!.fingerprint);
    assert.notEqual(p1, p2);
    const servers = two.map((t) => `127.0.0.1:${t.server.addrs.agents!.port}`);
    // log lines of one turn come in one write: count in the text
    const until = (err: string[]) => err.join("\n").match(/msg="?connected\b/g)?.length === 2;
    const connectedTwice = (r: Run) => {
      assert.equal(r.code, 0, r.err.join("\n"));
      assert.ok(until(r.err), r.err.join("\n"));
      assert.ok(!r.err.some((l) => /fingerprint mismatch/.test(l)), r.err.join("\n"));
    };
    await withDir(async (dir) => {
      // The config file: server and fingerprint as lists; the token file beside it.
      writeFileSync(join(dir, "agent.token"), `token: ${AGENT_TOKEN}\n`);
      const config = join(dir, "agent.yaml");
      writeFileSync(
        config,
        `server: [${servers.join(", ")}]\nname: office\ntoken_file: agent.token\n` +
          `allow: ['127.0.0.1:*']\nfingerprint:\n  - ${p1}\n  - ${p2!.toLowerCase()}\n`,
      );
      connectedTwice(await capture(["agent", "-c", config], { until }));
    });
    // The flags: --fingerprint repeated (any of them matches).
    const flags = ["agent", "-n", "office", "--token", AGENT_TOKEN, "--allow", "127.0.0.1:*"];
    connectedTwice(
      await capture(
        [
          ...flags,
          ...servers.flatMap((s) => ["-s", s]),
          "--fingerprint",
          p1!,
          "--fingerprint",
          p2!,
        ],
        { until },
      ),
    );
    // One pin only: the other server is refused with both fingerprints named.
    const one = await capture([
      ...flags,
      ...servers.flatMap((s) => ["-s", s]),
      "--fingerprint",
      p1!,
    ], {
      until: (err) => err.some((l) => /fingerprint mismatch/.test(l)),
    });
    assert.ok(one.err.some((l) => l.includes(`expected ${p1}, got ${p2}`)), one.err.join("\n"));
  } finally {
    for (const t of two) await t.close();
  }
});

test(`${rt}: cli: burrow fingerprint reads the certificate, never makes one; state_dir beside its config`, async () => {
  await withDir(async (dir) => {
    const etc = join(dir, "etc");
    mkdirSync(etc);
    const config = join(etc, "server.yaml");
    const [agents, clients] = await freePorts(await runtimeNet(), 2);
    writeFileSync(
      config,
      `state_dir: state\nlisten: { agents: '127.0.0.1:${agents}', clients: '127.0.0.1:${clients}', ` +
        `socks: '', http: '' }\n`,
    );
    // No certificate yet: one line saying so, and nothing is made.
    usageFailure(
      await capture(["fingerprint", "-c", config]),
      /server\.yaml: no certificate yet: .*etc\/state\/tls\/cert\.pem does not exist; `burrow server/,
    );
    assert.ok(!existsSync(join(etc, "state")), "fingerprint made no state_dir");
    // The server makes it in state_dir, taken from the config's folder (not the current one).
    const server = await capture(["server", "-c", config, "--no-watch"], {
      until: (err) => err.some((l) => /msg="?server started|listening/.test(l)),
    });
    assert.equal(server.code, 0, server.err.join("\n"));
    const cert = readFileSync(join(etc, "state", "tls", "cert.pem"), "utf8");
    const fp = await fingerprint(cert);
    assert.ok(server.out.includes(`TLS certificate fingerprint: ${fp}`), server.out.join("\n"));
    const r = await capture(["fingerprint", "-c", config]);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.deepEqual(r.out, [fp]);
    // Several servers, one line each; tls files beside their config; tls off says so.
    const own = await generateSelfSigned();
    writeFileSync(join(etc, "own.pem"), own.cert);
    const files = join(etc, "files.yaml");
    writeFileSync(files, "tls: { cert: own.pem, key: own.key }\n");
    const two = await capture(["fingerprint", "-c", config, "-c", files]);
    assert.deepEqual(two.out, [fp, await fingerprint(own.cert)]);
    const off = join(etc, "off.yaml");
    writeFileSync(off, "tls: off\n");
    usageFailure(await capture(["fingerprint", "-c", off]), /tls: off: .*nothing to pin/);
    usageFailure(await capture(["fingerprint"]), /fingerprint needs -c server\.yaml/);
  });
});

test(`${rt}: cli: a reload that changes listen or tls warns, naming the setting, and applies the rest`, async () => {
  await withDir(async (dir) => {
    const config = join(dir, "server.yaml");
    const base = "tls: off\nlisten: { agents: '127.0.0.1:0', clients: '', socks: '127.0.0.1:0', " +
      "http: '' }\n";
    writeFileSync(config, base);
    let changed = false;
    const r = await capture(["server", "-c", config], {
      until: (err) => {
        if (!changed && err.some((l) => /msg="?server started|listening/.test(l))) {
          changed = true;
          writeFileSync(
            config,
            base.replace("socks: '127.0.0.1:0'", "socks: '127.0.0.1:1'").replace("off", "auto") +
              "agents: [{ name: office, token: '12345678' }]\n",
          );
        }
        return err.some((l) => /config reloaded/.test(l));
      },
    });
    assert.equal(r.code, 0, r.err.join("\n"));
    const warned = r.err.filter((l) => /takes effect only after a restart/.test(l));
    assert.equal(warned.length, 2, r.err.join("\n"));
    assert.match(warned[0]!, /level=warn .*setting=listen\.socks/);
    assert.match(warned[1]!, /setting=tls/);
    assert.ok(r.err.some((l) => /config reloaded.* agents=1/.test(l)), r.err.join("\n"));
  });
});

test("cli: a proxy_protocol change on a TLS listener takes a restart; on the plain SOCKS5 port not", () => {
  const cfg = (tls: string, ports: string) =>
    parseServerConfig(`tls: ${tls}\ntrusted_proxies: [::1]\nproxy_protocol: [${ports}]`, "s.yaml");
  assert.deepEqual(restartOnly(cfg("auto", "socks"), cfg("auto", "socks, agents")), [
    "proxy_protocol",
  ]);
  assert.deepEqual(restartOnly(cfg("auto", "https, clients"), cfg("auto", "clients, https")), []);
  assert.deepEqual(restartOnly(cfg("auto", "agents"), cfg("auto", "agents, socks")), []);
  assert.deepEqual(restartOnly(cfg("off", "socks"), cfg("off", "socks, agents")), []);
});

test(`${rt}: cli: keygen -o and token -o write the file (0600), print what the server needs`, async () => {
  await withDir(async (dir) => {
    const key = join(dir, "keys", "office.key");
    const k = await capture(["keygen", "-o", key]);
    assert.equal(k.code, 0, k.err.join("\n"));
    const text = readFileSync(key, "utf8");
    const pub = /^public_key: (\S+)$/m.exec(text)?.[1];
    assert.ok(pub && /^private_key: \S+$/m.test(text), text);
    assert.deepEqual(k.out, [
      `# written to ${key} (mode 0600); for the server config:`,
      `public_key: ${pub}`,
    ]);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    usageFailure(await capture(["keygen", "-o", key]), /office\.key exists already/);
    assert.equal(readFileSync(key, "utf8"), text, "not overwritten");
    const tok = join(dir, "alice.token");
    const t = await capture(["token", "--out", tok]);
    assert.equal(t.code, 0, t.err.join("\n"));
    const hash = /^token_hash: (sha256:[0-9a-f]{64})$/m.exec(readFileSync(tok, "utf8"))?.[1];
    assert.ok(hash);
    assert.equal(t.out[1], `token_hash: ${hash}`);
    assert.equal(statSync(tok).mode & 0o777, 0o600);
  });
});

test(`${rt}: cli: --server host dials the default port; ws:// is plain without --plain`, async () => {
  assert.deepEqual(parseServer("burrow.example.com", DEFAULT_PORTS.agent).addr, {
    host: "burrow.example.com",
    port: 7000,
  });
  assert.deepEqual(parseServer("[::1]", DEFAULT_PORTS.client).addr, { host: "::1", port: 7001 });
  assert.deepEqual(parseServer("10.0.0.5:8000", 7001).addr, { host: "10.0.0.5", port: 8000 });
  assert.equal(parseServer("wss://burrow.example.com", 7000).addr.port, 443);
  assert.equal(parseServer("ws://burrow.example.com", 7000).addr.port, 80);
  const flags = ["--name", "o", "--token", "12345678"];
  // The agent's and the client's default ports, as the failed dial names them.
  const agent = await capture(["agent", "-s", "127.0.0.1", ...flags, "--allow", "*", "--plain"], {
    until: (err) => err.some((l) => /session failed/.test(l)),
  });
  assert.ok(agent.err.some((l) => /session failed.* server=127\.0\.0\.1:7000/.test(l)));
  const t = await tunnel({
    startAgent: false,
    config: {
      tls: "off",
      listen: { agents: "127.0.0.1:0", socks: "", clients: "", http: "", https: "127.0.0.1:0" },
    },
  });
  try {
    const url = `ws://127.0.0.1:${t.server.addrs.https!.port}`;
    const args = ["agent", "-s", url, "-n", "office", "--token", AGENT_TOKEN, "--allow", "*"];
    usageFailure(
      await capture([...args, "--fingerprint", "ab".repeat(32)]),
      /a ws:\/\/ server is plain: --fingerprint and --ca need wss:\/\//,
    );
    const r = await capture(args, {
      until: (err) => err.some((l) => /msg="?connected\b|session failed/.test(l)),
    });
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.ok(r.err.some((l) => /msg="?connected\b/.test(l)), r.err.join("\n"));
  } finally {
    await t.close();
  }
});

test(`${rt}: cli: burrow status takes listen.http from -c, and says what to pass when nothing answers`, async () => {
  await withDir(async (dir) => {
    const config = join(dir, "server.yaml");
    const port = await freePort(await runtimeNet());
    writeFileSync(config, `listen: { http: '0.0.0.0:${port}' }\n`);
    usageFailure(
      await capture(["status", "-c", config, "--token", "x".repeat(16)]),
      new RegExp(
        `^burrow: cannot reach http://127\\.0\\.0\\.1:${port}: .*(ECONNREFUSED|Connection refused).*: ` +
          `is the server running, and is ` +
          `this its listen\\.http\\?$`,
      ),
    );
    writeFileSync(config, "listen: { http: '' }\n");
    usageFailure(
      await capture(["status", "-c", config, "--token", "x".repeat(16)]),
      /server\.yaml: listen\.http is off: pass --url/,
    );
  });
});

test(`${rt}: cli: a client proxy from its config file: a list of pins, files beside it, listen`, async () => {
  const t = await tunnel({ tls: true });
  const net = await runtimeNet();
  const echo = await echoTarget(net);
  try {
    await withDir(async (dir) => {
      writeFileSync(join(dir, "alice.token"), `token: ${ALICE_TOKEN}\n`);
      const stranger = await fingerprint((await generateSelfSigned()).cert);
      const port = await freePort(net);
      const config = join(dir, "client.yaml");
      writeFileSync(
        config,
        `server: 127.0.0.1:${t.server.addrs.clients!.port}\nname: alice\n` +
          `token_file: alice.token\nfingerprint: [${stranger}, ${t.pin!.fingerprint}]\n` +
          `agent: office\nlisten: 127.0.0.1:${port}\n`,
      );
      let reply: Promise<number | null> | undefined;
      let answered = false;
      const r = await capture(["client", "-c", config], {
        until: (err) => {
          if (!reply && err.some((l) => /client proxy listening/.test(l))) {
            reply = socks(net, { host: "127.0.0.1", port }, "", "", {
              type: "ipv4",
              host: "127.0.0.1",
              port: echo.addr.port,
            }).then((s) => (s.conn.close(), s.reply)).finally(() => (answered = true));
          }
          return answered;
        },
      });
      assert.equal(r.code, 0, r.err.join("\n"));
      assert.equal(await reply, 0, r.err.join("\n"));
      assert.ok(!r.err.some((l) => /fingerprint mismatch/.test(l)), r.err.join("\n"));
      // The client's own keys; an agent's key is refused by name.
      writeFileSync(config, "allow: ['*']\n");
      usageFailure(await capture(["client", "-c", config]), /client\.yaml: allow: unknown key/);
      writeFileSync(config, "server: h\n");
      usageFailure(await capture(["client", "-c", config]), /client needs --name/);
    });
  } finally {
    echo.close();
    await t.close();
  }
});
