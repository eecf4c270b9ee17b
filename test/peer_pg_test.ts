/**
 * A fleet of `burrow server` processes on a real PostgreSQL 15 (test/pg.ts):
 * three servers with peer links, two `burrow agent` processes given all
 * three and keeping sessions with two (servers_per_agent 2); curl and the
 * npm socks client on every server reach every agent, forwarded when their
 * server holds no session; the fleet view on each server lists everyone; a
 * server killed with -9: until its lease (`store.lease`, short here) expires
 * the others' fleet view (API and dashboard, in headless Chromium) lists its
 * agents from presence, marked unreachable; then it drops out, and CONNECTs
 * for its agents go to the servers that still hold them.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SocksClient } from "socks";
import type { Net } from "../src/net.ts";
import type { AgentView, PresenceAgentView } from "../src/server/snapshot.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  echoTarget,
  freePorts,
  type Proc,
  runtime,
  runtimeNet,
} from "./helpers.ts";
import { type Browser, launchChromium } from "./cdp.ts";
import { type Pg, startPg } from "./pg.ts";

const rt = runtime;
const ADMIN = "admin-token-0123456789abcdef";
const STORE_KEY = "5a".repeat(32);
const SECRET = "fleet-secret-0123456789";
/** `store.lease`: how long a killed server's agents are still listed, from presence. */
const LEASE = "8s";
let pg: Pg;
let net: Net;

before(async () => {
  net = await runtimeNet();
  pg = await startPg(net);
});
after(async () => {
  await pg?.close();
});

interface Member {
  proc: Proc;
  socks: number;
  http: number;
  agents: number;
  killed: boolean;
}

/** GET the fleet view of `m`. */
async function snapshot(m: Member): Promise<{
  agents: Array<(AgentView | PresenceAgentView) & { server: string }>;
  fleet: { self: string; servers: string[]; unreachable: string[] };
}> {
  const r = await fetch(`http://127.0.0.1:${m.http}/api/v1/snapshot`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  return await r.json() as never;
}

/** curl through `m`'s SOCKS5 port as alice@agent to `url`: exit code and body. */
function curl(m: Member, agent: string, url: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(
      "curl",
      [
        "-sS",
        "--max-time",
        "10",
        "--socks5-hostname",
        `127.0.0.1:${m.socks}`,
        "--proxy-user",
        `alice@${agent}:${ALICE_TOKEN}`,
        url,
      ],
      (e, out) =>
        resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, out: String(out) }),
    )
  );
}

/** One echo through `m` with the npm socks client, half-closed: what came back. */
async function socksEcho(m: Member, agent: string, port: number, text: string): Promise<string> {
  const { socket } = await SocksClient.createConnection({
    proxy: {
      host: "127.0.0.1",
      port: m.socks,
      type: 5,
      userId: `alice@${agent}`,
      password: ALICE_TOKEN,
    },
    command: "connect",
    destination: { host: "127.0.0.1", port },
    timeout: 10000,
  });
  const got = new Promise<string>((resolve, reject) => {
    let s = "";
    socket.on("data", (d: Uint8Array) => s += new TextDecoder().decode(d));
    socket.on("end", () => resolve(s));
    socket.on("error", reject);
  });
  socket.end(text);
  try {
    return await got;
  } finally {
    socket.destroy();
  }
}

