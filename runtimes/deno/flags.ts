/**
 * The V8 flag burrow runs with on Deno (README.md, package.json
 * `demo:deno`, tests, bench): a young generation of at most 1 MiB per
 * semi-space. V8's default lets it grow to many MiB under the allocation of
 * thousands of streams opening, memory a long-running server keeps; with 1
 * MiB, 5000 idle streams cost 29 instead of 46 KiB each, and throughput and
 * connection rate were the same or better (bench/README.md). Deno reads V8
 * flags only on its command line (or DENO_V8_FLAGS), so this file states
 * it once for the code that starts Deno.
 *
 * @module
 */
export const DENO_V8 = "--v8-flags=--max-semi-space-size=1";
