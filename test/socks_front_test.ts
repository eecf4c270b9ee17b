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
import { ALICE_TOKEN, clientProxy, readAll, runtime, socks, tunnel, until } from "./helpers.ts";
import type { Addr, Net } from "../src/net.ts";

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

/** Bytes the peer sends until it closes, after writing `bytes`. */
async function exchange(net: Net, addr: Addr, bytes: number[]): Promise<number[]> {
  const c = await net.dial(addr);
  try {
    await c.write(Uint8Array.from(bytes));
    return [...await readAll(c)];
  } finally {
    c.close();
  }
}

test(`${rt}: a domain that is not valid UTF-8 gets reply 0x02 and a logged reason on both ports`, async () => {
  const t = await tunnel();
  const proxy = await clientProxy(t);
  try {
    const user = [...new TextEncoder().encode("alice")];
    const pass = [...new TextEncoder().encode(ALICE_TOKEN)];
    const request = [5, 1, 0, 3, 2, 0xc3, 0x28, 0, 80]; // "\xc3(" is no UTF-8
    const viaServer = await exchange(t.net, t.socks, [
      ...[5, 1, 2],
      ...[1, user.length, ...user, pass.length, ...pass],
      ...request,
    ]);
    assert.deepEqual(viaServer.slice(0, 6), [5, 2, 1, 0, 5, Status.not_allowed]);
    assert.ok(
      await until(() => t.logs.some((l) => /connect refused.*not valid UTF-8/.test(l))),
      t.logs.join("\n"),
    );
    const viaProxy = await exchange(t.net, proxy.addr!, [5, 1, 0, ...request]);
    assert.deepEqual(viaProxy.slice(0, 4), [5, 0, 5, Status.not_allowed]);
  } finally {
    await proxy.stop();
    await t.close();
  }
});

test(`${rt}: an IPv4-compatible IPv6 target gets 0x04 host unreachable on every runtime`, async () => {
  const t = await tunnel({
    allow: ["[::/96]:*"],
    config: { grants: [{ client: "alice", agent: "office", targets: ["[::/96]:*"] }] },
  });
  try {
    for (const host of ["::127.0.0.1", "::7f00:1", "::2"]) {
      const r = await socks(t.net, t.socks, "alice", ALICE_TOKEN, targetOf(host, 9));
      r.conn.close();
      assert.equal(r.reply, Status.host_unreachable, host);
    }
  } finally {
    await t.close();
  }
});
