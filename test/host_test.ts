/**
 * Host names and targets in canonical form (src/host.ts, SPEC.md §7.3), and
 * rules normalized the same way (src/policy.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { describeHost, normalizeHostName, normalizeTarget, unmapIPv4 } from "../src/host.ts";
import { allowed, normalizeRule, parseRule } from "../src/policy.ts";
import type { Target } from "../src/messages.ts";
import { sourceOf } from "../src/server/admission.ts";
import { RuleError } from "../src/errors.ts";

const dom = (host: string, port = 80): Target => ({ type: "domain", host, port });

test("host: valid names are lower-cased and lose one trailing dot", () => {
  const cases: Array<[string, string]> = [
    ["intranet.corp", "intranet.corp"],
    ["Intranet.CORP.", "intranet.corp"],
    ["localhost", "localhost"],
    ["LOCALHOST.", "localhost"],
    ["_srv.a-b.corp", "_srv.a-b.corp"],
    ["xn--bcher-kva.example", "xn--bcher-kva.example"],
    ["1.2.3.4.corp", "1.2.3.4.corp"],
    ["a".repeat(63) + ".corp", "a".repeat(63) + ".corp"],
  ];
  for (const [input, want] of cases) assert.equal(normalizeHostName(input), want, input);
  const long = Array.from({ length: 4 }, () => "a".repeat(62)).join(".") + ".b"; // 253 bytes
  assert.equal(long.length, 253);
  assert.equal(normalizeHostName(long), long);
});

test("host: hostile names are refused", () => {
  const bad = [
    "127.0.0.1\0.corp",
    "localhost\0.corp",
    "a.corp\0",
    "a%2e.corp",
    "a b.corp",
    " a.corp",
    "a.corp ",
    "bücher.corp",
    "а.corp", // Cyrillic a
    "\u212a.corp", // KELVIN SIGN: lower-cases to ASCII "k"
    "A.0X1F",
    "a..corp",
    ".a.corp",
    "a.corp..",
    "",
    ".",
    "a".repeat(64) + ".corp",
    "2130706433",
    "127.1",
    "0x7f.1",
    "0x7f",
    "0x",
    "a.0x1F",
    "10.0.0.08",
    "a.b.123",
    "*.corp",
    "a/b.corp",
    "a:b",
    "[::1]",
  ];
  for (const b of bad) assert.equal(normalizeHostName(b), null, JSON.stringify(b));
  const tooLong = Array.from({ length: 4 }, () => "a".repeat(62)).join(".") + ".bc"; // 254 bytes
  assert.equal(normalizeHostName(tooLong), null, "254 bytes");
});

test("host: targets: IP literals sent as names, mapped IPv6, refusals", () => {
  assert.deepEqual(normalizeTarget(dom("127.0.0.1")), {
    ok: true,
    value: { type: "ipv4", host: "127.0.0.1", port: 80 },
  });
  assert.deepEqual(normalizeTarget(dom("::1")), {
    ok: true,
    value: { type: "ipv6", host: "::1", port: 80 },
  });
  assert.deepEqual(normalizeTarget(dom("::ffff:127.0.0.1")), {
    ok: true,
    value: { type: "ipv4", host: "127.0.0.1", port: 80 },
  });
  assert.deepEqual(
    normalizeTarget({ type: "ipv6", host: "::ffff:10.1.2.3", port: 22 }),
    { ok: true, value: { type: "ipv4", host: "10.1.2.3", port: 22 } },
  );
  assert.deepEqual(normalizeTarget({ type: "ipv6", host: "FD00:0::1", port: 1 }), {
    ok: true,
    value: { type: "ipv6", host: "fd00::1", port: 1 },
  });
  assert.deepEqual(normalizeTarget(dom("Db.Corp.")), {
    ok: true,
    value: { type: "domain", host: "db.corp", port: 80 },
  });
  const r = normalizeTarget(dom("127.0.0.1\0.corp"));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.error, /is not a valid host name/);
    assert.ok(!r.error.includes("\0"), "the reason is safe to log");
  }
  assert.equal(normalizeTarget({ type: "ipv4", host: "127.1", port: 1 }).ok, false);
  assert.equal(unmapIPv4("::ffff:7f00:1"), "127.0.0.1");
  assert.equal(unmapIPv4("::7f00:1"), null);
  assert.equal(describeHost("a\u0000b\u2028"), '"a\\u0000b\\u2028"');
});

test("policy: rules normalize as targets do; `*.corp.` matches", () => {
  const rules = parseRule("*.CORP.:80");
  assert.equal(rules[0]!.kind === "host" && rules[0]!.pattern, "*.corp");
  assert.ok(allowed(rules, "alice", dom("a.corp")));
  assert.ok(allowed(rules, "alice", dom("A.Corp.")));
  assert.ok(!allowed(rules, "alice", dom("127.0.0.1\0.corp")), "NUL never matches");
  assert.ok(!allowed(rules, "alice", dom("corp")));
  for (
    const bad of ["*.\u212a.corp:80", "*.1:80", "a b:80", "*.:80", "**.corp", "*.co%rp", "x.0x10"]
  ) {
    assert.throws(() => parseRule(bad), RuleError, bad);
  }
  // A rule received on the wire with a trailing dot is normalized; one that can match nothing is dropped.
  const wire = (pattern: string) =>
    ({ client: "", portMin: 0, portMax: 1, protocol: 6, kind: "host", pattern }) as const;
  assert.deepEqual(normalizeRule(wire("*.Corp.")), wire("*.corp"));
  assert.equal(normalizeRule(wire("a\0b")), null);
});

test("policy: IPv4-mapped IPv6 is matched against IPv4 rules only", () => {
  const v6all = parseRule("[::/0]:*");
  const v4lo = parseRule("127.0.0.0/8:*");
  const mapped: Target = { type: "ipv6", host: "::ffff:127.0.0.1", port: 80 };
  assert.ok(!allowed(v6all, "a", mapped), "[::/0] does not reach IPv4");
  assert.ok(allowed(v4lo, "a", mapped));
  assert.ok(allowed(v6all, "a", { type: "ipv6", host: "::1", port: 80 }));
  assert.ok(!allowed(v6all, "a", dom("h.corp"), ["::ffff:10.0.0.1"]), "resolved mapped address");
  assert.throws(() => parseRule("[::ffff:10.0.0.0/104]:*"), /matched as IPv4/);
});

test("admission: sources are IPv4 addresses and IPv6 /64s", () => {
  assert.equal(sourceOf("127.0.0.1"), "127.0.0.1");
  assert.equal(sourceOf("::ffff:127.0.0.4"), "127.0.0.4");
  assert.equal(sourceOf("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(sourceOf("2001:db8:1:2::ffff"), sourceOf("2001:db8:1:2:aaaa::1"));
  assert.notEqual(sourceOf("2001:db8:1:2::1"), sourceOf("2001:db8:1:3::1"));
  assert.equal(sourceOf("::1"), "::/64");
});
