/**
 * A datagram flood on one UDP association (SPEC.md §2.5 "Never waiting"),
 * against a `burrow server` and a `burrow agent` started as they run in
 * production (their own processes, Deno with its V8 flag): a TCP stream
 * through the same link completes while the flood goes on, and neither
 * process grows by more than 64 MiB of RSS over 60 000 flooded datagrams
 * (80 MB) after the first 10 000 (the runtimes' heaps size themselves
 * first). No wall-time assertion: the loops are bounded in count and time.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { targetOf } from "../src/ip.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  echoTarget,
  freePorts,
  readAll,
  runtime as rt,
  runtimeNet,
  socks,
  until,
} from "./helpers.ts";
import { associate, text, udpEcho } from "./udp_helpers.ts";

const MiB = 1 << 20;
const MAX_GROWTH = 64 * MiB;

function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

test(`${rt}: udp flood: a TCP stream on the link goes on, server and agent grow by ≤ 64 MiB`, async () => {
  const net = await runtimeNet();
  const dir = mkdtempSync(join(tmpdir(), "burrow-udp-flood-"));
  const [agents, socksPort, clients] = await freePorts(net, 3) as [number, number, number];
  const config = join(dir, "server.yaml");
  writeFileSync(
    config,
    `listen:
  agents: 127.0.0.1:${agents}
  socks: 127.0.0.1:${socksPort}
  clients: 127.0.0.1:${clients}
  http: ""
tls: off
state_dir: ${join(dir, "state")}
agents:
  - { name: office, token: ${AGENT_TOKEN} }
clients:
  - { name: alice, token: ${ALICE_TOKEN} }
grants:
  - { client: alice, agent: office, targets: ["127.0.0.1:*", "127.0.0.1:*/udp"] }
`,
  );
  const echo = await udpEcho(net);
  const tcp = await echoTarget(net);
  const server = burrow(rt, ["server", "-c", config, "--no-watch"]);
  const agent = burrow(rt, [
    "agent",
    "--plain",
    "--server",
    `127.0.0.1:${agents}`,
    "--name",
    "office",
    "--token",
    AGENT_TOKEN,
    "--allow",
    "127.0.0.1:*",
    "--allow",
    "127.0.0.1:*/udp",
  ]);
  let flooding = true;
  let flood: Promise<void> | null = null;
  try {
    await server.waitFor(/server listening/);
    await agent.waitFor(/msg="connected"/);
    const proxy = { host: "127.0.0.1", port: socksPort };
    const a = await associate({ net, socks: proxy });
    const target = targetOf("127.0.0.1", echo.addr.port);
    await a.send(target, text("warm"));
    await a.receive(20_000);
    let floodEnded = false;
    const payload = new Uint8Array(1400);
    const stopAt = Date.now() + 180_000; // bounds the loop; the counts below end it first
    flood = (async () => {
      for (let i = 0; flooding && i < 5_000_000 && Date.now() < stopAt; i++) {
        await a.send(target, payload).catch(() => {});
        // A send may complete without a turn of the event loop: yield to the others.
        if (i % 32 === 0) await new Promise((r) => setTimeout(r, 0));
      }
      floodEnded = true;
    })();
    // Replies pile up in the test's own socket: its bounded queue drops them.
    assert.ok(await until(() => echo.got() > 10_000, 120_000), `echo got ${echo.got()}`);
    const base = [rss(server.child.pid!), rss(agent.child.pid!)];
    const peak = [...base];
    const watch = setInterval(() => {
      try {
        peak[0] = Math.max(peak[0]!, rss(server.child.pid!));
        peak[1] = Math.max(peak[1]!, rss(agent.child.pid!));
      } catch {
        // exited: the checks below say so
      }
    }, 100);
    const start = echo.got();
    try {
      // A TCP stream through the same link, in the flood: 1 MiB echoed whole.
      const s = await socks(net, proxy, "alice", ALICE_TOKEN, targetOf("127.0.0.1", tcp.addr.port));
      assert.equal(s.reply, 0);
      const data = new Uint8Array(MiB).map((_, i) => i % 251);
      const back = readAll(s.conn);
      await s.conn.write(data);
      await s.conn.end();
      assert.deepEqual(await back, data);
      assert.equal(floodEnded, false, "the TCP stream finished while the flood went on");
      const more = () => echo.got() - start;
      assert.ok(await until(() => more() > 60_000, 150_000), `${more()} datagrams`);
    } finally {
      clearInterval(watch);
    }
    flooding = false;
    await flood;
    a.close();
    const grew = (i: number) => `${((peak[i]! - base[i]!) / MiB).toFixed(1)} MiB`;
    assert.ok(peak[0]! - base[0]! <= MAX_GROWTH, `server grew ${grew(0)}`);
    assert.ok(peak[1]! - base[1]! <= MAX_GROWTH, `agent grew ${grew(1)}`);
  } finally {
    flooding = false;
    await flood;
    echo.close();
    tcp.close();
    await agent.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
