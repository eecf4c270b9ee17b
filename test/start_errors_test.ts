/**
 * What a person does wrong at start gets one clear line, as a new user
 * meets it: real `burrow` processes (a port in use, TLS against a plain
 * server, a wrong token, an agent that cannot be used), and the reason of
 * every refused stream in the client proxy's log (SPEC.md §9.7, §10.2).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ClientProxy, connectThrough } from "../src/client.ts";
import { tokenCredential } from "../src/auth.ts";
import { targetOf } from "../src/ip.ts";
import { Reason, Status } from "../src/messages.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  BOB_TOKEN,
  burrow,
  memoryLogger,
  runtime,
  socks,
  testAgent,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

/** The process's output lines that are not log lines (logfmt lines start with `ts=`). */
function reportLines(output: string): string[] {
  return output.split("\n").filter((l) => l !== "" && !l.startsWith("ts="));
}

/** Exactly one report line, `burrow: ` + `want`, no stack trace. */
function oneLine(output: string, want: RegExp): void {
  const lines = reportLines(output);
  assert.equal(lines.length, 1, output);
  assert.match(lines[0]!, /^burrow: /);
  assert.match(lines[0]!, want);
}

for (const key of ["agents", "http"] as const) {
  test(`${rt}: listen.${key} in use is one line naming the address and key, exit 3`, async () => {
    const t = await tunnel({ startAgent: false });
    const held = await t.net.listen({ host: "127.0.0.1", port: 0 });
    const dir = mkdtempSync(join(tmpdir(), "burrow-listen-"));
    const file = join(dir, "server.yaml");
    const listen = { agents: "127.0.0.1:0", socks: "", clients: "", http: "" };
    listen[key] = `127.0.0.1:${held.addr.port}`;
    writeFileSync(
      file,
      `listen: ${JSON.stringify(listen)}\ntls: off\n` +
        `agents: [{ name: office, token: ${AGENT_TOKEN} }]\n`,
    );
    const p = burrow(rt, ["server", "-c", file]);
    try {
      assert.equal(await p.exited, 3, p.output());
      oneLine(
        p.output(),
        new RegExp(
          `^burrow: cannot listen on 127\\.0\\.0\\.1:${held.addr.port} \\(listen\\.${key}\\): ` +
            "address already in use$",
        ),
      );
    } finally {
      await p.stop();
      held.close();
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test(`${rt}: the client proxy's --listen in use is one line, exit 3`, async () => {
  const t = await tunnel();
  const held = await t.net.listen({ host: "127.0.0.1", port: 0 });
  const p = burrow(rt, [
    "client",
    "--plain",
    "--server",
    `127.0.0.1:${t.server.addrs.clients!.port}`,
    "--name",
    "alice",
    "--token",
    ALICE_TOKEN,
    "--listen",
    `127.0.0.1:${held.addr.port}`,
  ]);
  try {
    assert.equal(await p.exited, 3, p.output());
    oneLine(
      p.output(),
      new RegExp(
        `^burrow: cannot listen on 127\\.0\\.0\\.1:${held.addr.port} \\(--listen\\): ` +
          "address already in use$",
      ),
    );
  } finally {
    await p.stop();
    held.close();
    await t.close();
  }
});

/** `burrow client` for alice (or `name`) against the tunnel's client port, plus `extra` flags. */
function client(port: number, extra: string[], name = "alice", token = ALICE_TOKEN) {
  return burrow(rt, [
    "client",
    "--server",
    `127.0.0.1:${port}`,
    "--name",
    name,
    "--token",
    token,
    "--listen",
    "127.0.0.1:0",
    ...extra,
  ]);
}

test(`${rt}: burrow client with a wrong token exits at start with one line, exit 2`, async () => {
  const t = await tunnel();
  const p = client(t.server.addrs.clients!.port, ["--plain"], "alice", "wrong-token-0123456789");
  try {
    assert.equal(await p.exited, 2, p.output());
    oneLine(p.output(), /refused the client login: .*auth_failed/);
    assert.ok(!p.output().includes("client proxy listening"), p.output());
    assert.ok(!p.output().includes("wrong-token"), "the token is not echoed");
  } finally {
    await p.stop();
    await t.close();
  }
});

test(`${rt}: a TLS client proxy against a plain server says so and exits, exit 2`, async () => {
  const t = await tunnel();
  const pin = "AB:".repeat(31) + "AB";
  const p = client(t.server.addrs.clients!.port, ["--fingerprint", pin]);
  try {
    assert.equal(await p.exited, 2, p.output());
    oneLine(p.output(), /does not speak TLS on that port.*--plain/);
    assert.ok(!/secure TLS connection was established/.test(p.output()), p.output());
  } finally {
    await p.stop();
    await t.close();
  }
});

test(`${rt}: a TLS agent against a plain server logs that it does not speak TLS`, async () => {
  const t = await tunnel();
  const pin = "AB:".repeat(31) + "AB";
  const a = testAgent(t.net, t.server.addrs.agents!, "lab", { tls: { fingerprint: pin } });
  try {
    a.agent.start();
    assert.ok(
      await until(() => a.lines.some((l) => /does not speak TLS on that port/.test(l))),
      a.lines.join("\n"),
    );
  } finally {
    await a.agent.stop();
    await t.close();
  }
});

test(`${rt}: a TLS agent (the CLI) against a plain server says so and what to do`, async () => {
  const t = await tunnel();
  const p = burrow(rt, [
    "agent",
    "--server",
    `127.0.0.1:${t.server.addrs.agents!.port}`,
    "--name",
    "lab",
    "--token",
    AGENT_TOKEN,
    "--fingerprint",
    "AB:".repeat(31) + "AB",
    "--allow",
    "127.0.0.1:*",
  ]);
  try {
    const line = await p.waitFor(/.*does not speak TLS on that port.*/);
    assert.match(line, /use --plain if the server really runs with tls: off/);
    assert.ok(!/secure TLS connection was established/.test(p.output()), p.output());
  } finally {
    await p.stop();
    await t.close();
  }
});

test(`${rt}: an agent not granted or offline at start is a warning; the client proxy runs`, async () => {
  const t = await tunnel();
  const clients = t.server.addrs.clients!.port;
  const notGranted = client(clients, ["--plain", "--agent", "lab"]);
  const offline = client(clients, ["--plain", "--agent", "lab"], "bob", BOB_TOKEN);
  try {
    await notGranted.waitFor(/client proxy listening/);
    assert.match(notGranted.output(), /the agent cannot be used now.*reason=not_granted/);
    await offline.waitFor(/client proxy listening/);
    assert.match(offline.output(), /the agent cannot be used now.*reason=agent_offline/);
    assert.ok(t.logs.some((l) => /login check.*agent lab is offline/.test(l)), t.logs.join("\n"));
  } finally {
    await notGranted.stop();
    await offline.stop();
    await t.close();
  }
});

/** A client proxy for `name` to the tunnel's client port, not started, with its log lines. */
function unstarted(t: Tunnel, name: string, token: string) {
  const { log, lines } = memoryLogger();
  const proxy = new ClientProxy(t.net, {
    listen: { host: "127.0.0.1", port: 0 },
    server: t.server.addrs.clients!,
    name,
    credential: tokenCredential(token),
    agent: "",
  }, log);
  return { proxy, lines };
}

test(`${rt}: a refused stream's reason reaches the client proxy and its log`, async () => {
  const t = await tunnel();
  const { proxy, lines } = unstarted(t, "alice", ALICE_TOKEN);
  await proxy.checkLogin();
  await proxy.start();
  try {
    assert.ok(lines.some((l) => /login checked/.test(l)), lines.join("\n"));
    const r = await socks(t.net, proxy.addr!, "", "", targetOf("10.0.0.1", 80));
    r.conn.close();
    assert.equal(r.reply, Status.not_allowed);
    assert.ok(
      await until(() => lines.some((l) => /connect refused.*reason=outside_grant/.test(l))),
      lines.join("\n"),
    );
    // The wire: each refusal carries its code (SPEC.md §9.7).
    const opts = {
      server: t.server.addrs.clients!,
      name: "bob",
      credential: tokenCredential(BOB_TOKEN),
    };
    const cases: Array<[string, number, number]> = [
      ["", Status.not_allowed, Reason.agent_ambiguous],
      ["lab", Status.host_unreachable, Reason.agent_offline],
      ["ghost", Status.not_allowed, Reason.not_granted],
    ];
    for (const [agent, status, reason] of cases) {
      const c = await connectThrough(t.net, opts, agent, targetOf("127.0.0.1", 80));
      assert.deepEqual(c.ok ? "ok" : [c.error.status, c.error.reason], [status, reason], agent);
    }
  } finally {
    await proxy.stop();
    await t.close();
  }
});

test(`${rt}: a refused login check with a wrong token is a typed error, not a listener`, async () => {
  const t = await tunnel();
  const { proxy } = unstarted(t, "alice", "wrong-token-0123456789");
  try {
    await assert.rejects(proxy.checkLogin(), /refused the client login/);
    assert.equal(proxy.addr, undefined);
  } finally {
    await proxy.stop();
    await t.close();
  }
});

test(`${rt}: several granted agents and no --agent is no warning: programs name one`, async () => {
  const t = await tunnel();
  const { proxy, lines } = unstarted(t, "bob", BOB_TOKEN);
  try {
    await proxy.checkLogin();
    assert.ok(lines.some((l) => /level=info.*name the agent as the SOCKS5 user name/.test(l)));
    assert.ok(!lines.some((l) => /level=warn/.test(l)), lines.join("\n"));
  } finally {
    await proxy.stop();
    await t.close();
  }
});
