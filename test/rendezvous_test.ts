/**
 * Rendezvous hashing (src/rendezvous.ts): which K servers each agent uses.
 * Deterministic (SHA-256 of name and server), so the figures here are
 * exact for these names; the bounds are what any fair hash gives.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { rendezvousOrder, rendezvousWeight } from "../src/rendezvous.ts";
import { runtime } from "./helpers.ts";

const rt = runtime;
const NAMES = Array.from({ length: 1000 }, (_, i) => `agent-${i}`);
const THREE = ["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"];
const FOUR = [...THREE, "10.0.0.4:7000"];

/** The K servers of each name, as `name server` pairs. */
function sessions(servers: string[], k: number): Set<string> {
  const out = new Set<string>();
  for (const n of NAMES) {
    for (const i of rendezvousOrder(n, servers).slice(0, k)) out.add(`${n} ${servers[i]}`);
  }
  return out;
}

test(`${rt}: rendezvous: an order is a permutation, the same every time, and depends on the name`, () => {
  const a = rendezvousOrder("office", FOUR);
  assert.deepEqual([...a].sort(), [0, 1, 2, 3]);
  assert.deepEqual(rendezvousOrder("office", FOUR), a);
  assert.equal(rendezvousWeight("office", FOUR[0]!), rendezvousWeight("office", FOUR[0]!));
  const orders = new Set(NAMES.slice(0, 50).map((n) => rendezvousOrder(n, FOUR).join()));
  assert.ok(orders.size > 10, `50 names give ${orders.size} distinct orders`);
  // The order of the list given does not matter: only the servers do.
  const reversed = [...FOUR].reverse();
  assert.deepEqual(
    rendezvousOrder("office", reversed).map((i) => reversed[i]),
    a.map((i) => FOUR[i]),
  );
});

test(`${rt}: rendezvous: 1000 agents × 2 sessions spread evenly over 3 servers`, () => {
  const per = new Map<string, number>();
  for (const s of sessions(THREE, 2)) {
    const server = s.split(" ")[1]!;
    per.set(server, (per.get(server) ?? 0) + 1);
  }
  assert.equal([...per.values()].reduce((a, b) => a + b, 0), 2000);
  for (const [server, n] of per) {
    // 2000 / 3 ≈ 667 each; a fair hash stays well within ±10 %.
    assert.ok(n > 600 && n < 734, `${server} has ${n} sessions`);
  }
});

test(`${rt}: rendezvous: a fourth server moves about a quarter of the sessions, no more`, () => {
  const before = sessions(THREE, 2);
  const after = sessions(FOUR, 2);
  let moved = 0;
  for (const s of before) if (!after.has(s)) moved++;
  // Each moved session went to the new server: none moved between the old ones.
  for (const s of after) {
    if (!before.has(s)) assert.ok(s.endsWith(FOUR[3]!), `${s} moved between old servers`);
  }
  // The new server is among an agent's first 2 of 4 for half the agents,
  // each time taking one of its 2 sessions: 500 of 2000, a quarter.
  assert.ok(moved > 440 && moved < 560, `${moved} of 2000 sessions moved`);
  // And a server that goes: only its own sessions move.
  const without = sessions(THREE.slice(0, 2), 2);
  for (const s of before) {
    if (!without.has(s)) assert.ok(s.endsWith(THREE[2]!), `${s} moved though its server stayed`);
  }
});
