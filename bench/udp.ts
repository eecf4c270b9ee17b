/**
 * UDP through burrow (issue 28; `npm run bench -- --udp-only`): DNS queries
 * per second and their p50/p99 against a real DNS server (dnsmasq, a zone
 * of its own on 127.0.0.1), asked directly, through `burrow client --dns`
 * and through the server's SOCKS5 UDP ASSOCIATE; and UDP echo throughput
 * through SOCKS5 UDP. Every system on every runtime, a fresh start each
 * (server, agent, client as CLI processes, plain TCP between them).
 *
 * The load: `concurrency` workers, each with one query (or datagram) in
 * flight: send, wait for the answer (1 s at most: then counted lost), send
 * the next, for `seconds`. Latency per answered query.
 *
 * @module
 */
import crypto from "node:crypto";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { freePort, type Proc, sleep, start, stop, tail } from "./proc.ts";
import { runtimeCmd, RUNTIMES } from "./systems.ts";

export interface UdpPlan {
  seconds: number;
  /** Queries (datagrams) in flight at once. */
  concurrency: number;
  /** Echo datagram size, bytes. */
  echoSize: number;
}

export const UDP_DEFAULTS: UdpPlan = { seconds: 5, concurrency: 16, echoSize: 1200 };

export interface UdpRow {
  id: string;
  /** Answers per second; loss: sent and never answered within 1 s. */
  qps: number;
  p50: number;
  p99: number;
  lost: number;
  /** Echo: payload MiB/s one way, for the echo rows. */
  mibs?: number;
  error?: string;
}

/** One request/answer exchange over `sock` to `to`: `wrap` frames out, `unwrap` in (null: not ours). */
interface Path {
  sock: dgram.Socket;
  to: { host: string; port: number };
  wrap(payload: Uint8Array): Uint8Array;
  unwrap(datagram: Uint8Array): Uint8Array | null;
}

/** A DNS query for `bench.corp` A with `id`. */
function dnsQuery(id: number): Uint8Array {
  const name = [5, ...Buffer.from("bench"), 4, ...Buffer.from("corp"), 0];
  return new Uint8Array([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...name, 0, 1, 0, 1]);
}

/** Run the load over `p`: each payload starts with a u16 key the answer carries back. */
async function load(
  p: Path,
  plan: UdpPlan,
  payload: (key: number) => Uint8Array,
): Promise<Omit<UdpRow, "id">> {
  const waiting = new Map<number, (b: Uint8Array | null) => void>();
  p.sock.on("message", (m) => {
    const b = p.unwrap(new Uint8Array(m));
    if (!b || b.length < 2) return;
    waiting.get((b[0]! << 8) | b[1]!)?.(b);
  });
  const lat: number[] = [];
  let lost = 0, bytes = 0, next = 0;
  const end = Date.now() + plan.seconds * 1000;
  const worker = async () => {
    while (Date.now() < end) {
      const key = next = (next + 1) & 0xffff;
      const t0 = performance.now();
      const got = await new Promise<Uint8Array | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 1000);
        waiting.set(key, (b) => (clearTimeout(timer), resolve(b)));
        p.sock.send(p.wrap(payload(key)), p.to.port, p.to.host);
      });
      waiting.delete(key);
      if (!got) lost++;
      else (lat.push(performance.now() - t0), (bytes += got.length));
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  lat.sort((a, b) => a - b);
  const q = (f: number) => lat[Math.min(lat.length - 1, Math.floor(f * lat.length))] ?? NaN;
  return {
    qps: lat.length / plan.seconds,
    p50: q(0.5),
    p99: q(0.99),
    lost,
    mibs: bytes / plan.seconds / 2 ** 20,
  };
}

async function udpSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  return s;
}

const plainPath = (sock: dgram.Socket, port: number): Path => ({
  sock,
  to: { host: "127.0.0.1", port },
  wrap: (b) => b,
  unwrap: (b) => b,
});

