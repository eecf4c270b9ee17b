/**
 * Agent replicas (SPEC.md §2.1, §7.2): several agents with one name and
 * different instance ids share the load; a reconnect of the same instance
 * replaces its own session; when a replica dies the others take every new
 * stream; an agent that has not announced is not routable.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { tokenCredential } from "../src/auth.ts";
import { Status } from "../src/messages.ts";
import { parseRule } from "../src/policy.ts";
import { login, Wire } from "../src/wire.ts";
import { NO_ADDR } from "../src/writer.ts";
import {
  AGENT_TOKEN,
  burrow,
  echoTarget,
  runtime,
  socksTo,
  startReplicas,
  testAgent,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;
type Replica = ReturnType<typeof testAgent>;

/** One echo stream through the tunnel's SOCKS port; true if it worked. */
async function echoOnce(
  t: Awaited<ReturnType<typeof tunnel>>,
  port: number,
  i: number,
): Promise<boolean> {
  const s = await socksTo(t, port);
  try {
    if (s.reply !== Status.succeeded) return false;
    await s.conn.write(new TextEncoder().encode(`ping ${i}`));
    const back = await s.conn.read();
    return back !== null && new TextDecoder().decode(back) === `ping ${i}`;
  } finally {
    s.conn.close();
  }
}

test(`${rt}: replicas: two instances share the streams; the same instance replaces itself`, async () => {
  const t = await tunnel({ startAgent: false });
  const echo = await echoTarget(t.net);
  const agents = t.server.addrs.agents!;
  const [one, two] = await startReplicas(t, "office") as [Replica, Replica];
  try {
    let ok = 0;
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => echoOnce(t, echo.addr.port, round * 10 + i)),
      );
      ok += results.filter(Boolean).length;
    }
    assert.equal(ok, 100);
    const served = (lines: string[]) => lines.filter((l) => l.includes('msg="stream open"')).length;
    const [a, b] = [served(one.lines), served(two.lines)];
    assert.equal(a + b, 100);
    assert.ok(a >= 25 && b >= 25, `each replica serves at least 25 of 100 (got ${a} and ${b})`);
    // A second process of the same instance (a reconnect) replaces that instance's session only.
    const again = testAgent(t.net, agents, "office", { instance: one.agent.instance });
    again.agent.start();
    await again.agent.connected();
    assert.ok(
      await until(() => one.lines.some((l) => /replaced|another agent with this name/.test(l))),
    );
    const group = t.server.agents.group("office");
    assert.ok(
      group.some((s) =>
        s.instance && Buffer.from(s.instance).equals(Buffer.from(two.agent.instance))
      ),
    );
    await again.agent.stop();
  } finally {
    await one.agent.stop();
    await two.agent.stop();
    echo.close();
    await t.close();
  }
});

test(`${rt}: replicas: an agent that has not announced gets 0x04, not a policy refusal`, async () => {
  const t = await tunnel({
    startAgent: false,
    config: { pool: { min: 1, max: 4, wait: "300ms" } },
  });
  const w = new Wire(await t.net.dial(t.server.addrs.agents!));
  try {
    await login(w, "agent", "office", tokenCredential(AGENT_TOKEN), "silent agent");
    await w.expect("WELCOME");
    // Logged in, never announces.
    const s = await socksTo(t, 9);
    s.conn.close();
    assert.equal(s.reply, Status.host_unreachable);
    assert.ok(t.logs.some((l) => l.includes("has not announced its targets")));
  } finally {
    w.conn.close();
    await t.close();
  }
});

test(`${rt}: replicas: kill -9 one replica; once its session ends every stream goes through the other`, async () => {
  const t = await tunnel({ startAgent: false });
  const echo = await echoTarget(t.net);
  const dir = mkdtempSync(join(tmpdir(), "burrow-replica-"));
  writeFileSync(join(dir, "agent.token"), AGENT_TOKEN, { mode: 0o600 });
  const args = [
    "agent",
    "--server",
    `127.0.0.1:${t.server.addrs.agents!.port}`,
    "--name",
    "office",
    "--token-file",
    join(dir, "agent.token"),
    "--plain",
    "--allow",
    "127.0.0.1:*",
  ];
  const a = burrow(rt, args);
  const b = burrow(rt, args);
  try {
    assert.ok(
      await until(
        () => t.server.agents.group("office").filter((s) => s.announced).length === 2,
        20_000,
      ),
      `two replicas:\n${a.output()}\n${b.output()}`,
    );
    assert.ok(await until(() => t.server.agents.group("office").every((s) => s.idle >= 1)));
    await a.stop("SIGKILL");
    assert.ok(
      await until(() => t.server.agents.group("office").length === 1),
      "the dead replica's session ended",
    );
    let ok = 0;
    for (let i = 0; i < 20; i++) if (await echoOnce(t, echo.addr.port, i)) ok++;
    assert.equal(ok, 20);
  } finally {
    await a.stop();
    await b.stop();
    echo.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${rt}: replicas: a replica whose INSTANCE is still on its way is not replaced by another`, async () => {
  const t = await tunnel({ startAgent: false });
  const wires: Wire[] = [];
  try {
    const loginOne = async () => {
      const w = new Wire(await t.net.dial(t.server.addrs.agents!));
      wires.push(w);
      await login(w, "agent", "office", tokenCredential(AGENT_TOKEN), "raw agent");
      await w.expect("WELCOME");
      return w;
    };
    const [a, b] = [await loginOne(), await loginOne()];
    // B says who it is first; A's INSTANCE comes later (as when two start at once).
    await b.send({ type: "INSTANCE", instance: new Uint8Array(16).fill(2), nameserver: NO_ADDR });
    await b.send({ type: "ANNOUNCE", rules: parseRule("127.0.0.1:*") });
    await a.send({ type: "INSTANCE", instance: new Uint8Array(16).fill(1), nameserver: NO_ADDR });
    await a.send({ type: "ANNOUNCE", rules: parseRule("127.0.0.1:*") });
    assert.ok(
      await until(() => t.server.agents.group("office").filter((s) => s.announced).length === 2),
    );
    // A reconnect of instance 1 replaces only A.
    const c = await loginOne();
    await c.send({ type: "INSTANCE", instance: new Uint8Array(16).fill(1), nameserver: NO_ADDR });
    const goaway = await a.recv().then(async function skip(m): Promise<unknown> {
      return m && (m.type === "POOL_REQUEST" || m.type === "PING") ? skip(await a.recv()) : m;
    });
    assert.equal((goaway as { type?: string } | null)?.type, "GOAWAY");
    assert.equal(t.server.agents.group("office").length, 2);
  } finally {
    for (const w of wires) w.conn.close();
    await t.close();
  }
});
