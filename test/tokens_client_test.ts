/**
 * Issued tokens on the client port (SPEC.md §6.2 method issued_token): the
 * client proxy logs in with the token's bytes inside the pinned TLS
 * connection, with an empty name or the token's subject; revoked, expired,
 * forged and misnamed tokens are refused like wrong credentials; an agent
 * cannot use the method; `burrow client --token-file` takes an issued token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "../src/auth.ts";
import { ClientProxy } from "../src/client.ts";
import { targetOf } from "../src/ip.ts";
import { issuedCredential, parseToken, tokenText } from "../src/token.ts";
import { Agent } from "../src/agent.ts";
import { type Host, main } from "../src/cli/mod.ts";
import {
  burrow,
  echoTarget,
  freePort,
  memoryLogger,
  runtime,
  socks,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

function proxyWith(t: Tunnel, token: string, name = ""): ClientProxy {
  const proxy = new ClientProxy(t.net, {
    listen: { host: "127.0.0.1", port: 0 },
    server: { ...t.server.addrs.clients!, ...(t.pin ? { tls: t.pin } : {}) },
    name,
    credential: issuedCredential(token)!,
    agent: "office",
  }, memoryLogger().log);
  return proxy;
}

test("client port: a client proxy logs in with an issued token; refusals are wrong credentials", async () => {
  const t = await tunnel({ tls: true });
  const echo = await echoTarget(t.net);
  const target = targetOf("127.0.0.1", echo.addr.port);
  const started: ClientProxy[] = [];
  try {
    const alice = await t.server.tokens.issue("client", "alice", 60);
    for (const name of ["", "alice"]) {
      const proxy = proxyWith(t, alice.token, name);
      started.push(proxy);
      await proxy.checkLogin();
      await proxy.start();
      const r = await socks(t.net, proxy.addr!, "", "", target);
      assert.equal(r.reply, 0, `name ${JSON.stringify(name)}`);
      await r.conn.write(new TextEncoder().encode("hi"));
      assert.equal(new TextDecoder().decode((await r.conn.read())!), "hi");
      r.conn.close();
    }
    assert.ok(t.logs.some((l) => /stream ended/.test(l) && l.includes(`token=${alice.id}`)));
    // Refused: another client's name, a forged signature, revoked.
    await assert.rejects((proxyWith(t, alice.token, "bob")).checkLogin(), /auth/i);
    const p = parseToken(alice.token)!;
    const forged = tokenText(p.signed, randomBytes(64));
    await assert.rejects((proxyWith(t, forged)).checkLogin(), /auth/i);
    // A revocation closes the stream open on the client port.
    const r = await socks(t.net, started[0]!.addr!, "", "", target);
    assert.equal(r.reply, 0);
    await t.server.tokens.revoke((x) => x.id === alice.id);
    assert.ok(await until(() => t.logs.some((l) => /closed by revocation/.test(l))));
    r.conn.close();
    await assert.rejects((proxyWith(t, alice.token)).checkLogin(), /auth/i);
    for (const why of ["token of another client", "bad signature", "revoked"]) {
      assert.ok(
        t.logs.some((l) => l.includes(`reason="${why}"`) || l.includes(`reason=${why}`)),
        why,
      );
    }
    assert.ok(!t.logs.some((l) => l.includes(alice.token)), "the token is not logged");
  } finally {
    for (const p of started) await p.stop();
    await echo.close();
    await t.close();
  }
});

test("client port: an agent cannot log in with an issued token", async () => {
  const t = await tunnel({ tls: true, startAgent: false });
  try {
    const { token } = await t.server.tokens.issue("client", "alice", 60);
    const agent = new Agent(t.net, {
      server: t.server.addrs.agents!,
      tls: t.pin!,
      name: "office",
      credential: issuedCredential(token)!,
      rules: [],
      backoffBaseMs: 50,
      backoffMaxMs: 200,
    }, memoryLogger().log);
    agent.start();
    assert.ok(await until(() => t.logs.some((l) => /authentication failed/.test(l))));
    await agent.stop();
    assert.equal(t.server.agents.connected, 0);
  } finally {
    await t.close();
  }
});

test(`${runtime}: burrow client --token-file with an issued token and no --name`, async () => {
  const t = await tunnel({ tls: true });
  const echo = await echoTarget(t.net);
  const dir = mkdtempSync(join(tmpdir(), "burrow-issued-"));
  const { token } = await t.server.tokens.issue("client", "alice", 600);
  const file = join(dir, "ci.token");
  writeFileSync(file, token + "\n", { mode: 0o600 });
  // A service takes the machine token, and refuses a person's.
  const person = join(dir, "person.token");
  writeFileSync(person, (await t.server.tokens.issue("person", "p@example.com", 60)).token);
  const { host } = await import(`../runtimes/${runtime}/main.ts`) as { host: Host };
  const quiet: Host = { ...host, print: () => {}, env: () => undefined };
  const unit = ["service", "client", "-s", "h:7001", "-n", "alice", "--token-file"];
  assert.equal(await main(quiet, [...unit, file]), 0);
  assert.equal(await main(quiet, [...unit, person]), 2);
  const port = await freePort(t.net);
  const proc = burrow(runtime, [
    "client",
    "--server",
    `127.0.0.1:${t.server.addrs.clients!.port}`,
    "--fingerprint",
    t.pin!.fingerprint,
    "--token-file",
    file,
    "--agent",
    "office",
    "--listen",
    `127.0.0.1:${port}`,
  ]);
  try {
    await proc.waitFor(/listening/);
    const r = await socks(
      t.net,
      { host: "127.0.0.1", port },
      "",
      "",
      targetOf("127.0.0.1", echo.addr.port),
    );
    assert.equal(r.reply, 0, proc.output());
    r.conn.close();
  } finally {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    await echo.close();
    await t.close();
  }
});