test(`${rt}: fleet on PostgreSQL: every server reaches every agent; a server killed with -9 drops out and its agents stay reachable`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-peers-pg-"));
  const echo = await echoTarget(net);
  const certs = await Promise.all([0, 1, 2].map(() => generateSelfSigned()));
  const pins = await Promise.all(certs.map((c) => fingerprint(c.cert)));
  const ports = await freePorts(net, 12);
  writeFileSync(join(dir, "fleet.secret"), SECRET, { mode: 0o600 });
  writeFileSync(join(dir, "agent.token"), AGENT_TOKEN, { mode: 0o600 });
  const members: Member[] = [];
  const agents: Proc[] = [];
  const started = Date.now();
  let browser: Browser | undefined;
  try {
    for (let i = 0; i < 3; i++) {
      const [agentsPort, socksPort, http, peer] = ports.slice(i * 4, i * 4 + 4) as [
        number,
        number,
        number,
        number,
      ];
      writeFileSync(join(dir, `cert${i}.pem`), certs[i]!.cert);
      writeFileSync(join(dir, `key${i}.pem`), certs[i]!.key, { mode: 0o600 });
      writeFileSync(
        join(dir, `server${i}.yaml`),
        JSON.stringify({
          listen: {
            agents: `127.0.0.1:${agentsPort}`,
            socks: `127.0.0.1:${socksPort}`,
            clients: "",
            http: `127.0.0.1:${http}`,
          },
          tls: { cert: `cert${i}.pem`, key: `key${i}.pem` },
          state_dir: `state${i}`,
          heartbeat: { interval: "500ms", timeout: "2s" },
          pool: { min: 1, max: 8, wait: "3s" },
          admin: { token: ADMIN },
          store: { postgres: pg.url, lease: LEASE, lease_renew: "500ms" },
          agents: [{ name: "office", token: AGENT_TOKEN }, { name: "lab", token: AGENT_TOKEN }],
          clients: [{ name: "alice", token: ALICE_TOKEN }],
          grants: [{ client: "alice", agents: ["office", "lab"], targets: ["127.0.0.1:*"] }],
          peer: {
            listen: `127.0.0.1:${peer}`,
            advertise: `127.0.0.1:${peer}`,
            token_file: "fleet.secret",
            fingerprint: pins,
          },
        }),
      );
      const proc = burrow(rt, ["server", "-c", join(dir, `server${i}.yaml`)], {
        BURROW_STORE_KEY: STORE_KEY,
      });
      members.push({ proc, socks: socksPort, http, agents: agentsPort, killed: false });
    }
    for (const m of members) await m.proc.waitFor(/peer port listening/, 30_000);
    for (const name of ["office", "lab"]) {
      agents.push(burrow(rt, [
        "agent",
        ...members.flatMap((m) => ["--server", `127.0.0.1:${m.agents}`]),
        ...pins.flatMap((p) => ["--fingerprint", p]),
        "--name",
        name,
        "--token-file",
        join(dir, "agent.token"),
        "--allow",
        "127.0.0.1:*",
      ]));
    }
    // Each agent on exactly two servers, as every server's fleet view says.
    const placed = async (m: Member, name: string) =>
      (await snapshot(m)).agents.filter((a) => a.name === name).length;
    for (const m of members) {
      for (const name of ["office", "lab"]) {
        let n = 0;
        for (let t = 0; t < 150 && (n = await placed(m, name)) !== 2; t++) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(n, 2, `${name} on two servers, as seen from one:\n${m.proc.output()}`);
      }
    }
    const view = await snapshot(members[0]!);
    assert.equal(view.fleet.servers.length, 3);
    // curl and the npm socks client through every server to every agent.
    for (const m of members) {
      for (const name of ["office", "lab"]) {
        const r = await curl(m, name, `http://127.0.0.1:${members[0]!.http}/healthz`);
        assert.equal(r.code, 0, `curl via ${m.socks} to ${name}:\n${m.proc.output()}`);
        assert.match(r.out, /"status":"ok"/);
        const text = `to ${name} via ${m.socks} `.repeat(500);
        assert.equal(await socksEcho(m, name, echo.addr.port, text), text);
      }
    }
    // Kill -9 a server that holds office.
    const holders = new Set(view.agents.filter((a) => a.name === "office").map((a) => a.server));
    const ids = await Promise.all(members.map(async (m) => (await snapshot(m)).fleet.self));
    const victim = members[ids.findIndex((id) => holders.has(id))]!;
    const victimId = ids[members.indexOf(victim)]!;
    const held = view.agents.filter((a) => a.server === victimId).map((a) => a.name).sort();
    const alive = members.filter((m) => m !== victim);
    // A dashboard of another server, open before the kill.
    browser = await launchChromium(net);
    const page = await browser.open(`http://127.0.0.1:${alive[0]!.http}/#token=${ADMIN}`);
    const marked = `document.querySelector('#agents [data-source="presence"]')`;
    assert.ok(await page.waitFor(`document.querySelector('#agents [data-agent="office"]')`));
    assert.equal(await page.eval(marked), null, "nothing marked while every server answers");
    const killedAt = Date.now();
    victim.killed = true;
    await victim.proc.stop("SIGKILL");
    // Until its lease expires, the others list its agents from presence, marked unreachable.
    for (const m of alive) {
      const v = await snapshot(m);
      const before = `within ${LEASE} of the kill (${Date.now() - killedAt} ms)`;
      assert.deepEqual(v.fleet.unreachable, [victimId], `${before}: ${JSON.stringify(v.fleet)}`);
      const listed = v.agents.filter((a) => a.server === victimId);
      assert.deepEqual(listed.map((a) => a.name).sort(), held);
      for (const a of listed) {
        assert.ok("source" in a, JSON.stringify(a));
        assert.equal(a.source, "presence");
        assert.equal(a.reachable, false);
        assert.ok(!("streams" in a) && !("pool" in a), "no live counts");
        assert.match(a.session, /^[0-9a-f]{8}$/);
        const since = Date.parse(a.connected_since);
        assert.ok(since > started - 1000 && since < killedAt + 1000, a.connected_since);
      }
    }
    assert.ok(await page.waitFor(marked), "the dashboard marks the unreachable server's replicas");
    assert.match(await page.eval<string>(`${marked}.innerText`), /unreachable/);
    // Its lease expires: every other server's view drops it, its agents with it.
    let gone = false;
    for (let t = 0; t < 250 && !gone; t++) {
      const views = await Promise.all(alive.map(snapshot));
      gone = views.every((v) =>
        !v.fleet.servers.includes(victimId) && !v.fleet.unreachable.includes(victimId) &&
        !v.agents.some((a) => a.server === victimId)
      );
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(gone, "the killed server's lease expired everywhere");
    assert.ok(await page.waitFor(`!${marked}`), "the dashboard drops them too");
    // CONNECTs for office from every living server go to a server that holds it.
    for (const m of alive) {
      const text = `after the kill via ${m.socks}`;
      assert.equal(await socksEcho(m, "office", echo.addr.port, text), text);
      const r = await curl(m, "office", `http://127.0.0.1:${alive[0]!.http}/healthz`);
      assert.equal(r.code, 0, m.proc.output());
    }
  } finally {
    await browser?.close();
    for (const a of agents) await a.stop();
    for (const m of members) if (!m.killed) await m.proc.stop();
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
