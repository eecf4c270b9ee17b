/**
 * The data path: copy bytes both ways between two connections, with
 * backpressure (each write is awaited before the next read) and half-close
 * (EOF on one side becomes `end()` on the other; the reverse direction keeps
 * flowing). Both connections are closed when both directions are done or
 * either fails.
 *
 * @module
 */
import type { Conn } from "./net.ts";

export interface RelayResult {
  /** Bytes copied from `a` to `b`, and from `b` to `a`. */
  aToB: number;
  bToA: number;
}

/**
 * Bytes copied so far, readable while the relay runs (the admin API reads
 * live streams' bytes from it): `up` is `a` to `b`, `down` is `b` to `a`.
 * Each chunk costs one number add.
 */
export interface RelayCounter {
  up: number;
  down: number;
}

async function pump(
  src: Conn,
  dst: Conn,
  prefix: Uint8Array | undefined,
  counter: RelayCounter,
  dir: keyof RelayCounter,
) {
  if (prefix && prefix.length > 0) {
    counter[dir] += prefix.length;
    await dst.write(prefix);
  }
  for (;;) {
    const chunk = await src.read();
    if (chunk === null) break;
    counter[dir] += chunk.length;
    await dst.write(chunk);
  }
  await dst.end();
}

/**
 * Relay until both directions have ended. `aPrefix` is written to `b` first
 * (bytes of `a` already read during a handshake), `bPrefix` to `a`. `live`,
 * if given, is counted into as the bytes flow (it should start at zero).
 */
export async function relay(
  a: Conn,
  b: Conn,
  aPrefix?: Uint8Array,
  bPrefix?: Uint8Array,
  live: RelayCounter = { up: 0, down: 0 },
): Promise<RelayResult> {
  const up0 = live.up;
  const down0 = live.down;
  const fail = () => {
    a.close();
    b.close();
  };
  await Promise.all([
    pump(a, b, aPrefix, live, "up").catch(fail),
    pump(b, a, bPrefix, live, "down").catch(fail),
  ]);
  a.close();
  b.close();
  return { aToB: live.up - up0, bToA: live.down - down0 };
}