/** A SOCKS5 UDP ASSOCIATE on `socksPort` (user/password); the TCP connection and the relay. */
async function associate(socksPort: number, user: string, pass: string, target: number) {
  const tcp = net.connect(socksPort, "127.0.0.1");
  const chunks: Buffer[] = [];
  const need = async (n: number) => {
    for (let i = 0; i < 500 && Buffer.concat(chunks).length < n; i++) await sleep(10);
    const all = Buffer.concat(chunks);
    if (all.length < n) throw new Error("SOCKS5 UDP ASSOCIATE: no answer");
    chunks.length = 0;
    if (all.length > n) chunks.push(all.subarray(n));
    return all.subarray(0, n);
  };
  tcp.on("data", (d) => chunks.push(d));
  await new Promise<void>((r, j) => (tcp.once("connect", r), tcp.once("error", j)));
  tcp.write(Buffer.from([5, 1, 2]));
  await need(2);
  tcp.write(Buffer.from([1, user.length, ...Buffer.from(user), pass.length, ...Buffer.from(pass)]));
  if ((await need(2))[1] !== 0) throw new Error("SOCKS5: login refused");
  tcp.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  const reply = await need(10);
  if (reply[1] !== 0) throw new Error(`SOCKS5 UDP ASSOCIATE: reply ${reply[1]}`);
  const relay = { host: [...reply.subarray(4, 8)].join("."), port: reply.readUInt16BE(8) };
  const head = Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, target >> 8, target & 0xff]);
  return {
    tcp,
    relay,
    wrap: (b: Uint8Array) => Buffer.concat([head, b]),
    unwrap: (b: Uint8Array) => (b[3] === 1 ? b.subarray(10) : null),
  };
}

/** dnsmasq on 127.0.0.1:`port` answering bench.corp; and a UDP echo (node) on `echoPort`. */
function closedSide(dir: string, port: number, echoPort: number): Proc[] {
  const conf = path.join(dir, "dnsmasq.conf");
  fs.writeFileSync(
    conf,
    [
      "no-resolv",
      "no-hosts",
      "bind-interfaces",
      "listen-address=127.0.0.1",
      `port=${port}`,
      "local=/corp/",
      "host-record=bench.corp,10.1.2.3",
      `pid-file=${path.join(dir, "dnsmasq.pid")}`,
      "user=root",
      "group=root",
      "log-facility=-",
      "",
    ].join("\n"),
  );
  const echo = `const s=require("dgram").createSocket("udp4");` +
    `s.on("message",(m,r)=>s.send(m,r.port,r.address));s.bind(${echoPort},"127.0.0.1")`;
  return [
    start("dnsmasq", "dnsmasq", ["--keep-in-foreground", `--conf-file=${conf}`], {
      logFile: path.join(dir, "dnsmasq.log"),
    }),
    start("udp echo", process.execPath, ["-e", echo], { logFile: path.join(dir, "echo.log") }),
  ];
}

/** Server, agent and client (`--dns`) of runtime `rt`; resolves once the client's DNS listens. */
async function startBurrow(rt: string, root: string, dir: string, ports: Record<string, number>) {
  const token = () => crypto.randomBytes(18).toString("base64url");
  const [clientToken, agentToken] = [token(), token()];
  const { agents, socks, clients, dns, dnsmasq } = ports as Record<string, number>;
  const config = {
    listen: {
      agents: `127.0.0.1:${agents}`,
      socks: `127.0.0.1:${socks}`,
      clients: `127.0.0.1:${clients}`,
      http: "",
    },
    tls: "off",
    state_dir: path.join(dir, "state"),
    udp: { listen: "127.0.0.1" },
    agents: [{ name: "bench", token: agentToken }],
    clients: [{ name: "bench", token: clientToken }],
    grants: [{ client: "bench", agent: "bench", targets: ["127.0.0.1:*/udp"] }],
  };
  fs.writeFileSync(path.join(dir, "server.yaml"), JSON.stringify(config) + "\n");
  const [cmd, pre] = runtimeCmd(root, rt as "node");
  const log = (n: string) => ({ logFile: path.join(dir, `${n}.log`), cwd: root });
  const env = (t: string) => ({ ...process.env, BURROW_TOKEN: t });
  const procs = [
    start(`burrow server (${rt})`, cmd, [
      ...pre,
      "server",
      "-c",
      path.join(dir, "server.yaml"),
      "--no-watch",
    ], log("server")),
  ];
  await sleep(300);
  procs.push(start(`burrow agent (${rt})`, cmd, [
    ...pre,
    "agent",
    "--server",
    `127.0.0.1:${agents}`,
    "--plain",
    "--name",
    "bench",
    "--allow",
    "127.0.0.1:*/udp",
  ], { ...log("agent"), env: env(agentToken) }));
  procs.push(start(`burrow client (${rt})`, cmd, [
    ...pre,
    "client",
    "--server",
    `127.0.0.1:${clients}`,
    "--plain",
    "--name",
    "bench",
    "--agent",
    "bench",
    "--listen",
    "off",
    "--dns",
    `127.0.0.1:${dns}`,
    "--dns-server",
    `127.0.0.1:${dnsmasq}`,
  ], { ...log("client"), env: env(clientToken) }));
  for (let i = 0; i < 600; i++) {
    const text = fs.existsSync(path.join(dir, "client.log"))
      ? fs.readFileSync(path.join(dir, "client.log"), "utf8")
      : "";
    if (
      text.includes("dns listening") &&
      fs.readFileSync(path.join(dir, "server.log"), "utf8").includes("agent announced")
    ) {
      return { procs, clientToken };
    }
    if (procs.some((p) => p.exitCode !== null)) break;
    await sleep(50);
  }
  for (const p of procs) await stop(p);
  throw new Error(
    `burrow ${rt} did not start:\n${tail(path.join(dir, "client.log"))}\n${
      tail(path.join(dir, "server.log"))
    }`,
  );
}

