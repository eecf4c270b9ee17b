import assert from "node:assert/strict";
import { test } from "node:test";
import {
  parseAddr,
  parseAgentConfig,
  parseClientConfig,
  parseDuration,
  parseForward,
  parseServerConfig,
  serverDefaults,
  stableIds,
} from "../src/config/mod.ts";
import { parseRule } from "../src/policy.ts";
import { readDuration } from "../src/time.ts";
import { ConfigError } from "../src/errors.ts";

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

test("config: a grant's and an agent's rules take a /udp suffix", () => {
  const c = parseServerConfig(
    good.replace('"10.0.0.0/8:22"]', '"10.0.0.0/8:22", "10.0.0.53:53/udp"]'),
    "s.yaml",
  );
  assert.deepEqual(c.grants[0]!.rules.map((r) => r.protocol), [6, 6, 6, 17]);
  assert.deepEqual(c.grants[0]!.rules[3], parseRule("10.0.0.53:53/udp")[0]);
  const a = parseAgentConfig("allow: ['*.corp:*/udp', 'db.corp:5432/tcp']", "agent.yaml");
  assert.deepEqual(a.allow?.map((r) => r.protocol), [17, 6]);
});

test("config: JSON is accepted", () => {
  const c = parseServerConfig(
    JSON.stringify({ agents: [{ name: "a", token: "12345678" }] }),
    "s.json",
  );
  assert.equal(c.agents.size, 1);
});

test("config: errors name the file, the path and the problem", () => {
  const cases: Array<[string, RegExp]> = [
    [
      "agents: [{ name: 'bad name', token: '12345678' }]",
      /^s\.yaml: agents\[0\]\.name: "bad name" must be/,
    ],
    ["agents: [{ name: a }]", /^s\.yaml: agents\[0\]: needs a token or a public_key$/],
    ["agents: [{ name: a, token: short }]", /^s\.yaml: agents\[0\]\.token: must be at least 8/],
    ["pool: { min: 9, max: 2 }", /^s\.yaml: pool\.min: \(9\) must not exceed pool\.max \(2\)$/],
    ["listen: { socks: nope }", /^s\.yaml: listen\.socks: Cannot parse address "nope"/],
    ["heartbeat: { interval: 5 parsecs }", /^s\.yaml: heartbeat\.interval: Cannot parse duration/],
    ["tls: of", /^s\.yaml: tls: must be auto, off, or a mapping with cert and key \(or names\)$/],
    ["tls: [a]", /^s\.yaml: tls: must be auto, off, or a mapping/],
    [
      "grants: [{ client: ghost, agent: a }]",
      /^s\.yaml: grants\[0\]\.client: unknown client "ghost"$/,
    ],
    [
      "clients: [{name: c, token: '12345678'}]\ngrants: [{ client: c, agent: ghost }]",
      /grants\[0\]\.agent: unknown agent "ghost"/,
    ],
    [
      "agents: [{name: a, token: '12345678'}]\nclients: [{name: c, token: '12345678'}]\ngrants: [{ client: c, agent: a, targets: ['x:99999'] }]",
      /grants\[0\]\.targets\[0\]: Cannot parse rule "x:99999"/,
    ],
    [
      "agents: [{name: a, token: '12345678'}]\nclients: [{name: c, token: '12345678'}]\ngrants: [{ client: c, agent: a, targets: ['x:53/udp', 'x:53/quic'] }]",
      /grants\[0\]\.targets\[1\]: Cannot parse rule "x:53\/quic": unknown protocol "quic"/,
    ],
    ["colour: blue", /^s\.yaml: colour: unknown key/],
    ["agents: [1, 2", /^s\.yaml: \(top level\): not valid YAML or JSON/],
    [
      "agents: [{ name: a, public_key: 'AAAA' }]",
      /agents\[0\]\.public_key: must be a base64 Ed25519 public key/,
    ],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseServerConfig(text, "s.yaml"),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      text,
    );
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
  assert.throws(() => parseAddr("host:99999"), ConfigError);
  assert.throws(
    () => parseAddr("nope"),
    (e: unknown) => e instanceof ConfigError && /Cannot parse address "nope"/.test(e.message),
  );
});

