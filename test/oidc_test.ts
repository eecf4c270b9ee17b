/**
 * Sign-in with a real OpenID Provider (the npm `oidc-provider`, run under
 * Node over https with a test CA that `oidc.ca` trusts): `burrow login
 * --device` and the browser flow (authorization code + PKCE, loopback
 * redirect), both driven in headless Chromium; curl through the SOCKS5
 * port with the token; a group change at `burrow login --refresh`; forged,
 * expired, wrong-audience and nonce-less ID tokens refused; oidc.allow; a
 * confidential client whose secret the server holds (oidc.client_secret_file).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { fmt } from "../src/addr.ts";
import type { Net } from "../src/net.ts";
import type { Host } from "../src/cli/mod.ts";
import { startServer } from "../src/cli/server.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { generateCA, issueCert } from "../src/tls.ts";
import { httpApp } from "../src/http/mod.ts";
import { Server } from "../src/server/mod.ts";
import { launchChromium, type Page } from "./cdp.ts";
import {
  burrow,
  curlThrough,
  freePort,
  memoryLogger,
  repo,
  runtime,
  runtimeNet,
  testAgent,
  until,
  webOk,
} from "./helpers.ts";

const CLIENT_ID = "burrow-test";

/** Click through the provider's pages (confirm code, log in as `user`, consent) until `done`. */
async function signInAt(page: Page, user: string, done: string): Promise<void> {
  for (let i = 0; i < 12; i++) {
    if (await page.eval<boolean>(done)) return;
    await page.eval(`(() => {
      const login = document.querySelector('input[name=login]');
      if (login) {
        login.value = ${JSON.stringify(user)};
        document.querySelector('input[name=password]').value = "any";
      }
      const b = [...document.querySelectorAll('button, input[type=submit]')]
        .find((x) => /continue|sign-?in|submit|confirm|allow|yes/i.test(x.textContent || x.value));
      if (b) b.click();
    })()`);
    await page.waitFor(`document.readyState === "complete"`, 2000);
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(await page.eval<boolean>(done), await page.eval<string>("document.body.innerText"));
}

/**
 * The OpenID Provider (test/oidc_provider.mjs) on a free port over https
 * with a new test CA (written to `dir`/ca.pem); `secret`: also its
 * confidential client, `CLIENT_ID`-confidential.
 */
async function startProvider(net: Net, dir: string, users: string, secret?: string) {
  const ca = await generateCA();
  const leaf = await issueCert(ca, ["127.0.0.1"]);
  writeFileSync(join(dir, "ca.pem"), ca.cert);
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...await exportJWK(privateKey), kid: "test", alg: "RS256", use: "sig" };
  const port = await freePort(net);
  const cfg = { port, cert: leaf.cert, key: leaf.key, jwk, users, clientId: CLIENT_ID, secret };
  const child = spawn(process.execPath, [join(repo, "test/oidc_provider.mjs")], {
    cwd: repo,
    env: { ...process.env, OIDC_TEST: JSON.stringify(cfg) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => out += d);
  child.stderr!.on("data", (d) => out += d);
  const op = {
    /** Waits until it listens; false if it did not within 20 s. */
    ready: () => until(() => /listening/.test(out), 20000),
    output: () => out,
    stop: () => void child.kill("SIGTERM"),
  };
  return { issuer: `https://127.0.0.1:${port}`, privateKey, op };
}

/** A server config with one agent, `office`, granted to group ops, and `oidc`. */
function serverConfig(dir: string, oidc: Record<string, unknown>) {
  return parseServerConfig(
    JSON.stringify({
      listen: {
        agents: "127.0.0.1:0",
        socks: "127.0.0.1:0",
        clients: "127.0.0.1:0",
        http: "127.0.0.1:0",
      },
      tls: "off",
      state_dir: join(dir, "state"),
      agents: [{ name: "office", token: "agent-token-0123456789" }],
      clients: [],
      grants: [{ group: "ops", agent: "office", targets: ["127.0.0.1:*"] }],
      oidc,
    }),
    "(test)",
  );
}

test(`${runtime}: sign in with a real OpenID Provider (device and browser flows), curl with the token, groups at renewal`, async () => {
  const { host } = await import(`../runtimes/${runtime}/main.ts`) as { host: Host };
  const net = await runtimeNet();
  const dir = mkdtempSync(join(tmpdir(), "burrow-oidc-"));
  const users = join(dir, "users.json");
  writeFileSync(users, JSON.stringify({ alice: ["ops"], mallory: ["guests"] }));
  const { issuer, privateKey, op } = await startProvider(net, dir, users);
  const { log, lines } = memoryLogger();
  const config = serverConfig(dir, {
    issuer,
    client_id: CLIENT_ID,
    ca: join(dir, "ca.pem"),
    scopes: ["openid", "email", "groups", "offline_access"],
    ttl: "15s",
  });
  const browser = await launchChromium(net, 1000, 800, ["--ignore-certificate-errors"]);
  const s = await startServer(host, config, log);
  const { agent } = testAgent(net, s.server.addrs.agents!, "office");
  const web = await webOk(net);
  const env = { XDG_CONFIG_HOME: join(dir, "config") };
  const server = `http://127.0.0.1:${s.http!.addr.port}`;
  const curl = (token: string) =>
    curlThrough(fmt(s.server.addrs.socks!), web.addr.port, `:${token}`);
  try {
    agent.start();
    await agent.connected();
    assert.ok(await op.ready(), op.output());

    // The device flow: burrow login prints where to go; the "other device" is Chromium.
    const device = burrow(runtime, [
      "login",
      "--server",
      server,
      "--device",
      "--print",
      "--ca",
      join(dir, "ca.pem"),
    ], env);
    const url = (await device.waitFor(/open (https:\/\/\S+)/)).slice(5);
    const page = await browser.open(url);
    await signInAt(
      page,
      "alice",
      `/success|signed in|Sign-in Success/i.test(document.body.innerText)`,
    );
    assert.equal(await device.exited, 0, device.output());
    const token = /^[A-Za-z0-9_-]{96,255}$/m.exec(device.output())![0];
    const stored = join(dir, "config", "burrow", "login.json");
    assert.equal(statSync(stored).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(stored, "utf8")).subject, "alice@example.com");
    assert.deepEqual(await curl(token), { code: 0, out: "ok" });
    assert.ok(
      lines.some((l) =>
        /msg="signed in"/.test(l) && l.includes("subject=alice@example.com") &&
        l.includes("groups=ops")
      ),
    );

    // Renewal through the provider's refresh token: a new token while she is in ops.
    const login = ["login", "--refresh", "--print", "--ca", join(dir, "ca.pem")];
    const renew = burrow(runtime, login, env);
    assert.equal(await renew.exited, 0, renew.output());
    const renewed = /^[A-Za-z0-9_-]{96,255}$/m.exec(renew.output())![0];
    assert.notEqual(renewed, token);
    assert.deepEqual(await curl(renewed), { code: 0, out: "ok" });
    // burrow client with no credential of its own uses the kept login, and renews it.
    const local = await freePort(net);
    const client = burrow(runtime, [
      "client",
      "--server",
      fmt(s.server.addrs.clients!),
      "--plain",
      "--agent",
      "office",
      "--listen",
      `127.0.0.1:${local}`,
      "--log-level",
      "debug",
    ], env);
    try {
      await client.waitFor(/using the kept login/);
      await client.waitFor(/listening/);
      const viaProxy = () => curlThrough(`127.0.0.1:${local}`, web.addr.port);
      assert.deepEqual(await viaProxy(), { code: 0, out: "ok" });
      await client.waitFor(/login renewed/, 25000);
      assert.deepEqual(await viaProxy(), { code: 0, out: "ok" }, "with the renewed token");
    } finally {
      await client.stop();
    }
    // The first token expires on its own (oidc.ttl 15 s): then it is refused.
    let last = { code: 0 as number | null, out: "" };
    for (let i = 0; i < 40 && last.code === 0; i++) {
      await until(() => false, 500);
      last = await curl(token);
    }
    assert.notEqual(last.code, 0, "refused once expired");
    assert.ok(lines.some((l) => /reason=expired/.test(l)));

    // Alice leaves ops at the provider: the next renewal is refused (no grant, not in oidc.allow).
    writeFileSync(users, JSON.stringify({ alice: ["sales"] }));
    const refused = burrow(runtime, login, env);
    assert.equal(await refused.exited, 2);
    assert.match(refused.output(), /refused the sign-in/);
    assert.ok(lines.some((l) => /sign-in refused/.test(l) && /not admitted/.test(l)));

    // The browser flow: authorization code + PKCE through a loopback redirect.
    writeFileSync(users, JSON.stringify({ alice: ["ops"] }));
    const code = burrow(runtime, [
      "login",
      "--server",
      server,
      "--print",
      "--ca",
      join(dir, "ca.pem"),
    ], env);
    const authUrl = (await code.waitFor(/open (https:\/\/\S+)/)).slice(5);
    const page2 = await browser.open(authUrl);
    await signInAt(page2, "alice", `location.href.startsWith("http://127.0.0.1:")`);
    assert.equal(await code.exited, 0, code.output());
    const viaCode = /^[A-Za-z0-9_-]{96,255}$/m.exec(code.output())![0];
    assert.deepEqual(await curl(viaCode), { code: 0, out: "ok" });

    // ID tokens the server must refuse: forged, expired, wrong audience, a stranger.
    const post = (id_token: string) =>
      fetch(`${server}/login/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id_token }),
      }).then((r) => r.status);
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, key = privateKey, kid = "test") =>
      new SignJWT({
        iss: issuer,
        sub: "alice",
        aud: CLIENT_ID,
        iat: now - 10,
        exp: now + 300,
        email: "alice@example.com",
        groups: ["ops"],
        ...claims,
      }).setProtectedHeader({ alg: "RS256", kid }).sign(key);
    assert.equal(await post(await sign({})), 200, "the provider's key: accepted");
    const other = (await generateKeyPair("RS256")).privateKey;
    assert.equal(await post(await sign({}, other)), 401, "forged");
    assert.equal(await post(await sign({ exp: now - 60 })), 401, "expired");
    assert.equal(await post(await sign({ aud: "someone-else" })), 401, "wrong audience");
    assert.equal(
      await post(await sign({ email: "mallory@example.com", groups: ["guests"] })),
      401,
      "no grant, not allowed",
    );
    assert.ok(lines.some((l) => /sign-in refused/.test(l) && /signature/.test(l)));
    assert.ok(lines.some((l) => /sign-in refused/.test(l) && /exp/.test(l)));
    assert.ok(lines.some((l) => /sign-in refused/.test(l) && /aud/.test(l)));
    // Refused sign-ins count per source, as wrong admin tokens do: past
    // auth_failures_per_minute (20) the source gets 429, a good ID token too.
    const forged = await sign({}, other);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push(await post(forged));
    assert.ok(statuses.includes(429), `blocked after 20 refusals: ${statuses.join(",")}`);
    assert.equal(await post(await sign({})), 429, "blocked: the right ID token too");
  } finally {
    web.close();
    await agent.stop();
    await s.stop();
    await browser.close();
    op.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${runtime}: a confidential client: the server uses oidc.client_secret_file at the provider; a wrong secret is refused clearly`, async () => {
  const { host } = await import(`../runtimes/${runtime}/main.ts`) as { host: Host };
  const net = await runtimeNet();
  const dir = mkdtempSync(join(tmpdir(), "burrow-oidc-"));
  const users = join(dir, "users.json");
  writeFileSync(users, JSON.stringify({ alice: ["ops"] }));
  const SECRET = "the-provider's-secret-for-burrow-0123456789";
  const { issuer, op } = await startProvider(net, dir, users, SECRET);
  const secretFile = join(dir, "client_secret");
  writeFileSync(secretFile, "a-wrong-secret\n", { mode: 0o644 });
  chmodSync(secretFile, 0o644);
  const { log, lines } = memoryLogger();
  const config = serverConfig(dir, {
    issuer,
    client_id: `${CLIENT_ID}-confidential`,
    client_secret_file: secretFile,
    ca: join(dir, "ca.pem"),
    scopes: ["openid", "email", "groups", "offline_access"],
  });
  const ca = join(dir, "ca.pem");
  const env = { XDG_CONFIG_HOME: join(dir, "config") };
  const web = await webOk(net);
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  let s: Awaited<ReturnType<typeof startServer>> | undefined;
  let agent: ReturnType<typeof testAgent>["agent"] | undefined;
  try {
    // A secret file others may read: the server does not start.
    await assert.rejects(
      startServer(host, config, log),
      /oidc\.client_secret_file: \S+ is readable by group or others \(mode 0644\): chmod 600 it/,
    );
    chmodSync(secretFile, 0o600);
    s = await startServer(host, config, log);
    agent = testAgent(net, s.server.addrs.agents!, "office").agent;
    agent.start();
    await agent.connected();
    assert.ok(await op.ready(), op.output());
    const server = `http://127.0.0.1:${s.http!.addr.port}`;
    const login = (...args: string[]) =>
      burrow(runtime, ["login", "--server", server, "--print", "--ca", ca, ...args], env);

    // The wrong secret: the provider refuses the server, and burrow login says so at once.
    const wrong = login("--device");
    assert.equal(await wrong.exited, 2, wrong.output());
    assert.match(wrong.output(), /refused the client secret of oidc\.client_secret_file/);
    assert.ok(
      lines.some((l) => /sign-in failed at the provider/.test(l) && /client_secret_file/.test(l)),
    );
    assert.ok(!lines.some((l) => /sign-in refused/.test(l)), "not held against the person");

    // The right secret (read at each sign-in): the device flow, then curl with the token.
    writeFileSync(secretFile, `${SECRET}\n`);
    browser = await launchChromium(net, 1000, 800, ["--ignore-certificate-errors"]);
    const device = login("--device");
    const url = (await device.waitFor(/open (https:\/\/\S+)/)).slice(5);
    await signInAt(
      await browser.open(url),
      "alice",
      `/success|signed in|Sign-in Success/i.test(document.body.innerText)`,
    );
    assert.equal(await device.exited, 0, device.output());
    const token = /^[A-Za-z0-9_-]{96,255}$/m.exec(device.output())![0];
    const socks = fmt(s.server.addrs.socks!);
    assert.deepEqual(await curlThrough(socks, web.addr.port, `:${token}`), { code: 0, out: "ok" });
    const stored = JSON.parse(readFileSync(join(dir, "config", "burrow", "login.json"), "utf8"));
    assert.equal(typeof stored.refresh_token, "string", "the provider's refresh token is kept");

    // Renewal: the server trades the refresh token with the secret.
    const renew = burrow(runtime, ["login", "--refresh", "--print", "--ca", ca], env);
    assert.equal(await renew.exited, 0, renew.output());
    const renewed = /^[A-Za-z0-9_-]{96,255}$/m.exec(renew.output())![0];
    assert.notEqual(renewed, token);
    assert.deepEqual(await curlThrough(socks, web.addr.port, `:${renewed}`), {
      code: 0,
      out: "ok",
    });

    // The browser flow: the redirect's code goes to the server, which trades it.
    const code = login();
    const authUrl = (await code.waitFor(/open (https:\/\/\S+)/)).slice(5);
    await signInAt(
      await browser.open(authUrl),
      "alice",
      `location.href.startsWith("http://127.0.0.1:")`,
    );
    assert.equal(await code.exited, 0, code.output());
    const viaCode = /^[A-Za-z0-9_-]{96,255}$/m.exec(code.output())![0];
    assert.deepEqual(await curlThrough(socks, web.addr.port, `:${viaCode}`), {
      code: 0,
      out: "ok",
    });
    assert.equal(lines.filter((l) => /msg="signed in"/.test(l)).length, 3);
  } finally {
    web.close();
    await agent?.stop();
    await s?.stop();
    await browser?.close();
    op.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sign-in endpoints: over https only when listen.https is on; the oidc config's errors", async () => {
  const net = await runtimeNet();
  const oidc = { issuer: "https://sso.example.com/realms/corp", client_id: "burrow" };
  const config = (listen: Record<string, string>) =>
    parseServerConfig(JSON.stringify({ listen, oidc }), "s.yaml");
  const { log } = memoryLogger();
  const withHttps = new Server(net, config({ https: "127.0.0.1:0" }), log);
  const app = httpApp(withHttps);
  assert.equal((await app.fetch(new Request("http://127.0.0.1/login/config"))).status, 404);
  const r = await app.fetch(new Request("https://127.0.0.1/login/config"));
  assert.deepEqual(await r.json(), {
    issuer: oidc.issuer,
    client_id: "burrow",
    scopes: ["openid", "email", "profile", "offline_access"],
  });
  const httpOnly = httpApp(new Server(net, config({}), log));
  assert.equal((await httpOnly.fetch(new Request("http://127.0.0.1/login/config"))).status, 200);
  const bad = (o: unknown) => parseServerConfig(JSON.stringify({ oidc: o }), "s.yaml");
  assert.throws(
    () => bad({ ...oidc, issuer: "http://sso" }),
    /oidc\.issuer: must be an https:\/\/ URL/,
  );
  assert.throws(() => bad({ ...oidc, scopes: ["email"] }), /oidc\.scopes: must include openid/);
  assert.throws(() => bad({ ...oidc, ttl: "5" }), /oidc\.ttl: Cannot parse duration/);
  assert.throws(() => bad({ ...oidc, secret: "x" }), /oidc\.secret/);
  assert.throws(() => bad({ ...oidc, client_secret_file: 5 }), /oidc\.client_secret_file/);
  // A confidential client: burrow login is told to hand the server the codes.
  const confidential = parseServerConfig(
    JSON.stringify({ oidc: { ...oidc, client_secret_file: "/etc/burrow/oidc-secret" } }),
    "s.yaml",
  );
  const capp = httpApp(new Server(net, confidential, log));
  const cr = await capp.fetch(new Request("http://127.0.0.1/login/config"));
  assert.equal((await cr.json() as { confidential?: boolean }).confidential, true);
  const pub = await httpOnly.fetch(
    new Request("http://127.0.0.1/login/device", { method: "POST" }),
  );
  assert.equal(pub.status, 404, "no device endpoint for a public client");
  // A provider that does not answer: 502 with the reason, not a refused sign-in (401).
  const down = `https://127.0.0.1:${await freePort(net)}`;
  const downApp = httpApp(
    new Server(
      net,
      parseServerConfig(JSON.stringify({ oidc: { ...oidc, issuer: down } }), "s"),
      log,
    ),
  );
  const body = JSON.stringify({ id_token: "a.b.c" });
  const r502 = await downApp.fetch(
    new Request("http://127.0.0.1/login/token", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(body.length) },
      body,
    }),
  );
  assert.equal(r502.status, 502);
  assert.match((await r502.json() as { message: string }).message, /^provider metadata: /);
  // The active tokens are a metric.
  await withHttps.tokens.issue("person", "alice@example.com", 60, ["ops"]);
  assert.match(withHttps.metrics.render(), /^burrow_tokens_active 1$/m);
});
