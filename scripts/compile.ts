/**
 * `npm run compile`: dist/burrow, the whole CLI as one executable for this
 * platform (`bun build --compile` of runtimes/bun/main.ts), which needs no
 * runtime and no node_modules.
 *
 *   npm run compile                       → dist/burrow
 *   npm run compile -- --outfile /x/burrow
 *
 * - `--bytecode`: the executable carries the parsed bytecode (faster start).
 * - `--external iconv-lite`: kaitai-struct requires it only for text
 *   encodings other than UTF-8/ASCII/UTF-16, which burrow's spec never uses.
 * - No .env or bunfig.toml autoloading: a service must not pick up settings
 *   from whatever directory it is started in.
 *
 * (`deno compile` would work too, but it downloads the denort runtime for
 * the target, which machines without internet access cannot.)
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";

const root = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({ options: { outfile: { type: "string" } } });
const outfile = resolve(values.outfile ?? join(root, "dist", "burrow"));

const COMPILE_FLAGS = [
  "build",
  "--compile",
  "--bytecode",
  "--format=esm",
  "--external",
  "iconv-lite",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
];

mkdirSync(dirname(outfile), { recursive: true });
const bun = spawnSync(
  join(root, "node_modules", ".bin", "bun"),
  [...COMPILE_FLAGS, join(root, "runtimes", "bun", "main.ts"), "--outfile", outfile],
  { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
);
if (bun.status !== 0) {
  console.error("compile: bun build --compile failed");
  process.exit(1);
}
console.log(`compile: ${outfile} (${(statSync(outfile).size / 1e6).toFixed(1)} MB)`);