test("config: durations; a bad one is a ConfigError, not a TypeError", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("2m"), 120_000);
  // A bare number is refused with the form it needs (it was taken as milliseconds).
  assert.throws(
    () => parseDuration(250),
    (e: unknown) => e instanceof ConfigError && /a unit is needed: 250s \(or 250ms/.test(e.message),
  );
  assert.deepEqual(readDuration("1h"), { ok: true, value: 3_600_000 });
  assert.equal(readDuration("5 parsecs").ok, false);
  assert.throws(
    () => parseDuration("5 parsecs"),
    (e: unknown) => e instanceof ConfigError && /Cannot parse duration/.test(e.message),
  );
  const cases: Array<[string, RegExp]> = [
    ["pool: { wait: 0s }", /^s\.yaml: pool\.wait: must be between 1ms and 24h$/],
    ["pool: { idle: 25h }", /^s\.yaml: pool\.idle: must be between 1ms and 24h$/],
    ["pool: { idle: [1] }", /^s\.yaml: pool\.idle: must be a duration such as 10s$/],
    ["handshake_timeout: .nan", /^s\.yaml: handshake_timeout: Cannot parse duration "NaN"/],
    [
      "heartbeat: { interval: 5 }",
      /^s\.yaml: heartbeat\.interval: Cannot parse duration "5": a unit is needed: 5s \(or 5ms/,
    ],
    ["pool: { wait: '300' }", /^s\.yaml: pool\.wait: .*a unit is needed: 300s/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseServerConfig(text, "s.yaml"),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      text,
    );
  }
});

test("config: limits.pending_handshakes and pending_handshakes_per_source parse and reject 0", () => {
  const d = parseServerConfig("", "s.yaml").limits;
  assert.equal(d.pendingHandshakes, serverDefaults.pendingHandshakes);
  assert.equal(d.pendingHandshakes, 1024);
  assert.equal(d.pendingHandshakesPerSource, 256);
  const l = parseServerConfig(
    "limits: { pending_handshakes: 64, pending_handshakes_per_source: 8 }",
    "s.yaml",
  ).limits;
  assert.equal(l.pendingHandshakes, 64);
  assert.equal(l.pendingHandshakesPerSource, 8);
  for (const key of ["pending_handshakes", "pending_handshakes_per_source"]) {
    assert.throws(
      () => parseServerConfig(`limits: { ${key}: 0 }`, "s.yaml"),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message === `s.yaml: limits.${key}: must be an integer in 1..1000000`,
    );
  }
});

test("config: an agent's config file parses; every key is optional", () => {
  const c = parseAgentConfig(
    [
      "server: burrow.example.com:7000",
      "name: office",
      "key_file: office.key",
      "allow: ['*.corp:80,443', 'alice=10.0.0.0/8:22']",
      "fingerprint: " + "ab".repeat(32),
      "server_name: burrow.example.com",
      "ca: ca.pem",
      "plain: false",
      "link: false",
    ].join("\n"),
    "agent.yaml",
  );
  assert.deepEqual(c.servers, [{ addr: { host: "burrow.example.com", port: 7000 } }]);
  const two = parseAgentConfig(
    "server: [a.example:7000, 'wss://b.example/burrow']\n",
    "agent.yaml",
  );
  assert.deepEqual(two.servers?.map((x) => x.addr.host), ["a.example", "b.example"]);
  assert.equal(c.name, "office");
  assert.equal(c.keyFile, "office.key");
  assert.equal(c.key, undefined);
  assert.deepEqual(c.allow, [...parseRule("*.corp:80,443"), ...parseRule("alice=10.0.0.0/8:22")]);
  assert.deepEqual(c.fingerprint, [Array(32).fill("AB").join(":")]);
  assert.equal(c.serverName, "burrow.example.com");
  assert.equal(c.ca, "ca.pem");
  assert.equal(c.plain, false);
  assert.equal(c.link, false);
  for (const empty of ["", "{}", "# nothing\n"]) {
    assert.deepEqual(
      Object.values(parseAgentConfig(empty, "agent.yaml")).filter((v) => v !== undefined),
      [],
    );
  }
  const json = parseAgentConfig(
    JSON.stringify({ token: "12345678", token_file: "t", plain: true }),
    "agent.json",
  );
  assert.equal(json.token, "12345678");
  assert.equal(json.tokenFile, "t");
  assert.equal(json.plain, true);
});

