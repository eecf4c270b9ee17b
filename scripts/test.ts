/**
 * `npm test`: installs the Debian clients the tests drive if they are missing
 * (or stops with one line naming them), type checks, generated-code check,
 * size check, lint and format checks, then the same test files on Node, Deno
 * and Bun.
 * Ends with one line `N passed, N failed` over everything and exits non-zero
 * if anything failed.
 *
 *   npm test                      everything
 *   npm test -- --runtime deno    one runtime (repeatable), checks included
 *   npm test -- --no-checks       skip type, generated-code, size, lint and format checks
 *   npm test -- test/x_test.ts    only these files
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const root = new URL("..", import.meta.url).pathname;
const bin = (name: string) => join(root, "node_modules", ".bin", name);
// One folder per run, so that concurrent runs never clear each other's reports.
const outDir = join(root, ".state", "test", String(process.pid));

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runtime: { type: "string", multiple: true },
    "no-checks": { type: "boolean", default: false },
  },
});
const runtimes = values.runtime ?? ["node", "deno", "bun"];
const files = positionals.length > 0
  ? positionals
  : readdirSync(join(root, "test")).filter((f) => f.endsWith("_test.ts")).sort().map((f) =>
    `test/${f}`
  );

interface Tally {
  label: string;
  passed: number;
  failed: number;
  failures: string[];
}
const tallies: Tally[] = [];

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      stdio: "inherit",
      env: { ...process.env, ...env },
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    child.on("error", () => resolve(127));
  });
}

async function check(label: string, cmd: string, args: string[]): Promise<void> {
  console.log(`\n=== ${label} ===`);
  const code = await run(cmd, args);
  tallies.push({
    label,
    passed: code === 0 ? 1 : 0,
    failed: code === 0 ? 0 : 1,
    failures: code === 0 ? [] : [label],
  });
}

/** Count <testcase> elements of a JUnit report, and those that failed. */
function junit(label: string, path: string, exitCode: number): void {
  let xml = "";
  try {
    xml = readFileSync(path, "utf8");
  } catch {
    tallies.push({
      label,
      passed: 0,
      failed: 1,
      failures: [`${label}: no report (exit ${exitCode})`],
    });
    return;
  }
  const cases = xml.match(/<testcase\b[\s\S]*?(?:\/>|<\/testcase>)/g) ?? [];
  const t: Tally = { label, passed: 0, failed: 0, failures: [] };
  for (const c of cases) {
    // Deno and Node report a suite of steps as a testcase too; count leaves only.
    const name = /name="([^"]*)"/.exec(c)?.[1] ?? "?";
    if (/<(failure|error)\b/.test(c)) {
      t.failed++;
      t.failures.push(`${label}: ${name}`);
    } else if (/<skipped\b/.test(c)) {
      t.failed++;
      t.failures.push(`${label}: ${name} (skipped tests are not allowed)`);
    } else t.passed++;
  }
  if (exitCode !== 0 && t.failed === 0) {
    t.failed++;
    t.failures.push(`${label}: runner exited ${exitCode} without a failing test case`);
  }
  tallies.push(t);
}

/**
 * The real clients the end-to-end tests drive: command → Debian package.
 * Missing ones are installed when we may (root with apt-get); otherwise the
 * run stops at once with one line naming them.
 */
