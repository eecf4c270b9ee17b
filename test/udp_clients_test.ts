/**
 * UDP and DNS through the tunnel with real clients (issue 28): `drill`
 * through `socksify` (dante-client) and PySocks UDP
 * sockets to the server's SOCKS5 port; the npm `socks` package's UDP ASSOCIATE and PySocks to the
 * client proxy; `dig` (UDP and TCP) against `burrow client --dns`; a
 * dnsmasq on the client's side forwarding `corp.` to it (split DNS); and
 * the policy, with a UDP tripwire that must see nothing it was not granted.
 *
 * The closed side is a network namespace (test/netns.ts): dnsmasq with a
 * zone only it knows, a UDP echo, the tripwire, and the agent itself (this
 * runtime's `burrow agent`) live inside it; the root namespace, where the
 * server, the client proxy and every client run, has no route to them (the
 * first test proves it), so every answer came through burrow.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SocksClient } from "socks";
import { type ClosedSide, closedSide, PYTHON, run, type Tripwire, ZONE } from "./netns.ts";
import {
  AGENT_TOKEN,
  ALICE_TOKEN,
  burrow,
  freePorts,
  type Proc,
  runtime,
  spawnProc,
  type Tunnel,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

let side: ClosedSide;
let t: Tunnel;
let trip: Tripwire;
let client: Proc;
/** The client proxy's SOCKS5 port and its --dns port. */
let proxyPort = 0;
let dnsPort = 0;

before(async () => {
  side = await closedSide();
  await side.dnsmasq();
  await side.udpEcho();
  trip = await side.tripwire();
  t = await tunnel({
    startAgent: false,
    config: {
      listen: {
        agents: `${side.root4}:0`,
        socks: "127.0.0.1:0",
        clients: "127.0.0.1:0",
        http: "",
      },
      udp: { listen: "127.0.0.1" },
      grants: [{
        client: "alice",
        agent: "office",
        targets: [
          `${side.closed4}:53/udp`,
          `${side.closed4}:7/udp`,
          `${side.closed4}:9/udp`,
          `[${side.closed6}]:7/udp`,
          `echo.${ZONE.host}:7/udp`,
          `${side.third4}:9/udp`, // granted, but not in the agent's --allow
        ],
      }],
    },
  });
  // The agent inside the namespace: it allows other4:9 (which the grant does not).
  side.agent(rt, [
    "--server",
    `${side.root4}:${t.server.addrs.agents!.port}`,
    "--name",
    "office",
    "--plain",
    "--log-level",
    "debug",
    ...["--allow", `${side.closed4}:*/udp`, "--allow", `[${side.closed6}]:*/udp`],
    ...["--allow", `${side.other4}:9/udp`, "--allow", `*.${ZONE.host}:7/udp`],
  ], { BURROW_TOKEN: AGENT_TOKEN });
  const announced = () => t.server.agents.group("office").some((s) => s.announced);
  assert.ok(await until(announced, 30_000), "the agent in the namespace announced");
  [proxyPort, dnsPort] = await freePorts(t.net, 2) as [number, number];
  client = burrow(rt, [
    "client",
    ...["--server", `127.0.0.1:${t.server.addrs.clients!.port}`, "--plain"],
    ...["--name", "alice", "--agent", "office", "--log-level", "debug"],
    ...["--listen", `127.0.0.1:${proxyPort}`, "--dns", `127.0.0.1:${dnsPort}`],
  ], { BURROW_TOKEN: ALICE_TOKEN });
  await client.waitFor(/dns listening/);
});

after(async () => {
  await client?.stop();
  await t?.close();
  await side?.close();
});

test("the closed side is out of reach without burrow (no test below passes by a bypass)", async () => {
  assert.equal(await side.directDigFails(), true);
});

/** socksify's config: everything through the server's SOCKS5 port, user/password. */
function socksConf(): Record<string, string> {
  const conf = join(side.dir, "socks.conf");
  writeFileSync(
    conf,
    [
      "route {",
      `  from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = ${t.socks.port}`,
      "  proxyprotocol: socks_v5",
      "  command: connect udpassociate",
      "  method: username", // dante 1.4.2 (Debian 12): `method`, not `socksmethod`, in a route
      "}",
      "",
    ].join("\n"),
  );
  return { SOCKS_CONF: conf, SOCKS_USERNAME: "alice", SOCKS_PASSWORD: ALICE_TOKEN };
}

