/**
 * `udp:` of server.yaml (src/config/udp.ts, SPEC.md §8.2): the relay's
 * address and port range, the advertised address, and every mistake a
 * ConfigError naming the key.
 *
 * @module
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServerConfig } from "../src/config/mod.ts";
import { ConfigError } from "../src/errors.ts";

const udp = (u: unknown) => parseServerConfig(JSON.stringify({ udp: u }), "s.yaml").udp;

test("udp config: listen ADDR[:PORTS] and advertise, with their defaults", () => {
  assert.deepEqual(parseServerConfig("{}", "s.yaml").udp, { listen: null, advertise: null });
  assert.deepEqual(udp({ listen: "0.0.0.0:40000-40999", advertise: "203.0.113.5" }), {
    listen: { host: "0.0.0.0", portMin: 40000, portMax: 40999 },
    advertise: "203.0.113.5",
  });
  assert.deepEqual(udp({ listen: "[::]:5353" }).listen, {
    host: "::",
    portMin: 5353,
    portMax: 5353,
  });
  assert.deepEqual(udp({ listen: "10.0.0.1" }).listen, {
    host: "10.0.0.1",
    portMin: 0,
    portMax: 0,
  });
  assert.deepEqual(udp({ listen: "fd00::1" }).listen, { host: "fd00::1", portMin: 0, portMax: 0 });
  assert.deepEqual(udp({ listen: "127.0.0.1:0" }).listen, {
    host: "127.0.0.1",
    portMin: 0,
    portMax: 0,
  });
  assert.equal(udp({ advertise: "::ffff:192.0.2.1" }).advertise, "192.0.2.1");
});

test("udp config: mistakes name the key", () => {
  const bad: [unknown, RegExp][] = [
    [{ listen: "relay.example:4000" }, /udp\.listen: "relay\.example" is not an IP address/],
    [{ listen: "0.0.0.0:5000-4000" }, /udp\.listen: "5000-4000" is not a port or a range/],
    [{ listen: "0.0.0.0:70000" }, /udp\.listen: "70000"/],
    [{ listen: "0.0.0.0:0-10" }, /udp\.listen: "0-10"/],
    [{ listen: "0.0.0.0:x" }, /udp\.listen: "x"/],
    [{ listen: 4000 }, /udp\.listen: must be a string/],
    [{ advertise: "example.com" }, /udp\.advertise: "example\.com" is not an IP address/],
    [{ relay: "x" }, /udp\.relay: unknown key/],
  ];
  for (const [u, re] of bad) {
    assert.throws(() => udp(u), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  }
});
