/**
 * The few things the core needs from a runtime: dial, listen, a byte
 * connection. src/ and generated/ never touch `node:*`, `Deno` or `Bun`;
 * runtimes/<name>/net.ts implements this interface for each runtime.
 *
 * @module
 */

/** A socket address. `host` is an IP literal (no brackets for IPv6). */
export interface Addr {
  host: string;
  port: number;
}

/** A bidirectional byte stream (TCP or TLS). */
export interface Conn {
  readonly local: Addr;
  readonly remote: Addr;
  /**
   * Next chunk of bytes, or `null` once the peer has ended its send side
   * (and from then on), or after {@link close}. Only one read may be pending
   * at a time. Rejects with {@link NetError} when the connection fails. The
   * returned buffer belongs to the caller. Unread data is not buffered
   * without bound: the adapter stops reading from the socket.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Queue bytes for sending. Resolves once the runtime has accepted them and
   * its buffer is below the high-water mark, so `await write()` in a loop
   * never buffers unboundedly. Concurrent writes keep their order. Rejects
   * with {@link NetError} on failure, and with code ECLOSED after `end()` or
   * `close()`. The caller must not modify `chunk` afterwards.
   */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Where the runtime can write several buffers in one go (Node's sockets:
   * one `writev`, over TLS one `SSL_write`): `write()` of each chunk, in
   * order, handed on together; the promise is the last write's. Absent
   * elsewhere: callers join the chunks themselves.
   */
  writev?(chunks: Uint8Array[]): Promise<void>;
  /**
   * Half-close: send FIN after queued bytes; reading continues. Resolves once
   * FIN is handed to the kernel; repeated calls return the same promise.
   * Rejects with ECLOSED after `close()`.
   */
  end(): Promise<void>;
  /**
   * Close both directions now, discarding queued bytes; pending writes
   * reject (ECLOSED) or resolve, a pending read resolves `null`. Idempotent.
   */
  close(): void;
  /**
   * Resolves once the connection is fully closed (never rejects): after
   * `close()`, a failure, or both `end()` and the peer's EOF.
   */
  readonly closed: Promise<void>;
  /** Disable Nagle's algorithm (default on for every adapter: true). */
  setNoDelay(on: boolean): void;
  /**
   * True when Nagle's algorithm stays on whatever `setNoDelay` says (Deno's
   * accepted TLS connections): a small write may wait for the peer's ACK of
   * the one before, so writers should make few writes rather than early ones.
   */
  readonly nagle?: boolean;
  /**
   * On a Conn of a listener with `deferTls` (elsewhere absent, or rejects
   * with TypeError): start server TLS with the listener's certificate on
   * this connection, `head` (bytes read from it past its prologue) being
   * the first bytes of the TLS stream. Resolves to a Conn as one a TLS
   * listener accepts (handshake in the background), with this Conn's
   * addresses; from the call on, only the returned Conn is used (this one
   * closes with it). No read may be pending. A failure closes this Conn.
   */
  startTls?(head: Uint8Array): Promise<Conn>;
}

/** A listening socket. */
export interface Listener extends AsyncIterable<Conn> {
  readonly addr: Addr;
  /** Next accepted connection, or `null` once the listener is closed. */
  accept(): Promise<Conn | null>;
  /** Stop listening; connections accepted but not yet taken are closed. */
  close(): void;
}

export interface DialOptions {
  host: string;
  port: number;
  /**
   * Abort the connect attempt after this many milliseconds (NetError
   * ETIMEDOUT). On Bun the attempt itself cannot be cancelled: it goes on in
   * the background and the socket is closed if it ever connects.
   */
  timeoutMs?: number;
  /**
   * Speak TLS over the connection. The TLS handshake (and its verification)
   * is part of the dial: it completes within `timeoutMs`, and a failure
   * rejects with NetError ETLS before the Conn exists, so no application
   * byte is ever sent to an unverified server.
   */
  tls?: TlsClientOptions;
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port; see {@link Listener.addr}. */
  port: number;
  /**
   * Speak TLS on every accepted connection. `accept()` yields a Conn as soon
   * as TCP accepts it; its TLS handshake goes on in the background (reads
   * wait for it, writes are queued behind it), so a client that connects and
   * sends nothing never holds up the others. A failed handshake makes the
   * Conn's `read()` reject with ETLS (or ECONNRESET when the client just
   * went away). The listener applies no handshake timeout of its own: the
   * caller bounds its protocol handshake anyway and `close()` works at any
   * point of the TLS handshake too.
   */
  tls?: TlsServerOptions;
  /**
   * With `tls`: connections start plain, for a prologue that comes before
   * the TLS handshake (a PROXY protocol header); the caller reads it, then
   * calls {@link Conn.startTls}. Deno and Bun serve these listeners with
   * their `node:net` and `node:tls`.
   */
  deferTls?: boolean;
}

