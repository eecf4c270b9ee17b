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

async function pump(src: Conn, dst: Conn, prefix: Uint8Array | undefined, counter: { n: number }) {
  if (prefix && prefix.length > 0) {
    counter.n += prefix.length;
    await dst.write(prefix);
  }
  for (;;) {
    const chunk = await src.read();
    if (chunk === null) break;
    counter.n += chunk.length;
    await dst.write(chunk);
  }
  await dst.end();
}

/**
 * Relay until both directions have ended. `aPrefix` is written to `b` first
 * (bytes of `a` already read during a handshake), `bPrefix` to `a`.
 */
export async function relay(
  a: Conn,
  b: Conn,
  aPrefix?: Uint8Array,
  bPrefix?: Uint8Array,
): Promise<RelayResult> {
  const up = { n: 0 };
  const down = { n: 0 };
  const fail = () => {
    a.close();
    b.close();
  };
  await Promise.all([
    pump(a, b, aPrefix, up).catch(fail),
    pump(b, a, bPrefix, down).catch(fail),
  ]);
  a.close();
  b.close();
  return { aToB: up.n, bToA: down.n };
}
