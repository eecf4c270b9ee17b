/**
 * `npm run bench:timing` — does a failed login take the same time whether
 * the name exists? (SPEC.md §11.2; issue "Hardening", item 5.) An in-process
 * server on 127.0.0.1 (Node adapter); interleaved rounds of SOCKS5 logins
 * with a wrong password for a known and for an unknown client, and client-
 * port logins (CHALLENGE/AUTH) with a wrong token for a known and an unknown
 * name. Prints the median and the difference of medians per pair. Bounded:
 * `--rounds N` (default 2000 per kind).
 */
import { parseArgs } from "node:util";
import { tokenCredential } from "../src/auth.ts";
import { parseServerConfig } from "../src/config/mod.ts";
import { silent } from "../src/log.ts";
import type { Net } from "../src/net.ts";
import { Server } from "../src/server/mod.ts";
import { Reader } from "../src/reader.ts";
import { parseMethodSelection, parseUserpassReply } from "../src/socks5_decode.ts";
import { greeting, userpassRequest } from "../src/socks5_encode.ts";
import { login, Wire } from "../src/wire.ts";
import { net } from "../runtimes/node/mod.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "2000" } } });
const rounds = Math.max(10, Math.min(100_000, Number(values.rounds)));

const config = parseServerConfig(
  JSON.stringify({
    listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "127.0.0.1:0", http: "" },
    limits: { auth_failures_per_minute: 1_000_000, pending_handshakes_per_source: 4096 },
    agents: [{ name: "office", token: "agent-token-0123456789" }],
    clients: [{ name: "alice", token: "alice-token-0123456789" }],
  }),
  "(bench)",
);

async function socksLogin(n: Net, port: number, user: string): Promise<number> {
  const c = await n.dial({ host: "127.0.0.1", port });
  const rd = new Reader(c);
  await c.write(greeting([2]));
  await rd.parse(parseMethodSelection, "method");
  const t1 = performance.now();
  await c.write(userpassRequest(user, "wrong-password-0123"));
  await rd.parse(parseUserpassReply, "auth");
  const t = performance.now() - t1;
  c.close();
  return t;
}

async function clientLogin(n: Net, port: number, name: string): Promise<number> {
  const c = await n.dial({ host: "127.0.0.1", port });
  const wire = new Wire(c);
  const t1 = performance.now();
  try {
    await login(wire, "client", name, tokenCredential("wrong-token-0123456789"), "bench");
    await wire.expect("CLIENT_READY");
  } catch {
    // auth_failed: what we measure
  }
  const t = performance.now() - t1;
  c.close();
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

const server = new Server(net, config, silent);
await server.start();
try {
  const socks = server.addrs.socks!.port;
  const clients = server.addrs.clients!.port;
  const r: Record<string, number[]> = {
    socksKnown: [],
    socksUnknown: [],
    clientKnown: [],
    clientUnknown: [],
  };
  for (let i = 0; i < rounds; i++) {
    r.socksKnown!.push(await socksLogin(net, socks, "alice"));
    r.socksUnknown!.push(await socksLogin(net, socks, "mallory"));
    r.clientKnown!.push(await clientLogin(net, clients, "alice"));
    r.clientUnknown!.push(await clientLogin(net, clients, "mallory"));
  }
  const line = (what: string, a: number[], b: number[]) =>
    console.log(
      `${what}: known ${us(median(a))}, unknown ${us(median(b))}, difference ${
        us(median(a) - median(b))
      }`,
    );
  console.log(`${rounds} rounds, Node ${process.versions.node}, median time of a failed login:`);
  line("SOCKS5 port (user/password → status)", r.socksKnown!, r.socksUnknown!);
  line("client port (AUTH → ERROR)", r.clientKnown!, r.clientUnknown!);
} finally {
  await server.stop();
}
