/**
 * The CLI as a user meets it: help, keygen/token output that the other
 * commands accept as it is, and clear errors for bad input.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Host } from "../src/cli.ts";
import { main } from "../src/cli.ts";
import { burrow, runtime } from "./helpers.ts";

const rt = runtime;

async function capture(args: string[]): Promise<{ code: number; out: string[] }> {
  const { host } = await import(`../runtimes/${rt}/main.ts`) as { host: Host };
  const out: string[] = [];
  const code = await main({ ...host, print: (l) => void out.push(l) }, args);
  return { code, out };
}

test(`${rt}: cli: --help lists every command`, async () => {
  const { code, out } = await capture(["--help"]);
  assert.equal(code, 0);
  for (const cmd of ["server", "agent", "client", "keygen", "token", "demo"]) assert.match(out.join("\n"), new RegExp(`\\b${cmd}\\b`));
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
    const bad = await capture(["agent", "--server", "127.0.0.1:1", "--name", "office", "--key-file", join(dir, "office.key")]);
    assert.equal(bad.code, 2);
    writeFileSync(join(dir, "broken.key"), "private_key: not-a-key");
    const broken = await capture(["agent", "--server", "127.0.0.1:1", "--name", "o", "--key-file", join(dir, "broken.key"), "--allow", "*"]);
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
