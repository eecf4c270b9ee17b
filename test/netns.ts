/**
 * The closed side of the UDP tests: a network namespace the test creates,
 * with a DNS server (dnsmasq) whose zone only it knows, a UDP echo server
 * and a UDP tripwire, reached from the root namespace over a veth pair.
 *
 * ## Why the proxy cannot be bypassed
 *
 * socksify (dante-client) sends every 127.0.0.0/8 destination directly, and
 * any program may ignore its proxy settings; a test whose answer could also
 * come straight from the closed side proves nothing. So:
 *
 * - The closed services listen on addresses of the namespace's own loopback
 *   (`closed4` = 10.A.B.130, 10.A.B.131, 10.A.B.132 and `closed6` =
 *   fdXX:…:1::53), not on the veth. The root namespace has an `unreachable`
 *   route for 10.A.B.128/25 and fdXX:…:1::/64: a datagram sent to them
 *   directly fails at once (ENETUNREACH/EHOSTUNREACH), it cannot reach the
 *   namespace, nor leave through the default route. Tests check this with
 *   a direct `dig` that must fail ({@link ClosedSide.directDigFails}).
 * - The agent runs INSIDE the namespace ({@link ClosedSide.agent}: the
 *   runtime's `burrow agent`, `ip netns exec`), as in a real closed
 *   network, and dials out to the server on the veth's root address
 *   (`root4`, 10.A.B.1). Only the agent's path reaches the closed
 *   addresses, so an answer from the zone (a TXT record with a random token
 *   made per namespace) proves the datagram went client → server → agent.
 * - `/etc/netns/NAME/resolv.conf` names `closed4` as the nameserver: `ip
 *   netns exec` mounts it over /etc/resolv.conf for the agent, which reports
 *   it as its nameserver (SPEC.md §5.19), the default of `--dns-server`.
 *
 * Each ClosedSide has a random namespace name and random 10.A.B.0/24 and
 * fdXX:… prefixes (retried when in use), its own temp dir for dnsmasq's pid
 * and lease files and configs, and {@link ClosedSide.close} removes all of
 * it (the namespace takes the veth pair with it). Needs root (CAP_NET_ADMIN,
 * CAP_SYS_ADMIN for `ip netns exec`'s mounts) and iproute2, dnsmasq,
 * python3 (Debian's /usr/bin/python3 for the echo and the tripwire).
 *
 * Ports inside the namespace are its own: dnsmasq on 53 (UDP and TCP), the
 * echo on 7, the tripwire on 9 (each on every closed address).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { burrowCommand, type Proc, repo, spawnProc } from "./helpers.ts";

/** Debian's python3 (python3-socks is installed for it, not for a pyenv shim on PATH). */
export const PYTHON = "/usr/bin/python3";

/** Run `cmd` without blocking the event loop (a server may run in this process). */
export function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: stderr + String(e) });
    });
  });
}