test("config: an agent's config file errors name the file, the path and the problem", () => {
  const cases: Array<[string, RegExp]> = [
    [
      "allow: ['*.corp:80', 'x:99999']",
      /^agent\.yaml: allow\[1\]: Cannot parse rule "x:99999": bad port range/,
    ],
    [
      "allow: ['*.corp:53/udp', '10.0.0.0/8:53/icmp']",
      /^agent\.yaml: allow\[1\]: Cannot parse rule "10\.0\.0\.0\/8:53\/icmp": unknown protocol "icmp"/,
    ],
    ["allow: '*'", /^agent\.yaml: allow: must be a list$/],
    ["allow: [1]", /^agent\.yaml: allow\[0\]: must be a string$/],
    ["server: 'no pe'", /^agent\.yaml: server: Cannot parse address "no pe"/],
    ["server: ''", /^agent\.yaml: server: must be host:port or a wss:\/\/ URL$/],
    ["server: 'wss://u:p@host/'", /^agent\.yaml: server: server URL .* no credentials/],
    ["server: [a:1, 'a:b:c']", /^agent\.yaml: server\[1\]: Cannot parse address "a:b:c"/],
    ["server: []", /^agent\.yaml: server: must name at least one server$/],
    ["name: 'a b'", /^agent\.yaml: name: "a b" must be 1\.\.64 characters/],
    ["token: 12345678", /^agent\.yaml: token: must be a string$/],
    ["plain: yes please", /^agent\.yaml: plain: must be true or false$/],
    ["link: 0", /^agent\.yaml: link: must be true or false$/],
    ["fingerprint: zz", /^agent\.yaml: fingerprint: must be a SHA-256 fingerprint/],
    ["colour: blue", /^agent\.yaml: colour: unknown key \(expected one of server, name, token, /],
    ["- server", /^agent\.yaml: \(top level\): must be a mapping$/],
    ["allow: [1, 2", /^agent\.yaml: \(top level\): not valid YAML or JSON/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseAgentConfig(text, "agent.yaml"),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      text,
    );
  }
  try {
    parseAgentConfig("token: 'supersecret-token'\nkey: [1]", "agent.yaml");
    assert.fail("should throw");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.ok(!e.message.includes("supersecret"));
  }
});

test("config: token_hash authenticates the token it was made from", async () => {
  const { tokenHash, toHex, tokenCredential } = await import("../src/auth.ts");
  const token = "correct-horse-battery";
  const c = parseServerConfig(
    `agents: [{ name: a, token_hash: "sha256:${
      toHex(tokenHash(token))
    }" }]\nclients: [{ name: c, token_hash: "sha256:${toHex(tokenHash(token))}" }]`,
    "s.yaml",
  );
  const v = c.agents.get("a")!.verifiers.get(1)!;
  const data = new Uint8Array([1, 2, 3]);
  assert.equal(await v.verify(data, await tokenCredential(token).prove(data)), true);
  assert.equal(await v.verify(data, await tokenCredential("wrong-token").prove(data)), false);
  assert.equal(await c.clients.get("c")!.checkPassword!(token), true);
  assert.equal(await c.clients.get("c")!.checkPassword!("wrong-token"), false);
  // The remembered good password: it passes again; one of its length, or a prefix, does not.
  assert.equal(await c.clients.get("c")!.checkPassword!(token), true);
  assert.equal(await c.clients.get("c")!.checkPassword!("correct-horse-batterz"), false);
  assert.equal(await c.clients.get("c")!.checkPassword!("correct-horse"), false);
  assert.throws(
    () => parseServerConfig("agents: [{ name: a, token_hash: 'md5:00' }]", "s.yaml"),
    /agents\[0\]\.token_hash: must be sha256:/,
  );
});

test("config: ids come from the names alone, so servers sharing a config agree", () => {
  const a = stableIds(["office", "lab", "alice", "bob"]);
  const b = stableIds(["bob", "alice", "lab", "office"]);
  assert.deepEqual([...a].sort(), [...b].sort());
  assert.equal(new Set(a.values()).size, 4);
  for (const id of a.values()) assert.ok(id >= 1 && id <= 0x7fffffff);
  const one = stableIds(["office"]);
  assert.equal(one.get("office"), a.get("office"), "independent of the other names");
  const cfg = parseServerConfig(
    JSON.stringify({
      agents: [{ name: "office", token: "agent-token-0123456789" }],
      clients: [{ name: "alice", token: "alice-token-0123456789" }],
    }),
    "s.yaml",
  );
  assert.equal(cfg.agents.get("office")!.id, a.get("office"));
  assert.equal(cfg.clients.get("alice")!.id, a.get("alice"));
});

test("config: trusted_proxies, proxy_protocol and limits.ipv6_shares parse, with their errors", () => {
  const d = parseServerConfig("", "s.yaml");
  assert.deepEqual(d.trustedProxies, []);
  assert.equal(d.proxyProtocol.size, 0);
  assert.deepEqual(d.limits.ipv6Shares, [{ prefix: 56, share: 0.5 }, { prefix: 48, share: 0.75 }]);
  assert.equal(d.limits.authFailureBudget, 200);
  const c = parseServerConfig(
    `tls: off
trusted_proxies: [10.0.0.0/8, "::1", 192.0.2.7]
proxy_protocol: [agents, socks, https]
limits: { ipv6_shares: { "40": 1, "60": 0.25 }, auth_failure_budget: 40 }`,
    "s.yaml",
  );
  assert.deepEqual(c.trustedProxies, [
    { base: "10.0.0.0", prefix: 8 },
    { base: "::1", prefix: 128 },
    { base: "192.0.2.7", prefix: 32 },
  ]);
  assert.deepEqual([...c.proxyProtocol], ["agents", "socks", "https"]);
  assert.deepEqual(c.limits.ipv6Shares, [{ prefix: 60, share: 0.25 }, { prefix: 40, share: 1 }]);
  assert.equal(c.limits.authFailureBudget, 40);
  // With TLS on: the header comes before the TLS handshake.
  const withTls = parseServerConfig(
    "trusted_proxies: [::1]\nproxy_protocol: [agents, clients, https]",
    "s.yaml",
  );
  assert.notEqual(withTls.tls.mode, "off");
  assert.deepEqual([...withTls.proxyProtocol], ["agents", "clients", "https"]);
  const cases: Array<[string, RegExp]> = [
    [
      "trusted_proxies: [10.0.0.0/33]",
      /^s\.yaml: trusted_proxies\[0\]: must be an IP address or a CIDR/,
    ],
    ["trusted_proxies: [proxy.example]", /trusted_proxies\[0\]: must be an IP address or a CIDR/],
    ["trusted_proxies: [10.0.0.0/8/8]", /trusted_proxies\[0\]: must be an IP address or a CIDR/],
    ["trusted_proxies: 10.0.0.0/8", /^s\.yaml: trusted_proxies: must be a list/],
    [
      "tls: off\ntrusted_proxies: [::1]\nproxy_protocol: [http]",
      /proxy_protocol\[0\]: must be one of agents, socks, clients, https$/,
    ],
    ["proxy_protocol: [socks]", /^s\.yaml: proxy_protocol: needs trusted_proxies/],
    [
      "limits: { ipv6_shares: { '64': 0.5 } }",
      /limits\.ipv6_shares\.64: must be a prefix length in 1\.\.63/,
    ],
    ["limits: { ipv6_shares: { x: 0.5 } }", /limits\.ipv6_shares\.x: must be a prefix length/],
    [
      "limits: { ipv6_shares: { '56': 0 } }",
      /limits\.ipv6_shares\.56: must be a share greater than 0 and at most 1$/,
    ],
    ["limits: { ipv6_shares: { '56': 1.5 } }", /limits\.ipv6_shares\.56: must be a share/],
    ["limits: { ipv6_shares: [1] }", /limits\.ipv6_shares: must be a mapping/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseServerConfig(text, "s.yaml"),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      text,
    );
  }
});

test("config: a client's forwards (file and --forward) parse, with path-precise errors", () => {
  const c = parseClientConfig(
    "listen: off\nforwards:\n  - { listen: 5432, target: 'db.corp:5432', agent: office }\n" +
      "  - { listen: '[::1]:2222', target: '[fd00::5]:22' }\n",
    "client.yaml",
  );
  assert.equal(c.listen, null);
  assert.deepEqual(c.forwards, [
    {
      listen: { host: "127.0.0.1", port: 5432 },
      target: { type: "domain", host: "db.corp", port: 5432 },
      agent: "office",
    },
    { listen: { host: "::1", port: 2222 }, target: { type: "ipv6", host: "fd00::5", port: 22 } },
  ]);
  assert.deepEqual(parseForward("0.0.0.0:8080=10.0.0.7:80"), {
    listen: { host: "0.0.0.0", port: 8080 },
    target: { type: "ipv4", host: "10.0.0.7", port: 80 },
  });
  assert.deepEqual(parseForward("[::1]:5432=db:5432").listen, { host: "::1", port: 5432 });
  for (const bad of ["5432", "x=db:1", "5432=db", "5432=db:0", "99999=db:1", "5432=[zz]:1"]) {
    assert.throws(() => parseForward(bad), ConfigError, bad);
  }
  const cases: Array<[string, RegExp]> = [
    ["forwards: {}", /^client\.yaml: forwards: must be a list$/],
    ["forwards: [{ target: 'a:1' }]", /^client\.yaml: forwards\[0\]\.listen: is required$/],
    [
      "forwards: [{ listen: 1, target: 'a:1' }, { listen: 2, target: 'a' }]",
      /^client\.yaml: forwards\[1\]\.target: Cannot parse forward target "a"/,
    ],
    [
      "forwards: [{ listen: 'x:y', target: 'a:1' }]",
      /^client\.yaml: forwards\[0\]\.listen: Cannot parse address "x:y"/,
    ],
    [
      "forwards: [{ listen: 1, target: 'a:1', agent: 'a b' }]",
      /^client\.yaml: forwards\[0\]\.agent: "a b" must be 1\.\.64/,
    ],
    [
      "forwards: [{ listen: 1, target: 'a:1', via: x }]",
      /^client\.yaml: forwards\[0\]\.via: unknown key \(expected one of listen, target, agent\)/,
    ],
    ["listen: 'nope'", /^client\.yaml: listen: Cannot parse address "nope"/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseClientConfig(text, "client.yaml"),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      text,
    );
  }
});
