#!/usr/bin/env node
/**
 * `burrow` on Node.js from any folder: the `bin` of the npm package and of
 * a checkout (`npm link`, `npx burrow`). In a checkout it runs the
 * TypeScript sources through the checkout's own tsx (resolved from here,
 * not from the current folder); in the npm package, which has no sources,
 * the compiled dist/.
 * @module
 */
import { existsSync, realpathSync } from "node:fs";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const self = realpathSync(fileURLToPath(import.meta.url));
const root = new URL("../", pathToFileURL(self));
const source = new URL("runtimes/node/main.ts", root);
let entry = new URL("dist/runtimes/node/main.js", root);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  entry = source;
}
const { run } = await import(entry.href);
process.exitCode = await run(process.argv.slice(2), [process.execPath, self]);
