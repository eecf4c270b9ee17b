/**
 * IdMap (src/idmap.ts): the table for what comes and goes with every
 * stream. Checked against a `Map` as the model, over random sequences of
 * operations, and at the edges of its id range.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { IdMap } from "../src/idmap.ts";

const MAX_ID = 0xffffffff;

type Op =
  | { op: "set"; id: number; v: number }
  | { op: "delete"; id: number }
  | { op: "add"; v: number }
  | { op: "clear" };

// Few distinct ids, so that sets, deletes and adds meet; the range's ends included.
const id = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(MAX_ID - 1, MAX_ID));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("set" as const), id, v: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("delete" as const), id }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("add" as const), v: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const) }) },
);

test("IdMap behaves as a Map of its ids, and add() takes an id not in use", () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const t = new IdMap<{ v: number }>();
      const model = new Map<number, { v: number }>();
      for (const o of ops) {
        switch (o.op) {
          case "set": {
            const v = { v: o.v };
            assert.equal(t.set(o.id, v), t);
            model.set(o.id, v);
            break;
          }
          case "delete":
            assert.equal(t.delete(o.id), model.delete(o.id));
            break;
          case "add": {
            const v = { v: o.v };
            const got = t.add(v);
            assert.ok(Number.isInteger(got) && got >= 0 && got <= MAX_ID, `id ${got}`);
            assert.equal(model.has(got), false, `add() gave ${got}, which was in use`);
            model.set(got, v);
            break;
          }
          case "clear":
            t.clear();
            model.clear();
        }
        assert.equal(t.size, model.size);
      }
      const ids = [...model.keys()].sort((a, b) => a - b);
      assert.deepEqual([...t.keys()], ids);
      assert.deepEqual([...t.values()], ids.map((k) => model.get(k)));
      for (let k = 0; k <= 13; k++) {
        assert.equal(t.has(k), model.has(k));
        assert.equal(t.get(k), model.get(k));
      }
    }),
    { numRuns: 300 },
  );
});

test("IdMap.add hands out ids in order, skips those in use, and wraps after the last", () => {
  const t = new IdMap<object>();
  t.set(0, {});
  t.set(2, {});
  assert.equal(t.add({}), 1);
  assert.equal(t.add({}), 3, "2 is in use");
  t.delete(1);
  assert.equal(t.add({}), 4, "a freed id is not handed out again at once");

  const end = new IdMap<object>(MAX_ID - 1);
  end.set(0, {});
  assert.equal(end.add({}), MAX_ID - 1);
  assert.equal(end.add({}), MAX_ID);
  assert.equal(end.add({}), 1, "after the last id: round to the lowest free one");
  assert.deepEqual([...end.keys()], [0, 1, MAX_ID - 1, MAX_ID]);
  assert.equal(end.size, 4);
});

test("IdMap values iterate safely while entries are deleted", () => {
  const t = new IdMap<{ n: number }>();
  for (let k = 1; k <= 5; k++) t.set(k * 10, { n: k });
  const seen: number[] = [];
  for (const v of t.values()) {
    seen.push(v.n);
    t.delete(v.n * 10 + 10); // the next one
  }
  assert.deepEqual(seen, [1, 3, 5]);
  assert.deepEqual([...t.keys()], [10, 30, 50]);
});
