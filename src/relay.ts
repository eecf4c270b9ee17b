/**
 * The data path: copy bytes both ways between two connections, with
 * backpressure (each write is awaited before the next read) and half-close
 * (EOF on one side becomes `end()` on the other; the reverse direction keeps
 * flowing). Both connections are closed when both directions are done or
 * either fails. A {@link Throttle}, if given, holds reads back
 * (bandwidth limits: src/server/bandwidth.ts).
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

/**
 * Paces a relay: `take(dir, n)` after each chunk of `n` bytes read going
 * `dir`; a promise means "wait for it before writing the chunk and reading
 * the next one" (so the source is not read meanwhile), undefined means go
 * on at once (the unlimited path: no allocation).
 */
export interface Throttle {
  take(dir: keyof RelayCounter, n: number): Promise<void> | undefined;
}

async function pump(
  src: Conn,
  dst: Conn,
  prefix: Uint8Array | undefined,
  counter: RelayCounter,
  dir: keyof RelayCounter,
  throttle: Throttle | undefined,
) {
  if (prefix && prefix.length > 0) {
    counter[dir] += prefix.length;
    await throttle?.take(dir, prefix.length);
    await dst.write(prefix);
  }
  for (;;) {
    const chunk = await src.read();
    if (chunk === null) break;
    counter[dir] += chunk.length;
    if (throttle) {
      const wait = throttle.take(dir, chunk.length);
      if (wait) await wait;
    }
    await dst.write(chunk);
  }
  await dst.end();
}

/**
 * Relay until both directions have ended. `aPrefix` is written to `b` first
 * (bytes of `a` already read during a handshake), `bPrefix` to `a`. `live`,
 * if given, is counted into as the bytes flow (it should start at zero);
 * `pace`, if given, throttles both: `up` (`a` to `b`) and `down` (`b` to `a`).
 */
export async function relay(
  a: Conn,
  b: Conn,
  aPrefix?: Uint8Array,
  bPrefix?: Uint8Array,
  live: RelayCounter = { up: 0, down: 0 },
  pace?: Throttle,
): Promise<RelayResult> {
  const up0 = live.up;
  const down0 = live.down;
  const fail = () => {
    a.close();
    b.close();
  };
  await Promise.all([
    pump(a, b, aPrefix, live, "up", pace).catch(fail),
    pump(b, a, bPrefix, live, "down", pace).catch(fail),
  ]);
  a.close();
  b.close();
  return { aToB: live.up - up0, bToA: live.down - down0 };
}
