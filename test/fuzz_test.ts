/**
 * Quick fuzz: the properties of scripts/fuzz.ts (random and mutated bytes into
 * Framer + decode and into every SOCKS5 parser) with a few hundred inputs
 * each. A parser may return a value or null or throw its typed error
 * (ProtocolError / SocksError with a registered code) — nothing else — and
 * what it accepts must re-encode to the same bytes. `npm run fuzz` runs the
 * same properties with over 1,000,000 inputs; RUNS=n here sets the runs per
 * property.
 */
import { test } from "node:test";
import fc from "fast-check";
import { properties } from "../scripts/fuzz.ts";

const RUNS = Number(globalThis.process?.env?.RUNS ?? "") || 300;

for (const p of properties()) {
  test(`fuzz: ${p.name}`, () => {
    fc.assert(p.property, { numRuns: RUNS });
  });
}
