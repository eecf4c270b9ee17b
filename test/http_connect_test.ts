/**
 * HTTP CONNECT on the server's SOCKS5 port and on the client proxy's local
 * port (SPEC.md §8.1, §10.2), driven by real programs: curl (`-x http://`
 * and `--proxytunnel`), `git clone` over https through `HTTPS_PROXY` from
 * nginx serving a "dumb HTTP" repository, and headless Chromium with
 * `--proxy-server` pointed at the client proxy. Raw requests check each
 * refusal (407, 403, 405, 400, 431, 502) and that wrong credentials count
 * as failed logins, as on the SOCKS5 path. One server, agent, nginx and
 * client proxy serve the whole file.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { ClientProxy } from "../src/client.ts";
import { basicAuth, httpCodeOf, parseAuthority } from "../src/http_connect.ts";
import { Status } from "../src/messages.ts";
import type { Addr, Conn, Net } from "../src/net.ts";
import { launchChromium } from "./cdp.ts";
import { staticSite } from "./daemons.ts";
import {
  ALICE_TOKEN,
  BOB_TOKEN,
  clientProxy,
  freePort,
  readAll,
  runtime,
  runtimeNet,
  testAgent,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;
const HELLO = `hello through burrow ${rt}\n`;

/** Run `cmd` (not blocking this process's event loop: the server runs in it). */
function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...env }, timeout: 30_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Send `head` raw; the reply's status code, head and body (read to the end). */
async function ask(net: Net, to: Addr, head: string) {
  const conn = await net.dial(to);
  try {
    await conn.write(new TextEncoder().encode(head));
    const text = new TextDecoder().decode(await readAll(conn, 1 << 20));
    const [top = "", body = ""] = text.split("\r\n\r\n");
    return { code: Number(/^HTTP\/1\.1 (\d{3}) /.exec(top)?.[1]), head: top, body };
  } finally {
    conn.close();
  }
}

const connect = (target: string, user?: string, token?: string) =>
  `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n` +
  (user === undefined ? "" : `Proxy-Authorization: Basic ${btoa(`${user}:${token}`)}\r\n`) +
  "\r\n";

let t: Tunnel;
let site: Awaited<ReturnType<typeof staticSite>>;
let local: ClientProxy;
let root: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "burrow-http-connect-"));
  writeFileSync(join(root, "hello.txt"), HELLO);
  writeFileSync(join(root, "index.html"), `<title>burrow page</title><p id=x>${HELLO}</p>`);
  // A bare repository served as static files ("dumb HTTP").
  const work = join(root, "work");
  mkdirSync(work);
  const git = (...args: string[]) => run("git", args, { GIT_CONFIG_NOSYSTEM: "1", HOME: root });
  await git("-C", work, "init", "-q", "-b", "main");
  writeFileSync(join(work, "README"), "cloned through burrow\n");
  await git("-C", work, "add", "README");
  await git("-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one");
  await git("clone", "-q", "--bare", work, join(root, "repo.git"));
  await git("-C", join(root, "repo.git"), "update-server-info");
  site = await staticSite(await runtimeNet(), root);
  t = await tunnel();
  local = await clientProxy(t);
});

after(async () => {
  await local.stop();
  await t.close();
  await site.stop();
  rmSync(root, { recursive: true, force: true });
});

const proxyUrl = (user = "alice", token = ALICE_TOKEN) =>
  `http://${encodeURIComponent(user)}:${token}@127.0.0.1:${t.socks.port}`;

test("http_connect: authority, Basic credentials and status codes", () => {
  assert.deepEqual(parseAuthority("db.corp:5432"), { type: "domain", host: "db.corp", port: 5432 });
  assert.deepEqual(parseAuthority("[::1]:22"), { type: "ipv6", host: "::1", port: 22 });
  for (const bad of ["db.corp", "db.corp:0", "db.corp:65536", "[zz]:1", "/x:1", "a:b:1"]) {
    assert.equal(parseAuthority(bad), null, bad);
  }
  assert.deepEqual(basicAuth(`Basic ${btoa("alice@office:t:k")}`), {
    user: "alice@office",
    password: "t:k",
  });
  assert.equal(basicAuth(null), null);
  assert.equal(basicAuth("Bearer abc"), null);
  assert.deepEqual(basicAuth("Basic !!!"), { user: "", password: "" });
  assert.equal(httpCodeOf(Status.not_allowed), 403);
  assert.equal(httpCodeOf(Status.ttl_expired), 504);
  assert.equal(httpCodeOf(Status.connection_refused), 502);
  assert.equal(httpCodeOf(Status.host_unreachable), 502);
});

