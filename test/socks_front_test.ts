/**
 * The SOCKS5 port's log lines (SPEC.md §11.2): a token typed where a name
 * goes, the client's or the agent's, never lands in the log.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { connectThrough } from "../src/client.ts";
import { tokenCredential } from "../src/auth.ts";
import { targetOf } from "../src/ip.ts";
import { Status } from "../src/messages.ts";
import { loggableAgent, loggableUser } from "../src/server/socks_front.ts";
import { ALICE_TOKEN, runtime, socks, tunnel, until } from "./helpers.ts";

const rt = runtime;
/** Has the shape of a name, as a burrow token has. */
const SECRET = "Zm9vYmFyYmF6cXV4LTEyMzQ1Njc4";

test("loggableUser / loggableAgent: names only when configured, else lengths", () => {
  const clients = (c: string) => c === "alice";
  const agents = (a: string) => a === "office";
  assert.deepEqual(loggableUser("alice@office", clients, agents), { user: "alice@office" });
  assert.deepEqual(loggableUser("alice", clients, agents), { user: "alice" });
  assert.deepEqual(loggableUser(`alice@${SECRET}`, clients, agents), {
    client: "alice",
    agent_bytes: 28,
  });
  assert.deepEqual(loggableUser(`${SECRET}@office`, clients, agents), { user_bytes: 35 });
  assert.deepEqual(loggableAgent(SECRET, agents), { agent_bytes: 28 });
  assert.deepEqual(loggableAgent("office", agents), { agent: "office" });
  assert.deepEqual(loggableAgent("", agents), {});
});

test(`${rt}: a token typed as the agent part of the SOCKS user name is not logged`, async () => {
  const t = await tunnel();
  try {
    // Right password, the token as the agent: the CONNECT is refused, and logged.
    const ok = await socks(
      t.net,
      t.socks,
      `alice@${SECRET}`,
      ALICE_TOKEN,
      targetOf("127.0.0.1", 9),
    );
    ok.conn.close();
    assert.equal(ok.auth, 0);
    assert.equal(ok.reply, Status.not_allowed);
    // Wrong password: the authentication failure is logged.
    const bad = await socks(t.net, t.socks, `alice@${SECRET}`, "wrong", targetOf("127.0.0.1", 9));
    bad.conn.close();
    assert.equal(bad.auth, 1);
    // Through the client port, the same name as CONNECT's agent and as CHECK's.
    const opts = {
      server: t.server.addrs.clients!,
      name: "alice",
      credential: tokenCredential(ALICE_TOKEN),
    };
    const c = await connectThrough(t.net, opts, SECRET, targetOf("127.0.0.1", 9));
    assert.equal(c.ok, false);
    const check = await connectThrough(t.net, opts, SECRET, null);
    assert.equal(check.ok, false);
    const lines = () =>
      t.logs.filter((l) => /connect refused|authentication failed|login check/.test(l));
    assert.ok(await until(() => lines().length >= 4), t.logs.join("\n"));
    for (const l of lines()) {
      assert.ok(!l.includes(SECRET), l);
      assert.match(l, /agent_bytes=28/);
    }
  } finally {
    await t.close();
  }
});
