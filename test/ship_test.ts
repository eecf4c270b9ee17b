/**
 * What ships: the single executable (`npm run compile`) runs its demo from an
 * empty folder, and the npm package (`npm pack`) installs offline into a new
 * project, where its `burrow` runs on plain Node and its exports import.
 *
 * Both build from the sources into temporary folders (never the work tree's
 * dist/), the same on every runtime: the builds are spawned processes.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../src/version.ts";
import { repo, runtime as rt } from "./helpers.ts";

const bin = (name: string) => join(repo, "node_modules", ".bin", name);

interface Proc {
  child: ChildProcess;
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

/** Start a process; every test stops it. */
function start(cmd: string, args: string[], cwd: string): Proc {
  const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const watchers = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of [...watchers]) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  return {
    child,
    waitFor(re, ms = 30000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (!m) return;
          clearTimeout(timer);
          watchers.delete(check);
          resolve(m);
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`timed out waiting for ${re} from ${cmd}:\n${out.slice(-3000)}`));
        }, ms);
        watchers.add(check);
        check();
      });
    },
    async stop() {
      const kill = (sig: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined) process.kill(child.pid, sig);
        } catch {
          // already gone
        }
      };
      if (child.exitCode === null && child.signalCode === null) kill("SIGTERM");
      const t = setTimeout(() => kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Run to the end (bounded); the output, or a failed assertion with it. */
function run(cmd: string, args: string[], cwd: string, ms = 120000): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: ms });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.error ?? ""}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Wait for the demo's curl line, then curl through it as it says. */
async function curlThroughDemo(demo: Proc): Promise<void> {
  const m = await demo.waitFor(/curl --socks5-hostname (\S+) --proxy-user (\S+) (http:\/\/\S+)/);
  const body = run(
    "curl",
    ["-sS", "-m", "10", "--socks5-hostname", m[1]!, "--proxy-user", m[2]!, m[3]!],
    repo,
    15000,
  );
  assert.equal(body, "Hello from inside the closed network, through burrow.\n");
}

const DEMO = [
  "demo",
  "--socks",
  "127.0.0.1:0",
  "--agents",
  "127.0.0.1:0",
  "--target",
  "127.0.0.1:0",
];

