/**
 * What every runtime adapter needs besides its runtime's own API, runtime
 * free (web standards only): runtimes/<name>/net.ts and main.ts bind these
 * to `node:*`, `Deno.*` or `Bun.*` and hold nothing else.
 *
 * - errors.ts: {@link toNetError} maps what any runtime throws onto the
 *   stable `NetErrorCode`s (one table for all three), and the errors
 *   the adapters make themselves ({@link closedError}, {@link timedOut},
 *   {@link unusableCertificate}, {@link listenError}, {@link checkPin}).
 * - conn.ts: the queues of a Conn on a push-based socket (Node, Bun):
 *   {@link ReadQueue} (unread chunks and the pending read; pauses the socket
 *   at {@link READ_HWM} unread bytes, resumes it once the queue is empty)
 *   and {@link Waiters} (writes waiting for the socket to drain).
 * - listener.ts: {@link AcceptQueue}, a whole Listener for a socket that
 *   accepts by itself (the adapter pushes Conns and accept errors), and
 *   {@link acceptAll}, the async iterator of any Listener.
 * - socket.ts: {@link SocketConn} and {@link listenSockets}, a Conn and a
 *   Listener on `node:net` sockets (typed structurally): all of Node's,
 *   and Deno's and Bun's listeners with `deferTls` (TLS started on an
 *   accepted socket by {@link serverTls}, `node:tls`).
 * - loopback_tls.ts: {@link loopbackTls}, `deferTls` for Deno: the plain
 *   connection spliced into one to an internal loopback TLS listener.
 * - udp.ts: {@link bindDatagram}, a DatagramSocket on a `node:dgram`
 *   socket (typed structurally), for all three runtimes: a receive queue
 *   bounded by count and bytes that drops and counts what does not fit.
 * - entry.ts, for the CLI entry points: {@link secretFileWriter} (mkdir
 *   0700, write 0600, chmod 0600 on the runtime's fs primitives),
 *   {@link secretFileReader} (refuses a file group or others may read) and
 *   {@link unhandledRejectionLine}.
 *
 * @module
 */
export {
  checkPin,
  closedError,
  type ErrorContext,
  listenError,
  timedOut,
  toNetError,
  unusableCertificate,
} from "./errors.ts";
export { type FlowControl, READ_HWM, ReadQueue, Waiters } from "./conn.ts";
export { acceptAll, AcceptQueue } from "./listener.ts";
export { loopbackTls } from "./loopback_tls.ts";
export {
  listenSockets,
  type NetModule,
  type ServerTls,
  serverTls,
  SocketConn,
  type SocketServer,
  STREAM_HWM,
  type StreamSocket,
  type TlsModule,
} from "./socket.ts";
export { bindDatagram, type DgramModule, type DgramSocket } from "./udp.ts";
export {
  dirname,
  type SecretFileReader,
  secretFileReader,
  type SecretFileSystem,
  secretFileWriter,
  unhandledRejectionLine,
} from "./entry.ts";