const CLIENTS: Record<string, string> = {
  curl: "curl",
  ncat: "ncat",
  tinyproxy: "tinyproxy",
  microsocks: "microsocks",
  nginx: "nginx-light",
  chromium: "chromium",
  haproxy: "haproxy",
  // A path: the file must exist (nginx's stream module, loaded by test/daemons.ts).
  "/usr/lib/nginx/modules/ngx_stream_module.so": "libnginx-mod-stream",
  "systemd-analyze": "systemd", // verifies `burrow service` units (test/service_test.ts)
  // Real programs through forwards and HTTP CONNECT (test/forward_test.ts, http_connect_test.ts).
  git: "git",
  ssh: "openssh-client",
  "/usr/sbin/sshd": "openssh-server",
  psql: "postgresql-client",
  // initdb is not on PATH: the test runs it from here as the postgres user.
  "/usr/lib/postgresql/15/bin/initdb": "postgresql",
  // The state store's tests start their own cluster with it (test/pg.ts).
  "/usr/lib/postgresql/15/bin/pg_ctl": "postgresql-15",
  // UDP and DNS through the tunnel, the closed side in a network namespace (test/netns.ts).
  dig: "dnsutils",
  drill: "ldnsutils", // sends UDP with sendto(2), which socksify wraps (dig 9.18 uses sendmmsg)
  socksify: "dante-client",
  "/usr/sbin/dnsmasq": "dnsmasq",
  // PySocks' UDP sockets through UDP ASSOCIATE (test/udp_test.ts).
  "/usr/lib/python3/dist-packages/socks.py": "python3-socks",
};

function has(cmd: string): boolean {
  if (cmd.startsWith("/")) return existsSync(cmd);
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function ensureClients(): void {
  const missing = () => Object.keys(CLIENTS).filter((cmd) => !has(cmd));
  const packages = missing().map((cmd) => CLIENTS[cmd]!);
  if (packages.length === 0) return;
  if (process.getuid?.() === 0 && has("apt-get")) {
    console.log(`npm test: installing ${packages.join(" ")} (apt-get)`);
    const opts = {
      stdio: "inherit" as const,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    };
    spawnSync("apt-get", ["update", "-qq"], opts);
    spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], opts);
    if (missing().length === 0) return;
  }
  console.error(
    `npm test: the tests need the Debian packages ${packages.join(" ")}: apt-get install -y ${
      packages.join(" ")
    }`,
  );
  process.exit(1);
}

ensureClients();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

if (!values["no-checks"]) {
  await check("type check (tsc: src, runtimes/node, test)", bin("tsc"), [
    "--noEmit",
    "-p",
    "tsconfig.json",
  ]);
  await check("type check (tsc + bun-types: runtimes/bun)", bin("tsc"), [
    "--noEmit",
    "-p",
    "tsconfig.bun.json",
  ]);
  await check("type check (deno check: src, runtimes/deno)", bin("deno"), [
    "check",
    "--quiet",
    "src/",
    "runtimes/deno/",
  ]);
  await check("generated/ matches spec/", bin("tsx"), ["scripts/gen.ts", "--check"]);
  await check("sizes (files ≤ 450 lines, functions ≤ 80)", bin("tsx"), ["scripts/size.ts"]);
  await check("deno lint", bin("deno"), ["lint", "--quiet"]);
  await check("deno fmt --check", bin("deno"), ["fmt", "--check", "--quiet"]);
}

for (const rt of runtimes) {
  const report = join(outDir, `${rt}.xml`);
  console.log(`\n=== tests on ${rt} ===`);
  let code: number;
  if (rt === "node") {
    code = await run(process.execPath, [
      "--import",
      "tsx",
      "--test",
      "--test-concurrency=1",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=junit",
      `--test-reporter-destination=${report}`,
      ...files,
    ]);
  } else if (rt === "deno") {
    code = await run(bin("deno"), ["test", "-A", "--no-check", `--junit-path=${report}`, ...files]);
  } else if (rt === "bun") {
    code = await run(bin("bun"), [
      "test",
      "--timeout=120000",
      "--reporter=junit",
      `--reporter-outfile=${report}`,
      ...files.map((f) => `./${f}`),
    ]);
  } else {
    console.error(`unknown runtime ${rt}`);
    process.exit(2);
  }
  junit(`${rt}`, report, code);
}

console.log("\n=== summary ===");
let passed = 0;
let failed = 0;
for (const t of tallies) {
  passed += t.passed;
  failed += t.failed;
  console.log(`${t.label}: ${t.passed} passed, ${t.failed} failed`);
  for (const f of t.failures) console.log(`  FAILED ${f}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
