/**
 * People and grants (SPEC.md §7.2 "Grants"): `person:` and `group:` grants
 * besides `client:` ones, their union, a person's client id from their
 * subject, group changes, and clients with no static credential.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseServerConfig } from "../src/config/mod.ts";
import { stableIds } from "../src/config/server.ts";
import { targetOf } from "../src/ip.ts";
import { AGENT_TOKEN, ALICE_TOKEN, echoTarget, socks, tunnel, until } from "./helpers.ts";

const base = {
  agents: [{ name: "office", token: AGENT_TOKEN }],
  clients: [{ name: "alice", token: ALICE_TOKEN }, { name: "ci" }],
};
const parse = (grants: unknown[]) =>
  parseServerConfig(JSON.stringify({ ...base, grants }), "server.yaml");

test("people: grants name exactly one of client, person and group; a client may have no credential", () => {
  const c = parse([
    { client: "ci", agent: "office" },
    { person: "alice@example.com", agent: "office" },
    { group: "ops", agent: "office", targets: ["10.0.0.0/8:22"] },
  ]);
  assert.deepEqual(c.grants.map((g) => [g.client, g.person, g.group]), [
    ["ci", undefined, undefined],
    [undefined, "alice@example.com", undefined],
    [undefined, undefined, "ops"],
  ]);
  assert.equal(c.clients.get("ci")!.verifiers.size, 0);
  assert.throws(
    () => parse([{ client: "ci", group: "ops", agent: "office" }]),
    /grants\[0\]: needs exactly one of client, person and group/,
  );
  assert.throws(
    () => parse([{ agent: "office" }]),
    /needs exactly one of client, person and group/,
  );
  assert.throws(
    () => parse([{ person: "", agent: "office" }]),
    /grants\[0\]\.person: must be 1\.\.96 bytes without control characters/,
  );
  assert.throws(
    () =>
      parseServerConfig(
        JSON.stringify({ agents: [{ name: "office" }], clients: [], grants: [] }),
        "server.yaml",
      ),
    /agents\[0\]: needs a token or a public_key/,
  );
});

test("people: a person's grants are their own and their groups' (the union); a group change counts at once", async () => {
  const t = await tunnel({
    config: {
      agents: [{ name: "office", token: AGENT_TOKEN }],
      clients: [{ name: "alice", token: ALICE_TOKEN }, { name: "ci" }],
      grants: [
        { client: "ci", agent: "office", targets: ["127.0.0.1:*"] },
        { person: "carol@example.com", agent: "office", targets: ["127.0.0.1:1-1"] },
        { group: "ops", agent: "office", targets: ["127.0.0.1:*"] },
      ],
    },
  });
  const echo = await echoTarget(t.net);
  try {
    const target = targetOf("127.0.0.1", echo.addr.port);
    const tokens = t.server.tokens;
    const connect = async (user: string, password: string) => {
      const r = await socks(t.net, t.socks, user, password, target);
      r.conn.close();
      return r.auth === 0 ? r.reply : `auth ${r.auth}`;
    };
    const carol = await tokens.issue("person", "carol@example.com", 60, ["ops"]);
    assert.equal(await connect("carol@example.com@office", carol.token), 0, t.logs.join("\n"));
    assert.equal(await connect("@office", carol.token), 0);
    await tokens.issue("person", "carol@example.com", 60, ["sales"]); // she signs in again
    assert.equal(await connect("@office", carol.token), 2, "only her own grant, which is narrower");
    assert.ok(t.logs.some((l) => /client=carol@example.com client_id=\d+/.test(l)));
    // The audit line says who: the person, the token and the groups of her sign-in.
    const audit = (groups: string) =>
      t.logs.some((l) =>
        /msg="stream ended"/.test(l) && l.includes("client=carol@example.com") &&
        l.includes(`token=${carol.id}`) && l.includes(`groups=${groups}`)
      );
    assert.ok(await until(() => audit("ops")), t.logs.join("\n"));
    const id = stableIds(["carol@example.com"]).get("carol@example.com");
    assert.ok(t.logs.some((l) => l.includes(`client_id=${id}`)), "id from the subject");
    // A person with no grant at all, and one named like a configured client.
    const dave = await tokens.issue("person", "dave@example.com", 60, []);
    assert.equal(await connect("@office", dave.token), 2);
    const fake = await tokens.issue("person", "ci", 60, ["ops"]);
    assert.equal(await connect("@office", fake.token), "auth 1");
    assert.ok(t.logs.some((l) => /reason="unknown person"/.test(l)));
    // A client without a static credential: issued tokens only.
    const ci = await tokens.issue("client", "ci", 60);
    assert.equal(await connect("ci", ci.token), 0);
    assert.equal(await connect("ci", ALICE_TOKEN), "auth 1");
  } finally {
    await echo.close();
    await t.close();
  }
});