const digArgs = ["+short", "+tries=1", "+time=10"];

test("drill through socksify resolves the closed zone over the server's SOCKS5 UDP", async () => {
  // dig 9.18 sends its UDP queries with sendmmsg(2) (libuv), which socksify (dante 1.4.2) does
  // not wrap: they would reach the relay without a SOCKS5 header. drill sends with sendto(2).
  const env = socksConf();
  const at = `@${side.closed4}`;
  const txt = await run("socksify", ["drill", at, ZONE.host, "TXT"], env);
  assert.match(txt.stdout, new RegExp(`\\bTXT\\s+"${side.txt}"`), txt.stdout + txt.stderr);
  const srv = await run("socksify", ["drill", at, ZONE.srv, "SRV"], env);
  assert.match(srv.stdout, new RegExp(`SRV\\s+0 100 389 ${ZONE.srvTarget}\\.`), srv.stderr);
});

/** PySocks: a UDP socket through `port`, to each target; prints what comes back. */
const PYSOCKS = `
import socket, sys, socks
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", port, username=user, password=password)
s.settimeout(15)
for target in sys.argv[4:]:
    host, _, p = target.rpartition(":")
    s.sendto(("hello " + target).encode(), (host.strip("[]"), int(p)))
    data, src = s.recvfrom(65535)
    print(data.decode(), "from", src[0], src[1], flush=True)
`;

function pysocks(port: number, user: string, pass: string, targets: string[]) {
  return run(PYTHON, ["-c", PYSOCKS, String(port), user, pass, ...targets]);
}

test("PySocks UDP to the closed echo over the server: IPv4, IPv6 and a name the agent resolves", async () => {
  const v4 = `${side.closed4}:7`, v6 = `[${side.closed6}]:7`, name = `echo.${ZONE.host}:7`;
  const r = await pysocks(t.socks.port, "alice", ALICE_TOKEN, [v4, v6, name]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), [
    `hello ${v4} from ${side.closed4} 7`,
    `hello ${v6} from ${side.closed6} 7`,
    `hello ${name} from ${side.closed4} 7`,
  ]);
});

test("PySocks UDP through the client proxy's UDP ASSOCIATE (the user name names the agent)", async () => {
  const v4 = `${side.closed4}:7`;
  const r = await pysocks(proxyPort, "office", "ignored", [v4]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `hello ${v4} from ${side.closed4} 7`);
});

test("the npm socks package's UDP ASSOCIATE through the client proxy", async () => {
  // createConnection takes CONNECT only; an association is a SocksClient of its own.
  const client = new SocksClient({
    proxy: { host: "127.0.0.1", port: proxyPort, type: 5 },
    command: "associate",
    destination: { host: "0.0.0.0", port: 0 },
    timeout: 10000,
  });
  type Established = { socket: Socket; remoteHost?: { host: string; port: number } };
  const { socket, remoteHost } = await new Promise<Established>((ok, fail) => {
    client.once("established", ok);
    client.once("error", fail);
    client.connect();
  });
  const udp = await t.net.bindUdp({ host: "127.0.0.1" });
  try {
    assert.equal(remoteHost!.host, "127.0.0.1");
    const frame = SocksClient.createUDPFrame({
      remoteHost: { host: side.closed4, port: 7 },
      data: Buffer.from("through the client proxy"),
    });
    await udp.send(frame, { host: remoteHost!.host, port: remoteHost!.port });
    const d = await udp.receive();
    const back = SocksClient.parseUDPFrame(Buffer.from(d!.data));
    assert.equal(back.data.toString(), "through the client proxy");
    assert.deepEqual(back.remoteHost, { host: side.closed4, port: 7 });
  } finally {
    udp.close();
    socket.destroy();
  }
});

