/**
 * README.md against the code: every ```console block's `$ burrow …` command
 * runs (offline, from an empty folder, with the `burrow` the README tells
 * this runtime's users to set up) and prints what the block shows, in
 * shape; and the README spells the command `burrow` everywhere.
 *
 * Shape: a sample line `…` stands for any number of lines; in a line, `…`
 * for any text, a SHA-256 fingerprint for any fingerprint, `sha256:<hex>`
 * for any hash, a long base64 word for any one of that length, and
 * `node 20.20.2` for any runtime and its version.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { generateSelfSigned } from "../src/tls.ts";
import { repo, runtime as rt } from "./helpers.ts";

const readme = readFileSync(join(repo, "README.md"), "utf8");

/** The fenced blocks of one info string, with the line each starts on. */
function blocks(lang: string): Array<{ line: number; text: string[] }> {
  const out: Array<{ line: number; text: string[] }> = [];
  const lines = readme.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const end = lines.findIndex((l, j) => j > i && l.trim() === "```");
    if (open[2] === lang) {
      out.push({ line: i + 1, text: lines.slice(i + 1, end).map((l) => l.slice(indent)) });
    }
    i = end;
  }
  return out;
}

/** The `alias burrow=…` line for `rt` in README, with $PWD as the checkout. */
function alias(runtime: "deno" | "bun"): string[] {
  const line = blocks("sh").flatMap((b) => b.text).find((l) =>
    l.startsWith("alias burrow=") && l.includes(`/.bin/${runtime} `)
  );
  assert.ok(line, `README has an alias burrow=… for ${runtime}`);
  return /^alias burrow="(.*)"$/.exec(line)![1]!.replaceAll("$PWD", repo.replace(/\/$/, ""))
    .split(" ");
}

/**
 * The `burrow` this runtime's users get from README's "The `burrow`
 * command": a link to bin/burrow.mjs as `npm link` makes (Node), or the
 * alias (Deno, Bun).
 */
function burrowFor(dir: string): string[] {
  if (rt !== "node") return alias(rt);
  const link = join(dir, "bin", "burrow");
  mkdirSync(join(dir, "bin"));
  symlinkSync(join(repo, "bin", "burrow.mjs"), link);
  return [link];
}

/** Split a README command line into words: plain words and '…'/"…" quoting. */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

const SHAPES: Array<[RegExp, string]> = [
  [/…/, ".*?"],
  [/(?:[0-9A-F]{2}:){31}[0-9A-F]{2}/, "(?:[0-9A-F]{2}:){31}[0-9A-F]{2}"],
  [/sha256:[0-9a-f]{64}/, "sha256:[0-9a-f]{64}"],
  [/\b(?:node|deno|bun) \d+\.\d+\.\d+/, "(?:node|deno|bun) \\d+\\.\\d+\\.\\d+"],
  [/[A-Za-z0-9+/]{40,}={0,2}/, ""], // base64: same length, filled in below
];

/** A sample line as a regular expression of its shape. */
export function shape(sample: string): RegExp {
  let re = "";
  let rest = sample;
  while (rest.length > 0) {
    let best: { at: number; len: number; pat: string } | undefined;
    for (const [find, pat] of SHAPES) {
      const m = find.exec(rest);
      if (m && (best === undefined || m.index < best.at)) {
        best = { at: m.index, len: m[0].length, pat: pat || `[A-Za-z0-9+/=]{${m[0].length}}` };
      }
    }
    const lit = rest.slice(0, best?.at ?? rest.length);
    re += lit.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+");
    if (!best) break;
    re += best.pat;
    rest = rest.slice(best.at + best.len);
  }
  return new RegExp(`^${re}$`);
}

/** Whether `got` has the shape of `sample` (`…` alone: any number of lines). */
export function sameShape(sample: string[], got: string[]): boolean {
  const [s, ...moreSample] = sample;
  if (s === undefined) return got.length === 0;
  if (s === "…") {
    for (let skip = 0; skip <= got.length; skip++) {
      if (sameShape(moreSample, got.slice(skip))) return true;
    }
    return false;
  }
  const [g, ...moreGot] = got;
  return g !== undefined && shape(s).test(g) && sameShape(moreSample, moreGot);
}

/** The files README's samples name, in the folder standing for /etc/burrow. */
async function fixtures(dir: string): Promise<void> {
  mkdirSync(join(dir, "state", "tls"), { recursive: true });
  writeFileSync(join(dir, "server.yaml"), "state_dir: state\n");
  writeFileSync(join(dir, "state", "tls", "cert.pem"), (await generateSelfSigned()).cert);
  writeFileSync(
    join(dir, "agent.yaml"),
    "server: burrow.example.com\nname: office\nkey_file: office.key\nproxy_file: proxy\n" +
      "allow: ['*.corp:80,443']\n",
  );
}