test(`${rt}: ship: the compiled executable runs the demo from an empty folder (curl through it)`, async () => {
  const build = mkdtempSync(join(tmpdir(), "burrow-compile-"));
  const empty = mkdtempSync(join(tmpdir(), "burrow-exe-"));
  let demo: Proc | undefined;
  try {
    run(bin("tsx"), ["scripts/compile.ts", "--outfile", join(build, "burrow")], repo);
    const exe = join(empty, "burrow");
    copyFileSync(join(build, "burrow"), exe);
    chmodSync(exe, 0o755);
    assert.match(
      run(exe, ["--version"], empty, 20000),
      new RegExp(
        `^burrow ${VERSION.replace(/\./g, "\\.")} \\(bun [\\d.]+; protocol \\d+\\.\\.\\d+\\)\\n$`,
      ),
    );
    demo = start(exe, DEMO, empty);
    await curlThroughDemo(demo);
  } finally {
    await demo?.stop();
    rmSync(build, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  }
});

interface PackInfo {
  filename: string;
  integrity: string;
  files: Array<{ path: string }>;
}

interface Lock {
  packages: Record<string, { dev?: boolean }>;
}

test(`${rt}: ship: npm pack's tarball installs offline and its burrow runs on plain Node`, async () => {
  const tmp = mkdtempSync(join(tmpdir(), "burrow-pack-"));
  let demo: Proc | undefined;
  try {
    // Pack a copy of the sources, so that its build (prepack) never touches the work tree.
    const src = join(tmp, "src");
    for (
      const p of [
        "package.json",
        "tsconfig.json",
        "tsconfig.build.json",
        "README.md",
        "src",
        "runtimes",
        "generated",
        "scripts/build.ts",
        "bin",
      ]
    ) {
      cpSync(join(repo, p), join(src, p), { recursive: true });
    }
    symlinkSync(join(repo, "node_modules"), join(src, "node_modules"));
    const [info] = JSON.parse(
      run("npm", ["pack", "--offline", "--json", "--pack-destination", tmp], src),
    ) as PackInfo[];
    assert.ok(info);
    const paths = info.files.map((f) => f.path);
    for (const p of ["dist/runtimes/node/main.js", "dist/src/mod.js", "dist/src/mod.d.ts"]) {
      assert.ok(paths.includes(p), `${p} in the package`);
    }
    for (const r of ["node", "deno", "bun"]) {
      assert.ok(
        paths.includes(`dist/runtimes/${r}/mod.js`) &&
          paths.includes(`dist/runtimes/${r}/mod.d.ts`),
      );
    }
    const extra = paths.filter((p) =>
      !/^dist\/(src|runtimes|generated)\/.*\.(js|d\.ts)$/.test(p) &&
      !["package.json", "README.md", "bin/burrow.mjs"].includes(p)
    );
    assert.deepEqual(extra, [], "no tests, no bench, no TypeScript sources in the package");

    // A new project that depends on the tarball. Offline: a lock file with the
    // tarball and burrow's runtime dependencies as this repository locks them,
    // which `npm ci` (run before the tests) left in npm's cache.
    const project = join(tmp, "project");
    mkdirSync(project);
    copyFileSync(join(tmp, info.filename), join(project, info.filename));
    const pkg = JSON.parse(readFileSync(join(src, "package.json"), "utf8")) as Record<
      string,
      unknown
    >;
    const lock = JSON.parse(readFileSync(join(repo, "package-lock.json"), "utf8")) as Lock;
    const dep = { burrow: `file:${info.filename}` };
    const packages: Record<string, unknown> = {
      "": { name: "consumer", version: "1.0.0", dependencies: dep },
      "node_modules/burrow": {
        version: pkg.version,
        resolved: dep.burrow,
        integrity: info.integrity,
        license: pkg.license,
        dependencies: pkg.dependencies,
        bin: pkg.bin,
        engines: pkg.engines,
      },
    };
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path !== "" && !entry.dev) packages[path] = entry;
    }
    const manifest = { name: "consumer", version: "1.0.0", private: true, dependencies: dep };
    writeFileSync(join(project, "package.json"), JSON.stringify(manifest, null, 2));
    writeFileSync(
      join(project, "package-lock.json"),
      JSON.stringify(
        { name: "consumer", version: "1.0.0", lockfileVersion: 3, requires: true, packages },
        null,
        2,
      ),
    );
    const ci = ["ci", "--ignore-scripts", "--no-audit", "--no-fund"];
    const offline = spawnSync("npm", [...ci, "--offline"], {
      cwd: project,
      encoding: "utf8",
      timeout: 120000,
    });
    // A cache that `npm ci` did not fill (node_modules copied in): fetch what is missing.
    if (offline.status !== 0 && /ENOTCACHED/.test(offline.stderr)) {
      run("npm", [...ci, "--prefer-offline"], project);
    } else {assert.equal(
        offline.status,
        0,
        `npm ci --offline: ${offline.stdout}\n${offline.stderr}`,
      );}

    // Its bin on plain Node (the shebang's `node`; no tsx anywhere in the project).
    const burrow = join(project, "node_modules", ".bin", "burrow");
    assert.match(
      run(burrow, ["--version"], project, 20000),
      /^burrow [\d.]+ \(node [\d.]+; protocol /,
    );
    demo = start(burrow, DEMO, project);
    await curlThroughDemo(demo);

    // Its exports, as a library.
    const imported = run(
      "node",
      [
        "--input-type=module",
        "-e",
        `const core = await import("burrow"); const node = await import("burrow/node");
       console.log([typeof core.Server, typeof core.Agent, typeof core.ClientProxy,
         typeof core.parseServerConfig, core.VERSION, node.net.runtime].join(" "));`,
      ],
      project,
      20000,
    );
    assert.equal(imported, `function function function function ${VERSION} node\n`);
    // And their types: a consumer type-checks against the package's .d.ts only.
    writeFileSync(
      join(project, "consumer.ts"),
      `import { Agent, type Net, parseRule, VERSION } from "burrow";
import { net } from "burrow/node";
const n: Net = net;
const rules = parseRule("*.corp:80");
const v: string = VERSION;
// @ts-expect-error the types are real, not any
const wrong: number = net.runtime;
export { Agent, n, rules, v, wrong };
`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          noEmit: true,
          skipLibCheck: false,
          types: [],
        },
        files: ["consumer.ts"],
      }),
    );
    run(bin("tsc"), ["-p", "."], project, 60000);
  } finally {
    await demo?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test(`${rt}: ship: package.json, deno.json (JSR) and the CLI agree on the version and the exports`, () => {
  const read = (f: string) =>
    JSON.parse(readFileSync(join(repo, f), "utf8")) as Record<string, unknown>;
  const pkg = read("package.json");
  const deno = read("deno.json");
  assert.equal(pkg.version, VERSION);
  assert.equal(deno.version, VERSION);
  assert.match(String(deno.name), /^@[a-z0-9-]+\/[a-z0-9-]+$/);
  const exports = deno.exports as Record<string, string>;
  assert.equal(exports["."], "./src/mod.ts");
  for (const target of Object.values(exports)) {
    assert.ok(readFileSync(join(repo, target), "utf8").length > 0, target);
  }
  const npm = pkg.exports as Record<string, { types: string; default: string } | string>;
  assert.deepEqual(Object.keys(npm), [".", "./node", "./deno", "./bun", "./package.json"]);
  assert.deepEqual(pkg.bin, { burrow: "bin/burrow.mjs" });
  assert.ok(readFileSync(join(repo, "bin/burrow.mjs"), "utf8").startsWith("#!/usr/bin/env node\n"));
  assert.ok(
    readFileSync(join(repo, "runtimes/node/main.ts"), "utf8").startsWith("#!/usr/bin/env node\n"),
  );
});