/** Every row: direct, then per runtime `--dns`, SOCKS5 UDP DNS, SOCKS5 UDP echo. */
export async function runUdp(
  plan: UdpPlan,
  root: string,
  base: string,
  say: (line: string) => void,
): Promise<UdpRow[]> {
  const [dnsmasqPort, echoPort] = [await freePort(), await freePort()];
  const side = closedSide(base, dnsmasqPort, echoPort);
  const rows: UdpRow[] = [];
  const dnsPayload = (k: number) => dnsQuery(k);
  const echoPayload = (k: number) => {
    const b = new Uint8Array(plan.echoSize);
    b[0] = k >> 8;
    b[1] = k & 0xff;
    return b;
  };
  try {
    await sleep(500);
    const s = await udpSocket();
    rows.push({ id: "direct dns", ...(await load(plainPath(s, dnsmasqPort), plan, dnsPayload)) });
    rows.push({ id: "direct echo", ...(await load(plainPath(s, echoPort), plan, echoPayload)) });
    s.close();
    for (const rt of RUNTIMES) {
      const dir = fs.mkdtempSync(path.join(base, `udp-${rt}-`));
      const ports = { agents: 0, socks: 0, clients: 0, dns: 0 };
      for (const k of Object.keys(ports)) ports[k as keyof typeof ports] = await freePort();
      say(`udp: burrow ${rt}`);
      try {
        const b = await startBurrow(rt, root, dir, { ...ports, dnsmasq: dnsmasqPort });
        try {
          await measure(rt, plan, ports, b.clientToken, { dnsmasqPort, echoPort }, rows, {
            dnsPayload,
            echoPayload,
          });
        } finally {
          for (const p of b.procs.reverse()) await stop(p);
        }
      } catch (e) {
        rows.push({ id: `burrow-${rt}`, qps: NaN, p50: NaN, p99: NaN, lost: 0, error: String(e) });
      }
    }
  } finally {
    for (const p of side) await stop(p);
  }
  return rows;
}

async function measure(
  rt: string,
  plan: UdpPlan,
  ports: { socks: number; dns: number },
  token: string,
  at: { dnsmasqPort: number; echoPort: number },
  rows: UdpRow[],
  payloads: { dnsPayload: (k: number) => Uint8Array; echoPayload: (k: number) => Uint8Array },
): Promise<void> {
  const s = await udpSocket();
  rows.push({
    id: `burrow-${rt} --dns`,
    ...(await load(plainPath(s, ports.dns), plan, payloads.dnsPayload)),
  });
  s.close();
  for (
    const [what, port, payload] of [
      ["dns", at.dnsmasqPort, payloads.dnsPayload],
      ["echo", at.echoPort, payloads.echoPayload],
    ] as const
  ) {
    const a = await associate(ports.socks, "bench", token, port);
    const sock = await udpSocket();
    try {
      const p: Path = { sock, to: a.relay, wrap: a.wrap, unwrap: a.unwrap };
      rows.push({ id: `burrow-${rt} socks5 ${what}`, ...(await load(p, plan, payload)) });
    } finally {
      sock.close();
      a.tcp.destroy();
    }
  }
}

/** The markdown table of a run. */
export function renderUdp(plan: UdpPlan, rows: UdpRow[], meta: { date: string; commit: string }) {
  const f = (n: number | undefined, d = 1) =>
    n === undefined || Number.isNaN(n) ? "–" : n.toFixed(d);
  return [
    `### UDP and DNS (${
      meta.date.slice(0, 16)
    }, ${meta.commit}; ${plan.seconds} s per row, ${plan.concurrency} in flight, echo ${plan.echoSize} B)`,
    "",
    "| path | answers/s | p50 ms | p99 ms | lost | echo MiB/s |",
    "|---|---:|---:|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${r.id} | ${f(r.qps, 0)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${r.lost} | ${
        r.id.endsWith("echo") ? f(r.mibs) : ""
      } |${r.error ? ` ${r.error.split("\n")[0]}` : ""}`
    ),
    "",
  ].join("\n");
}
