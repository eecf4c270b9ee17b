/**
 * The CLI as a user meets it: help, keygen/token output that the other
 * commands accept as it is, and clear errors for bad input.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Host } from "../src/cli/mod.ts";
import { main } from "../src/cli/mod.ts";
import { VERSION_MAX, VERSION_MIN } from "../src/messages.ts";
import { burrow, runtime } from "./helpers.ts";
import { generateKeyPair } from "../src/auth.ts";
import { AGENT_TOKEN, tunnel } from "./helpers.ts";

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
  for (const cmd of ["server", "agent", "client", "keygen", "token", "demo"]) {
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
