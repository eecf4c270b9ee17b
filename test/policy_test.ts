import assert from "node:assert/strict";
import { test } from "node:test";
import { targetOf } from "../src/ip.ts";
import { allowed, formatRule, matchRule, parseRule } from "../src/policy.ts";
import { RuleError } from "../src/errors.ts";

test("policy: rule texts parse into wire rules and format back", () => {
  const cases: Array<[string, string[]]> = [
    ["*", ["*:*"]],
    ["*.corp:80,443", ["*.corp:80", "*.corp:443"]],
    ["db.corp:5432", ["db.corp:5432"]],
    ["10.0.0.0/8:22", ["10.0.0.0/8:22"]],
    ["10.1.2.3:8000-8100", ["10.1.2.3/32:8000-8100"]],
    ["[fd00::/8]:443", ["[fd00::/8]:443"]],
    ["[::1]", ["[::1/128]:*"]],
    ["alice=*.corp:*", ["alice=*.corp:*"]],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseRule(text).map(formatRule), want, text);
});

test("policy: bad rule texts are refused with a clear error", () => {
  for (
    const bad of [
      "",
      ":80",
      "a b:80",
      "10.0.0.0/33:1",
      "host:70000",
      "host:9-1",
      "[fd00::1",
      "bad name!=x:1",
      "x/8:1",
    ]
  ) {
    assert.throws(() => parseRule(bad), RuleError, bad);
  }
  assert.throws(() => parseRule("host:9-1"), /Cannot parse rule "host:9-1": bad port range "9-1"/);
});

test("policy: matching hosts, suffixes, CIDRs, ports and clients", () => {
  const rules = [
    ...parseRule("*.corp:443"),
    ...parseRule("db.corp:5432"),
    ...parseRule("10.0.0.0/8:22"),
    ...parseRule("[fd00::/8]:80"),
    ...parseRule("alice=192.168.1.1:3389"),
  ];
  const ok = (host: string, port: number, client = "bob") =>
    allowed(rules, client, targetOf(host, port));
  assert.ok(ok("www.corp", 443));
  assert.ok(ok("A.B.CORP", 443));
  assert.ok(!ok("corp", 443), "*.corp does not match corp itself");
  assert.ok(!ok("evilcorp", 443));
  assert.ok(!ok("www.corp", 80));
  assert.ok(ok("db.corp", 5432));
  assert.ok(ok("10.200.3.4", 22));
  assert.ok(!ok("11.0.0.1", 22));
  assert.ok(ok("fd12::1", 80));
  assert.ok(!ok("fe80::1", 80));
  assert.ok(ok("192.168.1.1", 3389, "alice"));
  assert.ok(!ok("192.168.1.1", 3389, "bob"), "per-client rule");
});

test("policy: domain targets under CIDR rules: never, defer, resolved", () => {
  const [r] = parseRule("10.0.0.0/8:22");
  const t = targetOf("host.corp", 22);
  assert.equal(matchRule(r!, t, "never"), false);
  assert.equal(matchRule(r!, t, "defer"), true);
  assert.equal(matchRule(r!, t, ["10.1.1.1"]), true);
  assert.equal(matchRule(r!, t, ["8.8.8.8"]), false);
});
