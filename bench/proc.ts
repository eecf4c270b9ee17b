/**
 * Process helpers for the benchmark: start processes with their output in a
 * log file, stop them (and their descendants) by PID, read their memory and
 * CPU from /proc, pick free loopback ports.
 *
 * Every process started through {@link start} is remembered until stopped;
 * {@link stopAll} (called at the end, on Ctrl-C and on failure) stops the
 * rest, newest first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  readonly logFile: string;
  exitCode: number | string | null;
}

const live: Proc[] = [];

export interface StartOptions {
  logFile: string;
  /** "pipe" keeps stdin open (a process that exits on stdin EOF dies with us). */
  stdin?: "pipe" | "ignore";
  /** "pipe" to read stdout from the caller; default: into the log file. */
  stdout?: "pipe" | "log";
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export function start(name: string, cmd: string, args: string[], o: StartOptions): Proc {
  const fd = fs.openSync(o.logFile, "a");
  fs.writeSync(fd, `# ${new Date().toISOString()} ${cmd} ${args.join(" ")}\n`);
  const child = spawn(cmd, args, {
    stdio: [o.stdin ?? "ignore", o.stdout === "pipe" ? "pipe" : fd, fd],
    cwd: o.cwd,
    env: o.env ?? process.env,
  });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  let exitCode: number | string | null = null;
  const p: Proc = {
    name,
    pid: child.pid,
    child,
    logFile: o.logFile,
    get exitCode() {
      return exitCode;
    },
    exited: new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        exitCode = code ?? signal ?? -1;
        const i = live.indexOf(p);
        if (i >= 0) live.splice(i, 1);
        resolve(exitCode);
      });
    }),
  };
  child.on("error", () => {}); // surfaces as exit
  live.push(p);
  return p;
}

/** Parent pid of every process, from /proc/PID/stat. */
function parents(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const st = statFields(Number(d));
    if (!st) continue;
    const ppid = Number(st[1]);
    const list = kids.get(ppid);
    if (list) list.push(Number(d));
    else kids.set(ppid, [Number(d)]);
  }
  return kids;
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, ...]; null if gone. */
function statFields(pid: number): string[] | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** `roots` and all their descendants that are still there. */
export function tree(roots: number[]): number[] {
  const kids = parents();
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = roots.filter((p) => statFields(p) !== null);
  while (stack.length > 0 && out.length < 100_000) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    out.push(p);
    for (const k of kids.get(p) ?? []) stack.push(k);
  }
  return out;
}

function alive(pid: number): boolean {
  const st = statFields(pid);
  return st !== null && st[0] !== "Z" && st[0] !== "X";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export { sleep };

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** Stop a process and its descendants by PID: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(p: Proc, graceMs = 3000): Promise<void> {
  const pids = tree([p.pid]);
  signal(pids, "SIGTERM");
  const until = Date.now() + graceMs;
  while (Date.now() < until && pids.some(alive)) await sleep(25);
  const left = pids.filter(alive);
  if (left.length > 0) {
    signal(left, "SIGKILL");
    const until2 = Date.now() + 2000;
    while (Date.now() < until2 && left.some(alive)) await sleep(25);
  }
  if (p.exitCode === null) {
    await Promise.race([
      p.exited,
      new Promise((r) => setTimeout(r, 1000).unref()),
    ]);
  }
}

/** Stop every process started and not yet stopped, newest first. */
export async function stopAll(): Promise<void> {
  for (const p of [...live].reverse()) await stop(p, 2000);
}

/** Last resort from a synchronous 'exit' handler: SIGKILL what is left, by PID. */
export function killAllSync(): void {
  for (const p of [...live].reverse()) signal(tree([p.pid]), "SIGKILL");
}

export interface MemSample {
  /** Sum over the process trees, KiB. */
  rssKiB: number;
  pssKiB: number;
  procs: number;
  threads: number;
  /** Process names and counts, e.g. { sshd: 3, ssh: 1 }. */
  names: Record<string, number>;
}

function kib(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup) summed over the trees of `roots`. */
export function memory(roots: number[]): MemSample {
  const out: MemSample = { rssKiB: 0, pssKiB: 0, procs: 0, threads: 0, names: {} };
  for (const pid of tree(roots)) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      let pss = 0;
      try {
        pss = kib(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"), "Pss");
      } catch {
        // kernel without smaps_rollup
      }
      const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?";
      out.rssKiB += kib(status, "VmRSS");
      out.pssKiB += pss;
      out.threads += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      out.procs++;
      out.names[name] = (out.names[name] ?? 0) + 1;
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

const TICK = 100; // USER_HZ, `getconf CLK_TCK` on Linux

/** CPU seconds used so far by the trees of `roots` (children that were waited for included). */
export function cpuSeconds(roots: number[]): number {
  let ticks = 0;
  const rootSet = new Set(roots);
  for (const pid of tree(roots)) {
    const f = statFields(pid);
    if (!f) continue;
    // utime stime cutime cstime are fields 14..17 of stat; f[0] is field 3.
    ticks += Number(f[11]) + Number(f[12]);
    if (rootSet.has(pid)) ticks += Number(f[13]) + Number(f[14]);
  }
  return ticks / TICK;
}

/**
 * CPU seconds of this process and of its children that it has waited for
 * (utime + stime + cutime + cstime of /proc/self/stat): during a scenario,
 * the orchestrator itself plus the load generator, which exits and is reaped.
 */
export function selfAndReapedSeconds(): number {
  const f = statFields(process.pid);
  if (!f) return 0;
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
}

/**
 * CPU seconds all processes on the machine have used (user + nice + system,
 * all cores; /proc/stat). Interrupt and softirq time is left out: it is
 * mostly the loopback traffic of the benchmark itself.
 */
export function machineBusySeconds(): number {
  const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  // cpu user nice system idle iowait irq softirq steal ...
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  return (v[0]! + v[1]! + v[2]!) / TICK;
}

/**
 * A free TCP port on 127.0.0.1, below the ephemeral range (32768+) so that
 * no outgoing connection of the benchmark can be holding it.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(false));
      s.listen({ host: "127.0.0.1", port, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error("no free port found in 20000-32000");
}

/** Last lines of a log file, for error messages. */
export function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
