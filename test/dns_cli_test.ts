/** `burrow client --dns/--dns-server` and `dns:`/`dns_server:` (src/cli/dns.ts, config/agent.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { clientDns } from "../src/cli/dns.ts";
import { parseClientConfig, parseDnsServer } from "../src/config/mod.ts";
import { ConfigError, UsageError } from "../src/errors.ts";

test("--dns-server: host[:port], IPv6 with or without brackets, port 53 by default", () => {
  assert.deepEqual(parseDnsServer("10.0.0.53"), { type: "ipv4", host: "10.0.0.53", port: 53 });
  assert.deepEqual(parseDnsServer("10.0.0.53:5353"), {
    type: "ipv4",
    host: "10.0.0.53",
    port: 5353,
  });
  assert.deepEqual(parseDnsServer("fd00::53"), { type: "ipv6", host: "fd00::53", port: 53 });
  assert.deepEqual(parseDnsServer("[fd00::53]"), { type: "ipv6", host: "fd00::53", port: 53 });
  assert.deepEqual(parseDnsServer("[fd00::53]:54"), { type: "ipv6", host: "fd00::53", port: 54 });
  assert.deepEqual(parseDnsServer("dns.corp"), { type: "domain", host: "dns.corp", port: 53 });
  assert.throws(() => parseDnsServer("10.0.0.53:99999"), ConfigError);
  assert.throws(() => parseDnsServer(""), /Cannot parse DNS server/);
});

test("flags over the config file; --dns-server alone is a usage error", () => {
  const file = parseClientConfig("dns: 127.0.0.1:5353\ndns_server: 10.0.0.53\n", "c.yaml");
  assert.deepEqual(clientDns({}, file), {
    listen: { host: "127.0.0.1", port: 5353 },
    server: { type: "ipv4", host: "10.0.0.53", port: 53 },
  });
  assert.deepEqual(clientDns({ dns: "127.0.0.1:53", dnsServer: "10.9.9.9:54" }, file), {
    listen: { host: "127.0.0.1", port: 53 },
    server: { type: "ipv4", host: "10.9.9.9", port: 54 },
  });
  assert.deepEqual(clientDns({ dns: "[::1]:5353" }, {}), {
    listen: { host: "::1", port: 5353 },
    server: null,
  });
  assert.equal(clientDns({}, {}), undefined);
  assert.throws(() => clientDns({ dnsServer: "10.0.0.53" }, {}), UsageError);
  assert.throws(() => clientDns({ dns: "nope" }, {}), /--dns/);
  assert.throws(
    () => parseClientConfig("dns_server: 10.0.0.53:0:1\n", "c.yaml"),
    /c\.yaml.*dns_server/,
  );
});
