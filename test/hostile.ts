/**
 * Hostile peers for test/hostile_test.ts: an agent that logs in by hand and
 * then sends what it likes, and floods of valid frames written without ever
 * reading what the other side answers.
 *
 * @module
 */
import { poolTranscript, tokenCredential, transcript } from "../src/auth.ts";
import { encode } from "../src/encode.ts";
import { NetError } from "../src/errors.ts";
import { LINK_HEADER_SIZE } from "../src/link_frame.ts";
import type { Message } from "../src/messages.ts";
import type { Addr, Conn, Net } from "../src/net.ts";
import { Wire } from "../src/wire.ts";
import { NO_ADDR } from "../src/writer.ts";
import { AGENT_TOKEN } from "./helpers.ts";

/** A logged-in agent session, spoken by hand. */
export interface HostileAgent {
  control: Wire;
  version: number;
  /**
   * PONGs received on the control connection so far: it is read, its PINGs
   * are answered, and it sends a PING every 200 ms, so the session stays up
   * whatever the links do.
   */
  pongs(): number;
  /** A new link connection with its LINK_HELLO (and `after`, in the same write) sent. */
  link(after?: Uint8Array): Promise<Conn>;
  /** A new pool connection with its POOL_HELLO (and `after`) sent. */
  pool(after?: Uint8Array): Promise<Conn>;
  close(): void;
}

/** Log in as agent `name` at `version` exactly and announce `*:*`-free rules (none). */
export async function hostileAgent(
  net: Net,
  addr: Addr,
  version: number,
  name = "office",
): Promise<HostileAgent> {
  const cred = tokenCredential(AGENT_TOKEN);
  const control = new Wire(await net.dial(addr));
  await control.send({
    type: "AGENT_HELLO",
    minVersion: version,
    maxVersion: version,
    authMethod: cred.method,
    name,
    software: "hostile",
  });
  const ch = await control.expect("CHALLENGE");
  await control.send({
    type: "AUTH",
    proof: await cred.prove(transcript("agent", ch.version, ch.nonce, name)),
  });
  const welcome = await control.expect("WELCOME");
  await control.send({ type: "INSTANCE", instance: new Uint8Array(16), nameserver: NO_ADDR });
  await control.send({ type: "ANNOUNCE", rules: [] });
  let seq = 0;
  const conns: Conn[] = [control.conn];
  let pongs = 0;
  const ping = setInterval(() => {
    control.send({ type: "PING", data: new Uint8Array(8) }).catch(() => {});
  }, 200);
  (async () => {
    for (let msg; (msg = await control.recv()) !== null;) {
      if (msg.type === "PONG") pongs++;
      if (msg.type === "PING") await control.send({ type: "PONG", data: msg.data });
    }
  })().catch(() => {}).finally(() => clearInterval(ping));
  return {
    control,
    version: ch.version,
    pongs: () => pongs,
    link: (after?: Uint8Array) => hello("LINK_HELLO", after),
    pool: (after?: Uint8Array) => hello("POOL_HELLO", after),
    close() {
      clearInterval(ping);
      for (const c of conns) c.close();
    },
  };

  async function hello(type: "LINK_HELLO" | "POOL_HELLO", after?: Uint8Array): Promise<Conn> {
    const s = ++seq;
    const proof = await cred.prove(
      poolTranscript(welcome.agentId, welcome.sessionId, s, ch.nonce),
    );
    const hello = encode({
      type,
      version: ch.version,
      agentId: welcome.agentId,
      sessionId: welcome.sessionId,
      seq: s,
      proof,
    });
    const conn = await net.dial(addr);
    conns.push(conn);
    await conn.write(after ? concat(hello, after) : hello);
    return conn;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** `count` link OPEN frames for stream ids `first`, `first + 1`, … in one buffer. */
export function linkOpens(first: number, count: number): Uint8Array {
  return linkHeaders(1, first, count);
}

/** `count` link GRANT frames for stream ids `first`, `first + 1`, … in one buffer. */
export function linkGrants(first: number, count: number): Uint8Array {
  return linkHeaders(5, first, count);
}

/** `count` bodiless link frames of `type` for stream ids `first`, `first + 1`, … */
function linkHeaders(type: number, first: number, count: number): Uint8Array {
  const buf = new Uint8Array(count * LINK_HEADER_SIZE);
  const view = new DataView(buf.buffer);
  for (let i = 0; i < count; i++) {
    const at = i * LINK_HEADER_SIZE;
    buf[at] = type;
    view.setUint32(at + 1, first + i);
  }
  return buf;
}

/** `count` copies of `msg`'s frame in one buffer. */
export function repeated(msg: Message, count: number): Uint8Array {
  const one = encode(msg);
  const buf = new Uint8Array(one.length * count);
  for (let i = 0; i < count; i++) buf.set(one, i * one.length);
  return buf;
}

/**
 * Write what `next` makes, never reading, until the peer fails the
 * connection, `stop()` returns true or `maxBytes` went out. Each write is
 * bounded by `ms` (a peer that stops reading blocks the writer: that ends
 * the flood too). Returns the bytes written and whether the peer closed.
 */
export async function flood(
  conn: Conn,
  next: (i: number) => Uint8Array,
  opts: { maxBytes: number; stop?: () => boolean; ms?: number },
): Promise<{ bytes: number; closed: boolean; blocked: boolean }> {
  let bytes = 0;
  for (let i = 0; bytes < opts.maxBytes && !opts.stop?.(); i++) {
    const chunk = next(i);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const blocked = new Promise<"blocked">((r) =>
      timer = setTimeout(() => r("blocked"), opts.ms ?? 20_000)
    );
    const written = conn.write(chunk).then(() => "ok" as const);
    written.catch(() => {}); // seen by the race, or late after a block
    try {
      const r = await Promise.race([written, blocked]);
      if (r === "blocked") return { bytes, closed: false, blocked: true };
    } catch (e) {
      if (e instanceof NetError) return { bytes, closed: true, blocked: false };
      throw e;
    } finally {
      clearTimeout(timer);
    }
    bytes += chunk.length;
  }
  return { bytes, closed: false, blocked: false };
}
