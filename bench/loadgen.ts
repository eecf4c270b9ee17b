/**
 * Building and driving the C load generator (loadgen.c) and target
 * (target.c). Both are compiled with gcc into bench/.build/ when their source
 * is newer than the binary; the binaries are not committed.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { type Proc, start, stop } from "./proc.ts";

const here = path.dirname(new URL(import.meta.url).pathname);
export const buildDir = path.join(here, ".build");
export const loadgenBin = path.join(buildDir, "loadgen");
export const targetBin = path.join(buildDir, "target");

/** Compile loadgen.c and target.c if needed. */
export function build(): void {
  fs.mkdirSync(buildDir, { recursive: true });
  for (
    const [src, bin, libs] of [
      ["loadgen.c", loadgenBin, ["-lm"]],
      ["target.c", targetBin, []],
    ] as const
  ) {
    const s = path.join(here, src);
    if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(s).mtimeMs) continue;
    execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-pthread", "-o", bin, s, ...libs], {
      stdio: "inherit",
    });
  }
}

/** How the load generator reaches the target through a system. */
export interface Endpoint {
  /** What loadgen connects to without SOCKS, or asks SOCKS to CONNECT to. */
  target: string;
  /** SOCKS5 server (host:port); absent: connect straight to `target`. */
  socks?: string;
  user?: string;
  pass?: string;
}

export function endpointArgs(ep: Endpoint): string[] {
  const a = ["--target", ep.target];
  if (ep.socks) a.push("--socks", ep.socks);
  if (ep.user !== undefined) a.push("--user", ep.user, "--pass", ep.pass ?? "");
  return a;
}

/** One JSON object the load generator printed. */
export type LoadgenResult = Record<string, number | string>;

/**
 * Run one load generator mode to its end and return its JSON lines. Bounded:
 * the generator stops itself after `maxSeconds` (SIGALRM), and is killed by
 * PID 10 s after that.
 */
export async function runLoadgen(
  mode: string,
  ep: Endpoint,
  args: string[],
  maxSeconds: number,
  logFile: string,
): Promise<{ code: number | string; results: LoadgenResult[] }> {
  const p = start(`loadgen ${mode}`, loadgenBin, [
    mode,
    ...endpointArgs(ep),
    ...args,
    "--max-seconds",
    String(maxSeconds),
  ], {
    logFile,
    stdout: "pipe",
    stdin: "ignore",
  });
  const lines: string[] = [];
  p.child.stdout!.setEncoding("utf8");
  let buf = "";
  p.child.stdout!.on("data", (d: string) => {
    buf += d;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const killer = setTimeout(() => void stop(p, 500), (maxSeconds + 10) * 1000);
  const code = await p.exited;
  clearTimeout(killer);
  if (buf.trim()) lines.push(buf);
  const results = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LoadgenResult);
  if (results.length === 0 && mode !== "probe") {
    fs.appendFileSync(logFile, `loadgen ${mode} printed no result (exit ${code})\n`);
  }
  return { code, results };
}

/** Wait until one stream with a 1-byte echo goes through (up to `seconds`). */
export async function waitReady(ep: Endpoint, seconds: number, logFile: string): Promise<boolean> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const { code } = await runLoadgen("probe", ep, ["--timeout", "5"], 10, logFile);
    if (code === 0) return true;
    await new Promise((r) => setTimeout(r, 150));
  }
  return false;
}

/**
 * Open and hold idle streams in stages (e.g. 1000 then 5000 in total). After
 * each stage `atStage` runs (it measures memory) before the next stage opens.
 */
export async function hold(
  ep: Endpoint,
  stages: number[],
  conc: number,
  maxSeconds: number,
  logFile: string,
  atStage: (r: LoadgenResult) => Promise<void>,
): Promise<LoadgenResult[]> {
  const p: Proc = start("loadgen hold", loadgenBin, [
    "hold",
    ...endpointArgs(ep),
    "--stages",
    stages.join(","),
    "--conc",
    String(conc),
    "--timeout",
    "30",
    "--max-seconds",
    String(maxSeconds),
  ], { logFile, stdout: "pipe", stdin: "pipe" });
  const killer = setTimeout(() => void stop(p, 500), (maxSeconds + 10) * 1000);
  const out: LoadgenResult[] = [];
  const rl = createInterface({ input: p.child.stdout! });
  try {
    for await (const line of rl) {
      if (!line.startsWith("{")) continue;
      const r = JSON.parse(line) as LoadgenResult;
      out.push(r);
      await atStage(r);
      if (out.length >= stages.length) break;
      p.child.stdin!.write("\n");
    }
  } finally {
    rl.close();
    p.child.stdin!.end(); // EOF: the generator closes every stream and exits
    await Promise.race([p.exited, new Promise((r) => setTimeout(r, 15000).unref())]);
    clearTimeout(killer);
    if (p.exitCode === null) await stop(p, 500);
  }
  return out;
}

/**
 * Start the target (source/sink/echo) on a free port; it exits when our stdin
 * pipe closes. `wrap`: how to start it elsewhere (bench/fair.ts: in its
 * network namespace, `ip netns exec NAME …`).
 */
export async function startTarget(
  logFile: string,
  wrap: (cmd: string, args: string[]) => [string, string[]] = (c, a) => [c, a],
): Promise<{ proc: Proc; addr: string }> {
  const p = start("target", ...wrap(targetBin, []), { logFile, stdout: "pipe", stdin: "pipe" });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: p.child.stdout! });
    rl.once("line", (l) => {
      rl.close();
      resolve(l);
    });
    p.exited.then(() => reject(new Error("target exited at start")));
  });
  const port = (JSON.parse(line) as { port: number }).port;
  return { proc: p, addr: `127.0.0.1:${port}` };
}
