/**
 * `npm run build` (and `npm pack`, via prepack): the npm package's compiled
 * JavaScript and types in dist/ (tsconfig.build.json: tsc emits only; the
 * type checks are `npm test`'s). The generated parsers are plain JavaScript
 * with their .d.ts already and are copied as they are.
 *
 *   dist/src/        the runtime-free core (`burrow`), dist/src/mod.js
 *   dist/runtimes/   the adapters (`burrow/node`, …) and entry points; the
 *                    package's `bin` is dist/runtimes/node/main.js
 *   dist/generated/  generated/ as it is, enums.ts compiled
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");

for (const dir of ["src", "runtimes", "generated"]) {
  rmSync(join(dist, dir), { recursive: true, force: true });
}
const tsc = spawnSync(join(root, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json"], {
  cwd: root,
  stdio: ["ignore", 2, 2],
});
if (tsc.status !== 0) {
  console.error("build: tsc failed");
  process.exit(1);
}
mkdirSync(join(dist, "generated"), { recursive: true });
for (const f of readdirSync(join(root, "generated"))) {
  if (f.endsWith(".js") || f.endsWith(".d.ts")) {
    copyFileSync(join(root, "generated", f), join(dist, "generated", f));
  }
}
chmodSync(join(dist, "runtimes", "node", "main.js"), 0o755);
// stderr: `npm pack --json` keeps stdout for its JSON.
console.error("build: dist/src, dist/runtimes, dist/generated");
