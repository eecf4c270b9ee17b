import assert from "node:assert/strict";
import { test } from "node:test";
import { targetOf } from "../src/ip.ts";
import { allowed, formatRule, matchRule, parseRule } from "../src/policy.ts";
import { RuleError } from "../src/errors.ts";
import { RuleProtocol } from "../src/messages.ts";

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

test("policy: a /udp or /tcp suffix names the rule's protocol; none means TCP", () => {
  const cases: Array<[string, string[], number]> = [
    ["10.0.0.53:53/udp", ["10.0.0.53/32:53/udp"], RuleProtocol.udp],
    ["*.corp:*/udp", ["*.corp:*/udp"], RuleProtocol.udp],
    ["*.corp/UDP", ["*.corp:*/udp"], RuleProtocol.udp],
    ["10.0.0.0/8/udp", ["10.0.0.0/8:*/udp"], RuleProtocol.udp],
    ["[fd00::/8]:53,853/udp", ["[fd00::/8]:53/udp", "[fd00::/8]:853/udp"], RuleProtocol.udp],
    ["alice=db.corp:5432/tcp", ["alice=db.corp:5432"], RuleProtocol.tcp],
    ["10.0.0.0/8:22", ["10.0.0.0/8:22"], RuleProtocol.tcp],
    ["udp:53", ["udp:53"], RuleProtocol.tcp], // a host named "udp", as the issue warns
  ];
  for (const [text, want, protocol] of cases) {
    const rules = parseRule(text);
    assert.deepEqual(rules.map(formatRule), want, text);
    for (const r of rules) assert.equal(r.protocol, protocol, text);
    // The text form reads back to the same rules.
    assert.deepEqual(rules.flatMap((r) => parseRule(formatRule(r))), rules, text);
  }
  for (const bad of ["*.corp:53/sctp", "10.0.0.0/8:53/", "host:53/udp/tcp", "/udp", ":53/udp"]) {
    assert.throws(() => parseRule(bad), RuleError, bad);
  }
  assert.throws(
    () => parseRule("*.corp:53/sctp"),
    /^RuleError: Cannot parse rule "\*\.corp:53\/sctp": unknown protocol "sctp" \(tcp or udp\)$/,
  );
});

test("policy: a rule allows its own protocol only; TCP is the default", () => {
  const rules = [
    ...parseRule("10.0.0.53:53/udp"),
    ...parseRule("*.corp:*/udp"),
    ...parseRule("db.corp:5432"),
  ];
  const ok = (host: string, port: number, protocol?: "tcp" | "udp") =>
    protocol === undefined
      ? allowed(rules, "c", targetOf(host, port))
      : allowed(rules, "c", targetOf(host, port), "never", protocol);
  assert.ok(ok("10.0.0.53", 53, "udp"));
  assert.ok(!ok("10.0.0.53", 53, "tcp"), "a UDP rule allows no TCP");
  assert.ok(!ok("10.0.0.53", 53), "TCP is the default");
  assert.ok(!ok("10.0.0.53", 54, "udp"));
  assert.ok(ok("ns.corp", 5353, "udp"));
  assert.ok(ok("db.corp", 5432, "udp"), "*.corp:*/udp");
  assert.ok(ok("db.corp", 5432));
  assert.ok(ok("db.corp", 5432, "tcp"));
  assert.ok(!ok("web.corp", 443), "*.corp:*/udp allows no TCP");
  const [r] = parseRule("10.0.0.0/8:53/udp");
  assert.ok(r);
  assert.ok(matchRule(r, targetOf("ns.corp", 53), "defer", "udp"));
  assert.ok(!matchRule(r, targetOf("ns.corp", 53), "defer"));
  assert.ok(matchRule(r, targetOf("ns.corp", 53), ["10.1.1.1"], "udp"));
});
