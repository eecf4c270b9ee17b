/**
 * Pieces of the UDP tests (test/udp_test.ts, udp_policy_test.ts): a UDP
 * echo target, a UDP tripwire, a SOCKS5 UDP client of our own, and a tunnel
 * whose grants and agent allow UDP.
 */
import { readdirSync } from "node:fs";
import type { Target } from "../src/messages.ts";
import type { Addr, DatagramSocket, Net } from "../src/net.ts";
import { parseUdpDatagram } from "../src/socks5_decode.ts";
import { udpDatagram } from "../src/socks5_encode.ts";
import { ALICE_TOKEN, socks, type Tunnel, tunnel, type TunnelOptions } from "./helpers.ts";

/** A UDP echo target on `host`: each datagram goes back to its sender (as `reply` makes it). */
export async function udpEcho(
  net: Net,
  host = "127.0.0.1",
  port = 0,
  reply: (data: Uint8Array) => Uint8Array = (d) => d,
): Promise<{ addr: Addr; got: () => number; close(): void }> {
  const sock = await net.bindUdp({ host, port });
  let got = 0;
  (async () => {
    for (let d = await sock.receive(); d !== null; d = await sock.receive()) {
      got++;
      await sock.send(reply(d.data), d.from).catch(() => {});
    }
  })();
  return { addr: sock.addr, got: () => got, close: () => sock.close() };
}

/** A UDP socket that must never receive a datagram: proves nothing was sent to it. */
export async function udpTripwire(
  net: Net,
  host = "127.0.0.1",
): Promise<{ addr: Addr; hits: () => number; close(): void }> {
  const sock = await net.bindUdp({ host });
  let hits = 0;
  (async () => {
    while ((await sock.receive()) !== null) hits++;
  })();
  return { addr: sock.addr, hits: () => hits, close: () => sock.close() };
}

/** Rules for a tunnel's grant and agent: TCP and UDP to loopback (v4, v6, localhost). */
export const UDP_RULES = [
  "127.0.0.1:*",
  "localhost:*",
  "127.0.0.1:*/udp",
  "[::1]:*/udp",
  "localhost:*/udp",
];

/** A tunnel whose alice may send UDP (`grant`) and whose agent allows it (`allow`). */
export function udpTunnel(
  grant: string[] = UDP_RULES,
  allow: string[] = UDP_RULES,
  opts: TunnelOptions = {},
): Promise<Tunnel> {
  return tunnel({
    ...opts,
    allow,
    config: {
      grants: [{ client: "alice", agent: "office", targets: grant }],
      ...opts.config,
    },
  });
}

/** A UDP ASSOCIATE of our own SOCKS5 client, and a UDP socket to use it from. */
export interface Association {
  /** The relay socket's address from the reply. */
  relay: Addr;
  sock: DatagramSocket;
  /** Send `data` to `target` through the relay. */
  send(target: Target, data: Uint8Array, frag?: number): Promise<void>;
  /** The next datagram from the relay, parsed (rejects after `ms`). */
  receive(ms?: number): Promise<{ from: Target; data: Uint8Array }>;
  /** Close the TCP connection (the association ends) and the socket. */
  close(): void;
}

/** UDP ASSOCIATE as alice through `t`'s SOCKS5 port, from a UDP socket on `host`. */
export async function associate(
  t: Pick<Tunnel, "net" | "socks">,
  host = "127.0.0.1",
  requested: Target = { type: "ipv4", host: "0.0.0.0", port: 0 },
): Promise<Association> {
  const r = await socks(t.net, t.socks, "alice", ALICE_TOKEN, requested, 3);
  if (r.reply !== 0 || !r.bound) {
    r.conn.close();
    throw new Error(`UDP ASSOCIATE got reply ${r.reply}`);
  }
  const relay = { host: r.bound.host, port: r.bound.port };
  const sock = await t.net.bindUdp({ host });
  return {
    relay,
    sock,
    send(target, data, frag = 0) {
      const d = udpDatagram(target, data);
      d[2] = frag;
      return sock.send(d, relay);
    },
    async receive(ms = 5000) {
      const p = parseUdpDatagram(await receiveWithin(sock, ms));
      return { from: p.target, data: p.data.slice() };
    },
    close() {
      r.conn.close();
      sock.close();
    },
  };
}

/** The next datagram's data on `sock`; rejects after `ms` or when the socket closes. */
export async function receiveWithin(sock: DatagramSocket, ms = 5000): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no datagram within ${ms} ms`)), ms);
  });
  try {
    const d = await Promise.race([sock.receive(), late]);
    if (d === null) throw new Error("socket closed");
    return d.data;
  } finally {
    clearTimeout(timer);
  }
}

/** Open file descriptors of this process (Linux), or -1 where /proc is missing. */
export function openFds(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return -1;
  }
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);