test(`${rt}: readme: the shape matcher itself`, () => {
  assert.ok(sameShape(["a", "…", "z"], ["a", "b", "c", "z"]));
  assert.ok(sameShape(["a", "…", "z"], ["a", "z"]));
  assert.ok(!sameShape(["a", "…", "z"], ["a", "b"]));
  assert.ok(
    shape(
      `3F:A0:5C:17:E2:9B:44:0D:8A:61:C3:F5:2E:90:7B:D8:14:A6:59:3C:EE:02:B7:48:91:6F:D3:25:8C:4A:E1:9C`,
    )
      .test(Array(32).fill("0B").join(":")),
  );
  assert.ok(!shape("public_key: " + "A".repeat(44)).test("public_key: " + "A".repeat(43)));
  assert.ok(
    shape("burrow 0.1.0 (node 20.20.2; protocol 1..1)").test(
      "burrow 0.1.0 (deno 2.9.6; protocol 1..1)",
    ),
  );
  assert.ok(
    !shape("burrow 0.1.0 (node 20.20.2; protocol 1..1)").test(
      "burrow 0.2.0 (deno 2.9.6; protocol 1..1)",
    ),
  );
});

test(`${rt}: readme: every console sample is what its command prints, from any folder`, async () => {
  const samples = blocks("console");
  assert.ok(samples.length >= 4, "README has console samples");
  for (const b of samples) {
    const dir = mkdtempSync(join(tmpdir(), "burrow-readme-"));
    try {
      const etc = join(dir, "etc");
      mkdirSync(etc);
      await fixtures(etc);
      const burrow = burrowFor(dir);
      const cmds = b.text.flatMap((l, i) => l.startsWith("$ ") ? [i] : []);
      assert.ok(cmds.length > 0, `README.md:${b.line}: a console block has a $ command`);
      for (const [k, at] of cmds.entries()) {
        const args = words(b.text[at]!.slice(2).replaceAll("/etc/burrow", etc));
        assert.equal(args.shift(), "burrow", `README.md:${b.line + at + 1}`);
        const r = spawnSync(burrow[0]!, [...burrow.slice(1), ...args], {
          cwd: etc,
          encoding: "utf8",
          timeout: 60000,
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
        });
        const got = `${r.stdout}${r.stderr}`.replaceAll(etc, "/etc/burrow").replace(/\n$/, "")
          .split("\n");
        const want = b.text.slice(at + 1, cmds[k + 1] ?? b.text.length);
        assert.equal(r.status, 0, `README.md:${b.line + at + 1}: ${got.join("\n")}`);
        assert.ok(
          sameShape(want, got),
          `README.md:${b.line + at + 1}: ${b.text[at]}\nREADME shows:\n${
            want.join("\n")
          }\nit prints:\n${got.join("\n")}`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test(`${rt}: readme: npx burrow in a checkout's subfolder, and the link npm link makes, from anywhere`, () => {
  const npx = spawnSync("npx", ["--offline", "burrow", "--version"], {
    cwd: join(repo, "test"),
    encoding: "utf8",
    timeout: 60000,
  });
  assert.match(npx.stdout, /^burrow \d+\.\d+\.\d+ \(node /, npx.stderr);
  const dir = mkdtempSync(join(tmpdir(), "burrow-readme-"));
  try {
    symlinkSync(join(repo, "bin", "burrow.mjs"), join(dir, "burrow"));
    const r = spawnSync(join(dir, "burrow"), ["--version"], { cwd: dir, encoding: "utf8" });
    assert.match(r.stdout, /^burrow \d+\.\d+\.\d+ \(node /, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${rt}: readme: the command is spelled burrow everywhere, and no banner lands in a file`, () => {
  for (const b of [...blocks("sh"), ...blocks("console")]) {
    b.text.forEach((l, i) => {
      const where = `README.md:${b.line + i + 1}: ${l}`;
      if (l.startsWith("alias burrow=")) return;
      assert.doesNotMatch(
        l,
        /(node --import|deno run|bun run|npm run burrow)\b.*runtimes\//,
        where,
      );
      // a redirect of a tool that prints a banner (npm run without --silent, npx)
      assert.doesNotMatch(l, /(npm run(?! --silent)|npx) [^>]*>[^&]/, where);
      assert.doesNotMatch(l, /burrow (keygen|token)\b.*>/, `${where}: use -o`);
    });
  }
});