async function ip(...args: string[]): Promise<void> {
  const r = await run("ip", args);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** The names the zone answers (dnsmasq), with the addresses it gives. */
export const ZONE = {
  /** A and AAAA. */
  host: "intranet.corp",
  a: "10.20.30.40",
  aaaa: "fd00:20:30::40",
  /** SRV `_ldap._tcp.intranet.corp` → dc1.intranet.corp:389. */
  srv: "_ldap._tcp.intranet.corp",
  srvTarget: "dc1.intranet.corp",
} as const;

export interface ClosedSide {
  /** The namespace's name. */
  name: string;
  /** The veth's root-side addresses: what the agent inside dials (listen there). */
  root4: string;
  root6: string;
  /** The DNS server, the echo (port 7) and the tripwire (port 9) address; granted in tests. */
  closed4: string;
  /** Another closed address with the same services (the tripwire on 9): for refusals. */
  other4: string;
  /** A third closed address (the tripwire on 9): for the agent's own refusals. */
  third4: string;
  /** The closed IPv6 address: DNS, echo, tripwire. */
  closed6: string;
  /** A random token in the TXT record of intranet.corp: only this namespace's dnsmasq knows it. */
  txt: string;
  /** The test's temp dir (removed by close). */
  dir: string;
  /** Start dnsmasq inside (53 on closed4, other4, closed6; UDP and TCP); resolves when it serves. */
  dnsmasq(): Promise<Proc>;
  /** Start the UDP echo inside (port 7 on every address). */
  udpEcho(): Promise<Proc>;
  /** Start the tripwire inside (port 9 on every address): prints `got ADDR PORT HEX` per datagram. */
  tripwire(): Promise<Tripwire>;
  /** Run `burrow agent` of runtime `rt` inside, with these arguments (server, name, allow, …). */
  agent(rt: "node" | "deno" | "bun", args: string[], env?: Record<string, string>): Proc;
  /** Resolves true when `dig @closed4 intranet.corp` from the root namespace fails (no bypass). */
  directDigFails(): Promise<boolean>;
  close(): Promise<void>;
}

export interface Tripwire {
  proc: Proc;
  /** Every datagram it got so far: the address it was sent to and its data as text. */
  got(): Array<{ to: string; data: string }>;
}

/** The echo and the tripwire: one socket per address (replies come from it), port `port`. */
const UDP_SERVER = `
import select, socket, sys
mode, port, hosts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
socks = {}
for host in hosts:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    socks[s] = host
print("ready", flush=True)
while True:
    for s in select.select(list(socks), [], [])[0]:
        data, src = s.recvfrom(65535)
        if mode == "echo":
            s.sendto(data, src)
        else:
            print("got", socks[s], port, data.hex(), flush=True)
`;

const rand = (n: number) => randomBytes(n);

/** Create a closed side; the caller must close() it. */
export async function closedSide(): Promise<ClosedSide> {
  const name = `burrow-t${rand(4).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "burrow-netns-"));
  const procs: Proc[] = [];
  const routes: string[][] = [];
  let a = 0, b = 0, v6 = "";
  try {
    await ip("netns", "add", name);
    // A free 10.A.B.0/24 (and ULA /48): nothing routed there in the root namespace yet.
    for (let tries = 0;; tries++) {
      a = 16 + (rand(1)[0]! % 224);
      b = rand(1)[0]!;
      const used = await run("ip", ["-4", "route", "show", "match", `10.${a}.${b}.0/24`]);
      if (!used.stdout.includes(`10.${a}.${b}.`) || tries >= 20) break;
    }
    const group = () => rand(2).readUInt16BE(0).toString(16); // canonical: no leading zeros
    v6 = `fd${rand(1).toString("hex")}:${group()}:${group()}`;
    const root4 = `10.${a}.${b}.1`, ns4 = `10.${a}.${b}.2`;
    const root6 = `${v6}::1`, ns6 = `${v6}::2`;
    const vr = `bv${rand(3).toString("hex")}`; // root end; ≤ 15 characters
    const vn = `${vr}n`;
    await ip("link", "add", vr, "type", "veth", "peer", "name", vn, "netns", name);
    await ip("addr", "add", `${root4}/30`, "dev", vr);
    await ip("-6", "addr", "add", `${root6}/64`, "dev", vr, "nodad");
    await ip("link", "set", vr, "up");
    await ip("-n", name, "link", "set", "lo", "up");
    await ip("-n", name, "addr", "add", `${ns4}/30`, "dev", vn);
    await ip("-n", name, "-6", "addr", "add", `${ns6}/64`, "dev", vn, "nodad");
    await ip("-n", name, "link", "set", vn, "up");
    const closed = [130, 131, 132].map((n) => `10.${a}.${b}.${n}`);
    const closed6 = `${v6}:1::53`;
    for (const c of closed) await ip("-n", name, "addr", "add", `${c}/32`, "dev", "lo");
    await ip("-n", name, "-6", "addr", "add", `${closed6}/128`, "dev", "lo", "nodad");
    // The root namespace cannot reach the closed addresses, not even by its default route.
    for (const r of [["-4", `10.${a}.${b}.128/25`], ["-6", `${v6}:1::/64`]]) {
      await ip(r[0]!, "route", "add", "unreachable", r[1]!);
      routes.push(r);
    }
    mkdirSync(`/etc/netns/${name}`, { recursive: true });
    writeFileSync(`/etc/netns/${name}/resolv.conf`, `nameserver ${closed[0]}\n`);
    return side({ name, dir, procs, routes, root4, root6, closed, closed6 });
  } catch (e) {
    await teardown(name, dir, procs, routes);
    throw e;
  }
}

async function teardown(name: string, dir: string, procs: Proc[], routes: string[][]) {
  await Promise.all(procs.map((p) => p.stop()));
  for (const r of routes) await run("ip", [r[0]!, "route", "del", "unreachable", r[1]!]);
  await run("ip", ["netns", "del", name]);
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

function side(s: {
  name: string;
  dir: string;
  procs: Proc[];
  routes: string[][];
  root4: string;
  root6: string;
  closed: string[];
  closed6: string;
}): ClosedSide {
  const [closed4, other4, third4] = s.closed as [string, string, string];
  const txt = `burrow-${rand(8).toString("hex")}`;
  const all = [...s.closed, s.closed6];
  const inside = (cmd: string, args: string[], env: Record<string, string> = {}): Proc => {
    const p = spawnProc("ip", ["netns", "exec", s.name, cmd, ...args], {
      cwd: repo, // node's `--import tsx` is found from there
      env: { ...process.env, ...env },
    });
    s.procs.push(p);
    return p;
  };
  return {
    name: s.name,
    root4: s.root4,
    root6: s.root6,
    closed4,
    other4,
    third4,
    closed6: s.closed6,
    txt,
    dir: s.dir,
    async dnsmasq() {
      const conf = join(s.dir, "dnsmasq.conf");
      // A TXT record over 512 bytes: a UDP answer without EDNS comes truncated (TC).
      const big = Array.from({ length: 4 }, (_, i) => `"${String(i).repeat(200)}"`).join(",");
      writeFileSync(
        conf,
        [
          "no-resolv",
          "no-hosts",
          "no-poll",
          "bind-interfaces",
          `listen-address=${closed4},${other4},${s.closed6}`,
          "local=/corp/",
          `host-record=${ZONE.host},${ZONE.a},${ZONE.aaaa}`,
          `host-record=echo.${ZONE.host},${closed4}`, // a name the agent resolves to the echo
          `srv-host=${ZONE.srv},${ZONE.srvTarget},389,0,100`,
          `txt-record=${ZONE.host},"${txt}"`,
          `txt-record=big.${ZONE.host},${big}`,
          `pid-file=${join(s.dir, "dnsmasq.pid")}`,
          `dhcp-leasefile=${join(s.dir, "dnsmasq.leases")}`,
          "user=root",
          "group=root",
          "log-queries",
          "log-facility=-",
          "",
        ].join("\n"),
      );
      const p = inside("dnsmasq", ["--keep-in-foreground", `--conf-file=${conf}`]);
      await p.waitFor(/started, version/);
      return p;
    },
    async udpEcho() {
      const p = inside(PYTHON, ["-u", "-c", UDP_SERVER, "echo", "7", ...all]);
      await p.waitFor(/^ready$/m);
      return p;
    },
    async tripwire() {
      const p = inside(PYTHON, ["-u", "-c", UDP_SERVER, "tripwire", "9", ...all]);
      await p.waitFor(/^ready$/m);
      return {
        proc: p,
        got: () =>
          [...p.output().matchAll(/^got (\S+) \d+ ([0-9a-f]*)$/gm)].map((m) => ({
            to: m[1]!,
            data: Buffer.from(m[2]!, "hex").toString(),
          })),
      };
    },
    agent(rt, args, env = {}) {
      const [cmd, pre] = burrowCommand(rt);
      return inside(cmd, [...pre, "agent", ...args], env);
    },
    async directDigFails() {
      const r = await run("dig", [`@${closed4}`, ZONE.host, "TXT", "+tries=1", "+time=1"]);
      return r.code !== 0 && !r.stdout.includes(txt);
    },
    close: () => teardown(s.name, s.dir, s.procs, s.routes),
  };
}
