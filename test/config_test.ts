import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, parseAddr, parseServerConfig } from "../src/config.ts";

const good = `
listen:
  agents: 127.0.0.1:7000
  socks: 127.0.0.1:1080
heartbeat: { interval: 2s, timeout: 6s }
pool: { min: 1, max: 8 }
agents:
  - name: office
    token: office-secret-token
clients:
  - name: alice
    token: alice-secret-token
grants:
  - client: alice
    agent: office
    targets: ["*.corp:80,443", "10.0.0.0/8:22"]
`;

test("config: a valid YAML file parses with defaults filled in", () => {
  const c = parseServerConfig(good, "server.yaml");
  assert.deepEqual(c.listen.agents, { host: "127.0.0.1", port: 7000 });
  assert.equal(c.heartbeatIntervalMs, 2000);
  assert.equal(c.poolMax, 8);
  assert.equal(c.poolWaitMs, 10000);
  assert.equal(c.grants[0]!.rules.length, 3);
  assert.ok(c.clients.get("alice")?.checkPassword);
});

test("config: JSON is accepted", () => {
  const c = parseServerConfig(JSON.stringify({ agents: [{ name: "a", token: "12345678" }] }), "s.json");
  assert.equal(c.agents.size, 1);
});

test("config: errors name the file, the path and the problem", async () => {
  const cases: Array<[string, RegExp]> = [
    ["agents: [{ name: 'bad name', token: '12345678' }]", /^s\.yaml: agents\[0\]\.name: "bad name" must be/],
    ["agents: [{ name: a }]", /^s\.yaml: agents\[0\]: needs a token or a public_key$/],
    ["agents: [{ name: a, token: short }]", /^s\.yaml: agents\[0\]\.token: must be at least 8/],
    ["pool: { min: 9, max: 2 }", /^s\.yaml: pool\.min: \(9\) must not exceed pool\.max \(2\)$/],
    ["listen: { socks: nope }", /^s\.yaml: listen\.socks: Cannot parse address "nope"/],
    ["heartbeat: { interval: 5 parsecs }", /^s\.yaml: heartbeat\.interval: Cannot parse duration/],
    ["grants: [{ client: ghost, agent: a }]", /^s\.yaml: grants\[0\]\.client: unknown client "ghost"$/],
    ["clients: [{name: c, token: '12345678'}]\ngrants: [{ client: c, agent: ghost }]", /grants\[0\]\.agent: unknown agent "ghost"/],
    [
      "agents: [{name: a, token: '12345678'}]\nclients: [{name: c, token: '12345678'}]\ngrants: [{ client: c, agent: a, targets: ['x:99999'] }]",
      /grants\[0\]\.targets\[0\]: Cannot parse rule "x:99999"/,
    ],
    ["colour: blue", /^s\.yaml: colour: unknown key/],
    ["agents: [1, 2", /^s\.yaml: \(top level\): not valid YAML or JSON/],
    ["agents: [{ name: a, public_key: 'AAAA' }]", /agents\[0\]\.public_key: must be a base64 Ed25519 public key/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseServerConfig(text, "s.yaml"), (e: unknown) => e instanceof ConfigError && re.test(e.message), text);
  }
});

test("config: tokens never appear in errors", () => {
  try {
    parseServerConfig("agents: [{ name: a, token: 'supersecret-token', extra: 1 }]", "s.yaml");
    assert.fail("should throw");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.ok(!e.message.includes("supersecret"));
  }
});

test("config: addresses", () => {
  assert.deepEqual(parseAddr("[::1]:80"), { host: "::1", port: 80 });
  assert.deepEqual(parseAddr(":80"), { host: "0.0.0.0", port: 80 });
  assert.throws(() => parseAddr("host:99999"));
});

test("config: token_hash authenticates the token it was made from", async () => {
  const { tokenHash, toHex, tokenCredential } = await import("../src/auth.ts");
  const token = "correct-horse-battery";
  const c = parseServerConfig(
    `agents: [{ name: a, token_hash: "sha256:${toHex(tokenHash(token))}" }]\nclients: [{ name: c, token_hash: "sha256:${toHex(tokenHash(token))}" }]`,
    "s.yaml",
  );
  const v = c.agents.get("a")!.verifiers.get(1)!;
  const data = new Uint8Array([1, 2, 3]);
  assert.equal(await v.verify(data, await tokenCredential(token).prove(data)), true);
  assert.equal(await v.verify(data, await tokenCredential("wrong-token").prove(data)), false);
  assert.equal(await c.clients.get("c")!.checkPassword!(token), true);
  assert.equal(await c.clients.get("c")!.checkPassword!("wrong-token"), false);
  assert.throws(() => parseServerConfig("agents: [{ name: a, token_hash: 'md5:00' }]", "s.yaml"), /agents\[0\]\.token_hash: must be sha256:/);
});
