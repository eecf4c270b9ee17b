/**
 * Closing a connection without losing its last words. `close()` discards
 * bytes still queued (over TLS, often the last record), so a refusal written
 * just before it may never arrive. `linger` sends FIN after what was written,
 * waits briefly for the peer to close its side (reading and dropping what it
 * still sends), then closes.
 *
 * @module
 */
import type { Conn } from "./net.ts";

/** End `conn` cleanly: FIN after queued bytes, then close on the peer's EOF or after `ms`. */
export async function linger(conn: Conn, ms = 2000): Promise<void> {
  const timer = setTimeout(() => conn.close(), ms);
  try {
    await conn.end();
    for (let i = 0; i < 64; i++) if ((await conn.read()) === null) break;
  } catch {
    // the peer is gone: nothing left to deliver
  } finally {
    clearTimeout(timer);
    conn.close();
  }
}