test("dig against --dns: TXT, A, AAAA and SRV over UDP, and over TCP", async () => {
  const at = ["@127.0.0.1", "-p", String(dnsPort)];
  const dig = (...args: string[]) => run("dig", [...at, ...args, ...digArgs]);
  assert.equal((await dig(ZONE.host, "TXT")).stdout.trim(), `"${side.txt}"`);
  assert.equal((await dig(ZONE.host, "A")).stdout.trim(), ZONE.a);
  assert.equal((await dig(ZONE.host, "AAAA")).stdout.trim(), ZONE.aaaa);
  assert.equal((await dig(ZONE.srv, "SRV")).stdout.trim(), `0 100 389 ${ZONE.srvTarget}.`);
  assert.equal((await dig("+tcp", ZONE.host, "TXT")).stdout.trim(), `"${side.txt}"`);
  // Several queries on one TCP connection (RFC 7766), answered in turn.
  const two = await dig("+tcp", "+keepopen", ZONE.host, "A", ZONE.host, "TXT");
  assert.deepEqual(two.stdout.trim().split("\n"), [ZONE.a, `"${side.txt}"`]);
});

test("an answer too big for a datagram comes with TC as it is; the name outside the zone is NXDOMAIN", async () => {
  const at = ["@127.0.0.1", "-p", String(dnsPort), "+tries=1", "+time=10"];
  const big = await run("dig", [...at, "+noedns", "+ignore", `big.${ZONE.host}`, "TXT"]);
  assert.match(big.stdout, /flags: qr aa tc rd|flags: qr tc|;; flags:[^;]*\btc\b/);
  const none = await run("dig", [...at, `nothing.${ZONE.host}`, "A"]);
  assert.match(none.stdout, /status: NXDOMAIN/);
});

test("split DNS: a dnsmasq on the client's side forwards corp. to --dns", async () => {
  const [port] = await freePorts(t.net, 1) as [number];
  const conf = join(side.dir, "split.conf");
  writeFileSync(
    conf,
    [
      "no-resolv",
      "no-hosts",
      "bind-interfaces",
      "listen-address=127.0.0.1",
      `port=${port}`,
      `server=/corp/127.0.0.1#${dnsPort}`,
      `pid-file=${join(side.dir, "split.pid")}`,
      "user=root",
      "group=root",
      "log-facility=-",
      "",
    ].join("\n"),
  );
  const split = spawnProc("dnsmasq", ["--keep-in-foreground", `--conf-file=${conf}`], {
    cwd: side.dir,
    env: process.env,
  });
  try {
    await split.waitFor(/started, version/);
    const r = await run("dig", ["@127.0.0.1", "-p", String(port), ZONE.host, "TXT", ...digArgs]);
    assert.equal(r.stdout.trim(), `"${side.txt}"`);
  } finally {
    await split.stop();
  }
});

/**
 * Send `forbidden` then a marker to the tripwire's granted address through
 * the server's SOCKS5 UDP (PySocks, in one association: in order), wait for
 * the marker, and return what the tripwire got.
 */
async function tripped(forbidden: string, marker: string) {
  const script = `
import socket, sys, time, socks
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", int(sys.argv[1]), username="alice", password=sys.argv[2])
s.sendto(b"forbidden", (sys.argv[3], 9))
s.sendto(sys.argv[4].encode(), (sys.argv[5], 9))
time.sleep(60)  # the association lives until the test stops it
`;
  const py = spawnProc(
    PYTHON,
    ["-c", script, String(t.socks.port), ALICE_TOKEN, forbidden, marker, side.closed4],
    { cwd: side.dir, env: process.env },
  );
  try {
    const arrived = () => trip.got().some((g) => g.data === marker);
    assert.ok(await until(arrived, 15_000), `the marker ${marker} arrived`);
    return trip.got();
  } finally {
    await py.stop();
  }
}

test("policy: a datagram outside the grant never reaches the closed side", async () => {
  const got = await tripped(side.other4, "marker-grant");
  assert.deepEqual(got.filter((g) => g.to !== side.closed4), []);
  assert.equal(got.filter((g) => g.data === "forbidden").length, 0);
});

test("policy: a datagram the grant allows but the agent's --allow does not never leaves the agent", async () => {
  const got = await tripped(side.third4, "marker-agent");
  assert.deepEqual(got.filter((g) => g.to !== side.closed4), []);
  assert.equal(got.filter((g) => g.data === "forbidden").length, 0);
});
