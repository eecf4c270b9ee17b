/**
 * Runs the conformance suites (test/conformance.ts, TCP and TLS;
 * test/conformance_udp.ts, UDP) with the adapter of the
 * runtime this file runs on:
 *
 *     node --import tsx --test test/adapter_test.ts
 *     deno test -A test/adapter_test.ts
 *     bun test test/adapter_test.ts
 *
 * @module
 */
import type { Net } from "../src/net.ts";
import { conformance } from "./conformance.ts";
import { udpConformance } from "./conformance_udp.ts";

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
// A computed specifier, so that each type checker sees only its own runtime.
const mod: { net: Net } = await import(`../runtimes/${runtime}/mod.ts`);
conformance(mod.net, runtime);
udpConformance(mod.net, runtime);