test(`${rt}: curl -x http:// (https, CONNECT) and --proxytunnel (http) on the SOCKS5 port`, async () => {
  const https = await run("curl", [
    "-sSfk",
    "-x",
    proxyUrl("alice@office"),
    `https://127.0.0.1:${site.https.port}/hello.txt`,
  ]);
  assert.equal(https.stdout, HELLO, https.stderr);
  const tunnelled = await run("curl", [
    "-sSf",
    "--proxytunnel",
    "-x",
    proxyUrl(),
    `http://127.0.0.1:${site.http.port}/hello.txt`,
  ]);
  assert.equal(tunnelled.stdout, HELLO, tunnelled.stderr);
  // SOCKS5 on the same port still works.
  const socks = await run("curl", [
    "-sSf",
    "--socks5-hostname",
    `127.0.0.1:${t.socks.port}`,
    "--proxy-user",
    `alice:${ALICE_TOKEN}`,
    `http://127.0.0.1:${site.http.port}/hello.txt`,
  ]);
  assert.equal(socks.stdout, HELLO, socks.stderr);
  // Without CONNECT, curl's absolute-form GET is refused with the hint.
  const get = await run("curl", ["-sS", "-x", proxyUrl(), `http://127.0.0.1:${site.http.port}/`]);
  assert.match(get.stdout, /use CONNECT .* or SOCKS5/);
});

test(`${rt}: git clone over https through HTTPS_PROXY (dumb HTTP, self-signed)`, async () => {
  const dest = join(root, `clone-${rt}`);
  const r = await run(
    "git",
    ["clone", "-q", `https://127.0.0.1:${site.https.port}/repo.git`, dest],
    {
      HTTPS_PROXY: proxyUrl(),
      GIT_SSL_NO_VERIFY: "1",
      GIT_CONFIG_NOSYSTEM: "1",
      HOME: root,
      GIT_TERMINAL_PROMPT: "0",
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(dest, "README"), "utf8"), "cloned through burrow\n");
  assert.ok(t.logs.some((l) => l.includes("stream ended") && l.includes("port=http")));
});