/** Server side of TLS: the certificate to present. */
export interface TlsServerOptions {
  /** PEM certificate; may be a chain (leaf first, then intermediates). */
  cert: string;
  /** PEM private key of the leaf (PKCS#8, or SEC1/PKCS#1). */
  key: string;
}

/**
 * Client side of TLS: how to verify the server.
 *
 * Without `fingerprint`: normal verification, the chain against `ca` (or
 * the system roots) and the name (`serverName ?? host`, DNS name or IP
 * against the certificate's subjectAltName).
 *
 * With `fingerprint`: the pin replaces chain and name verification; the
 * connection is accepted iff the SHA-256 of the server's leaf certificate
 * (DER) equals the pin (or one of the pins). A mismatch rejects with ETLS and the message
 * `TLS certificate fingerprint mismatch: expected AB:…, got 12:…`.
 */
export interface TlsClientOptions {
  /** Name to verify (and send as SNI when it is a DNS name); default `host`. */
  serverName?: string;
  /**
   * PEM root certificates to trust instead of the runtime's default roots.
   * On Deno they are trusted in addition to the default roots.
   */
  ca?: string[];
  /**
   * SHA-256 of the server's leaf certificate DER; hex, colons and case
   * ignored. A list: any of them matches (servers with certificates of
   * their own). On Deno the pinned certificate must be self-signed, and the
   * first pinned dial of a process makes one extra connection to the server
   * first, to fetch the certificate (it ends after the TLS handshake, with
   * no application byte); see runtimes/deno/net.ts.
   */
  fingerprint?: string | readonly string[];
}

/** One UDP datagram and the address it came from (or goes to). */
export interface Datagram {
  data: Uint8Array;
  /** The sender: an IP literal (IPv4-mapped IPv6 as the runtime reports it) and port. */
  from: Addr;
}

export interface BindUdpOptions {
  /**
   * Local IP literal to bind: its family is the socket's (an IPv6 socket
   * sends to and receives from IPv6 addresses only). "0.0.0.0" or "::" for
   * every address.
   */
  host: string;
  /** 0 or absent: a free port; see {@link DatagramSocket.addr}. */
  port?: number;
  /**
   * Datagrams received and not yet taken that are kept at most; default
   * {@link UDP_QUEUE}. One more is dropped and counted in
   * {@link DatagramSocket.dropped}.
   */
  queue?: number;
  /** Bytes received and not yet taken that are kept at most; default {@link UDP_QUEUE_BYTES}. */
  queueBytes?: number;
}

/** Default {@link BindUdpOptions.queue}: datagrams. */
export const UDP_QUEUE = 256;
/** Default {@link BindUdpOptions.queueBytes}: 1 MiB. */
export const UDP_QUEUE_BYTES = 1024 * 1024;
/** The largest UDP payload over IPv4 (65535 - 20 - 8); IPv6 allows 65527 without jumbograms. */
export const UDP_MAX_PAYLOAD = 65507;

/**
 * A bound UDP socket. Received datagrams wait in a bounded queue (count
 * and bytes, {@link BindUdpOptions}); when the consumer is slow the newest
 * are dropped and counted, never queued without bound.
 */
export interface DatagramSocket {
  readonly addr: Addr;
  /**
   * Next datagram (the buffer belongs to the caller), or `null` after
   * {@link close}. Only one receive may be pending at a time.
   */
  receive(): Promise<Datagram | null>;
  /**
   * Send one datagram to `to` (an IP literal of the socket's family, port
   * 1-65535; no name resolution). Resolves once the kernel took it (which
   * says nothing of delivery). Rejects with {@link NetError}: EINVAL for a
   * bad address or a datagram over {@link UDP_MAX_PAYLOAD} (checked before
   * anything is sent), ECLOSED after `close()`, otherwise what the kernel
   * said.
   */
  send(data: Uint8Array, to: Addr): Promise<void>;
  /** Datagrams dropped because the receive queue was full, since bind. */
  readonly dropped: number;
  /** Close the socket and release its port; a pending receive resolves `null`. Idempotent. */
  close(): void;
  /** Resolves once the socket is closed (never rejects). */
  readonly closed: Promise<void>;
}

/** What a runtime adapter provides. */
export interface Net {
  /** Runtime name, for logs: "node", "deno" or "bun". */
  readonly runtime: string;
  dial(opts: DialOptions): Promise<Conn>;
  listen(opts: ListenOptions): Promise<Listener>;
  /** Bind a UDP socket; rejects with NetError (EADDRINUSE, EINVAL, …). */
  bindUdp(opts: BindUdpOptions): Promise<DatagramSocket>;
  /** Resolve a host name to IP literals (IPv4 and IPv6). */
  lookup(host: string): Promise<string[]>;
}
