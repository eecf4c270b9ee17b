import assert from "node:assert/strict";
import { test } from "node:test";
import { err, ok, type Result } from "../src/result.ts";

test("result: ok and err build the two sides, and ok narrows to value or error", () => {
  const half = (n: number): Result<number> => n % 2 === 0 ? ok(n / 2) : err(`${n} is odd`);
  assert.deepEqual(half(4), { ok: true, value: 2 });
  assert.deepEqual(half(3), { ok: false, error: "3 is odd" });
  const r = half(3);
  assert.equal(r.ok ? r.value : r.error, "3 is odd");
});