test(`${rt}: refusals: 407 (missing, wrong), 403, 405, 400, 431, 502; not HTTP: SOCKS5`, async () => {
  const target = `127.0.0.1:${site.http.port}`;
  const missing = await ask(t.net, t.socks, connect(target));
  assert.equal(missing.code, 407);
  assert.match(missing.head, /\r\nProxy-Authenticate: Basic realm="burrow"/);
  const failures = () => t.server.metrics.get("burrow_auth_failures_total", { role: "socks" });
  const before = failures();
  const wrong = await ask(t.net, t.socks, connect(target, "alice", "not-the-token"));
  assert.equal(wrong.code, 407);
  assert.match(wrong.head, /Proxy-Authenticate: Basic/);
  const unknown = await ask(t.net, t.socks, connect(target, "mallory", ALICE_TOKEN));
  assert.equal(unknown.code, 407);
  assert.equal(failures(), before + 2); // counted as failed SOCKS5 logins are
  // bob's grant is 127.0.0.1:1-1024.
  const outside = await ask(t.net, t.socks, connect(target, "bob@office", BOB_TOKEN));
  assert.equal(outside.code, 403);
  assert.equal(outside.body, "not_allowed: outside_grant\n");
  const get = await ask(t.net, t.socks, `GET http://${target}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal(get.code, 405);
  assert.match(get.head, /\r\nAllow: CONNECT/);
  const bad = await ask(t.net, t.socks, connect("no-port", "alice", ALICE_TOKEN));
  assert.equal(bad.code, 400);
  const junk = await ask(t.net, t.socks, "\x16\x03\x01junk"); // neither: a bad SOCKS5 greeting
  assert.equal(junk.head, "");
  const long = await ask(t.net, t.socks, `CONNECT ${target} HTTP/1.1\r\nX: ${"a".repeat(9000)}`);
  assert.equal(long.code, 431);
  // Whole, in one write: the limit holds for a head that arrives in one chunk.
  const whole = await ask(
    t.net,
    t.socks,
    `CONNECT ${target} HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`,
  );
  assert.equal(whole.code, 431);
  const many = `CONNECT ${target} HTTP/1.1\r\n${"X: y\r\n".repeat(65)}\r\n`;
  assert.equal((await ask(t.net, t.socks, many)).code, 431);
  assert.equal(t.server.metrics.get("burrow_limit_hits_total", { limit: "http_head_bytes" }), 2);
  assert.equal(t.server.metrics.get("burrow_limit_hits_total", { limit: "http_headers" }), 1);
  const closed = await freePort(t.net); // nothing listens there: the agent's dial is refused
  const refused = await ask(t.net, t.socks, connect(`127.0.0.1:${closed}`, "alice", ALICE_TOKEN));
  assert.equal(refused.code, 502);
  assert.match(refused.body, /^connection_refused: /);
});

test(`${rt}: an agent that does not answer OPEN in time: 504`, async () => {
  // The agent's dial to port 1 hangs (as to a target that drops SYNs).
  const net = await runtimeNet();
  const stalled: Array<(e: Error) => void> = [];
  const stalling = {
    ...net,
    dial: (o: Parameters<typeof net.dial>[0]) =>
      o.port === 1 ? new Promise<Conn>((_, reject) => stalled.push(reject)) : net.dial(o),
  };
  const s = await tunnel({ config: { pool: { open_timeout: "300ms" } }, startAgent: false });
  const { agent } = testAgent(stalling, s.server.addrs.agents!, "office");
  agent.start();
  try {
    await agent.connected();
    const r = await ask(s.net, s.socks, connect("127.0.0.1:1", "alice", ALICE_TOKEN));
    assert.equal(r.code, 504);
    assert.equal(r.body, "ttl_expired: agent_timeout\n");
    assert.equal(stalled.length, 1, "the agent was dialing");
  } finally {
    for (const reject of stalled) reject(new Error("test over"));
    await agent.stop();
    await s.close();
  }
});

test(`${rt}: a slow head is closed at the handshake timeout; failed HTTP logins block the source`, async () => {
  const s = await tunnel({
    config: { handshake_timeout: "300ms", limits: { auth_failures_per_minute: 2 } },
  });
  try {
    const target = `127.0.0.1:${site.http.port}`;
    const slow = await s.net.dial(s.socks);
    await slow.write(new TextEncoder().encode(`CONNECT ${target} HTTP/1.1\r\nHost: x\r\n`));
    assert.equal((await readAll(slow)).length, 0); // closed without a reply
    slow.close();
    assert.ok(
      s.logs.some((l) => l.includes("limit=handshake_timeout") && l.includes("port=socks")),
    );
    for (let i = 0; i < 2; i++) {
      assert.equal((await ask(s.net, s.socks, connect(target, "alice", "wrong"))).code, 407);
    }
    // Blocked: the next connection is closed at once, even with the right token.
    const blocked = await ask(s.net, s.socks, connect(target, "alice", ALICE_TOKEN));
    assert.equal(blocked.head, "");
    assert.ok(s.logs.some((l) => l.includes("limit=auth_failures")));
  } finally {
    await s.close();
  }
});

test(`${rt}: the client proxy's port speaks HTTP CONNECT without credentials`, async () => {
  const proxy = `http://127.0.0.1:${local.addr!.port}`;
  const r = await run("curl", [
    "-sSf",
    "--proxytunnel",
    "-x",
    proxy,
    `http://127.0.0.1:${site.http.port}/hello.txt`,
  ]);
  assert.equal(r.stdout, HELLO, r.stderr);
  const outside = await ask(t.net, local.addr!, connect("10.255.255.1:80"));
  assert.equal(outside.code, 403);
  assert.match(outside.body, /^not_allowed: outside_grant/);
  const get = await ask(t.net, local.addr!, "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal(get.code, 405);
});

test(`${rt}: Chromium with --proxy-server=http:// at the client proxy`, async () => {
  const streams = () => t.logs.filter((l) => l.includes("stream ended")).length;
  const before = streams();
  const browser = await launchChromium(t.net, 800, 600, [
    `--proxy-server=http://127.0.0.1:${local.addr!.port}`,
    "--proxy-bypass-list=<-loopback>",
    "--ignore-certificate-errors",
  ]);
  try {
    const page = await browser.open(`https://127.0.0.1:${site.https.port}/index.html`);
    assert.ok(await page.waitFor(`document.getElementById("x")?.textContent.includes("${rt}")`));
    assert.equal(await page.eval<string>("document.title"), "burrow page");
  } finally {
    await browser.close();
  }
  assert.ok(await until(() => streams() > before), "no stream went through burrow");
});
