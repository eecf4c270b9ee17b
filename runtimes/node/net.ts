/**
 * {@link Net} for Node.js, on `node:net`.
 *
 * The Conn and the listener are src/adapter/socket.ts's (`SocketConn`,
 * `listenSockets`): reads through a `ReadQueue` that pauses the socket at
 * `READ_HWM` unread bytes, writes that wait for `drain`, half-close with
 * `allowHalfOpen` on both sides. Errors are mapped by src/adapter/'s
 * `toNetError`.
 *
 * TLS (`node:tls`, OpenSSL): the same SocketConn wraps a `tls.TLSSocket`.
 * - Dial: `tls.connect()`; the Conn is handed out on `secureConnect`, after
 *   verification: normally `rejectUnauthorized` with `ca` (or Node's bundled
 *   roots) and `checkServerIdentity(serverName ?? host)`; with a pin,
 *   `rejectUnauthorized: false` and the SHA-256 of
 *   `getPeerCertificate(true).raw` must equal the pin, checked before the
 *   dial resolves, so no application byte reaches an unverified server.
 * - Listen: a plain `net.Server`; each accepted socket is wrapped at once in
 *   a server `TLSSocket` (what `tls.Server` does internally, minus its
 *   120 s handshake timeout), so `accept()` never waits for a handshake.
 *   With `deferTls`, it is wrapped at `startTls()`, after the prologue.
 * - The data path (issue 26): the socket decrypts into 64 KiB slabs, one
 *   record after the other (./slab_reads.ts), so a link frame across
 *   records is one view for the link framer, not a copy; and the writes of
 *   one microtask are corked into one (`SocketConnOptions.coalesce`): a
 *   link's batch of frames is one `SSL_write`, full 16 KiB records and one
 *   system call, where each frame was its own records (a 32 KiB frame:
 *   16 + 16 KiB + 7 bytes) and its own system call.
 * - Half-close: `end()` sends close_notify, then FIN; reading goes on.
 *   The peer's close_notify (or FIN) shows as EOF; writing goes on after it
 *   (OpenSSL allows it: TLS 1.3 half-close). A peer that closes without
 *   close_notify also shows as EOF (Node ignores the unexpected EOF).
 *
 * @module
 */
import * as dgram from "node:dgram";
import * as net from "node:net";
import * as tls from "node:tls";
import { createHash } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import {
  type BindUdpOptions,
  type Conn,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Net,
  type TlsClientOptions,
} from "../../src/net.ts";
import { normalizePins } from "../../src/tls.ts";
import {
  bindDatagram,
  checkPin,
  listenSockets,
  serverTls,
  SocketConn,
  STREAM_HWM,
  type StreamSocket,
  timedOut,
  toNetError,
} from "../../src/adapter/mod.ts";
import { type NetError } from "../../src/errors.ts";
import { slabReads } from "./slab_reads.ts";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();
const nodeConn = (sock: net.Socket): Conn => new SocketConn(sock);
/** A TLS Conn's writes of one microtask go out as one (see the module doc). */
const TLS_CONN = { coalesce: true };

function dial(opts: DialOptions): Promise<Conn> {
  return opts.tls ? dialTls(opts, opts.tls) : dialTcp(opts);
}

function dialTcp({ host, port, timeoutMs }: DialOptions): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const opts: net.NetConnectOpts & { highWaterMark: number } = {
      host,
      port,
      allowHalfOpen: true,
      highWaterMark: STREAM_HWM,
    };
    const sock = net.connect(opts);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onError = (e: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(toNetError(e));
    };
    sock.once("error", onError);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.off("error", onError);
      resolve(nodeConn(sock));
    });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        sock.off("error", onError);
        sock.destroy();
        reject(timedOut(host, port, timeoutMs));
      }, timeoutMs);
    }
  });
}

/**
 * Dials TLS with `node:tls`; resolves once the handshake is done and the
 * server verified (chain and name, or the pin), within `timeoutMs`.
 */
function dialTls(
  { host, port, timeoutMs }: DialOptions,
  t: TlsClientOptions,
): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const pin = t.fingerprint;
    if (pin !== undefined) normalizePins(pin); // throws on a malformed pin
    const name = t.serverName ?? host;
    // allowHalfOpen and highWaterMark are passed on to the TLSSocket (not in @types/node)
    const opts: tls.ConnectionOptions & { allowHalfOpen: boolean; highWaterMark: number } = {
      host,
      port,
      allowHalfOpen: true,
      highWaterMark: STREAM_HWM,
      rejectUnauthorized: pin === undefined,
      // The name to verify is `name`, whatever `host` is (Node would take the
      // servername, or else the host); with a pin nothing but the pin counts.
      checkServerIdentity: (_host, cert) =>
        pin === undefined ? tls.checkServerIdentity(name, cert) : undefined,
    };
    if (net.isIP(name) === 0) opts.servername = name; // SNI takes no IP literal (RFC 6066)
    if (t.ca) opts.ca = t.ca;
    const sock = tls.connect(opts);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fail = (e: NetError) => {
      clearTimeout(timer);
      sock.off("error", onError);
      sock.on("error", () => {}); // errors after destroy() are of no interest
      sock.destroy();
      reject(e);
    };
    const onError = (e: Error) => fail(toNetError(e));
    sock.once("error", onError);
    sock.once("secureConnect", () => {
      if (pin !== undefined) {
        const mismatch = checkPin(pin, sock.getPeerCertificate(true)?.raw, sha256);
        if (mismatch) return fail(mismatch);
      }
      clearTimeout(timer);
      sock.off("error", onError);
      slabReads(sock);
      resolve(new SocketConn(sock, null, undefined, TLS_CONN));
    });
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => fail(timedOut(host, port, timeoutMs, "TLS connect")),
        timeoutMs,
      );
    }
  });
}

function listen(opts: ListenOptions): Promise<Listener> {
  try {
    if (!opts.tls) return listenSockets(net, opts, null);
    const wrap = serverTls(tls, opts.tls);
    const slabbed = (raw: StreamSocket) => {
      const s = wrap(raw);
      slabReads(s as tls.TLSSocket);
      return s;
    };
    return listenSockets(net, opts, slabbed, TLS_CONN);
  } catch (e) {
    return Promise.reject(e);
  }
}

async function lookup(host: string): Promise<string[]> {
  try {
    const all = await dnsLookup(host, { all: true, verbatim: true });
    return all.map((a) => a.address);
  } catch (e) {
    throw toNetError(e);
  }
}

/** The Node.js adapter. */
/** UDP on `node:dgram` (src/adapter/udp.ts). */
const bindUdp = (opts: BindUdpOptions) => bindDatagram(dgram, opts);

export const nodeNet: Net = { runtime: "node", dial, listen, bindUdp, lookup };
