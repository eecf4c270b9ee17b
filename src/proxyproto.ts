/**
 * The PROXY protocol header (SPEC.md §10.3; haproxy's
 * doc/proxy-protocol.txt, versions 1 and 2): what a trusted proxy in front
 * of a listener sends before anything else, naming the client's address.
 *
 * {@link parseProxyHeader} is incremental (null: more bytes needed) and
 * checks each limit before it waits for or copies more: a version 1 line
 * ends within 107 bytes, a version 2 header's length is checked as soon as
 * its 16 fixed bytes are in. {@link readProxyHeader} reads it off a
 * connection within a deadline and returns the connection as the rest of
 * the server sees it: its remote address the header's source, its first
 * read the bytes that came after the header.
 *
 * @module
 */
import { ProxyHeaderError } from "./errors.ts";
import { normalizeIP } from "./host.ts";
import { formatIPv4, formatIPv6, ipKind } from "./ip.ts";
import type { Addr, Conn } from "./net.ts";
import { Reader } from "./reader.ts";
import { deadline } from "./time.ts";

/** A version 1 header's longest line, CRLF included. */
export const V1_MAX = 107;
/** The longest version 2 address block (and TLVs) accepted: its length field's limit. */
export const V2_MAX_LENGTH = 1024;

const V1_SIG = new TextEncoder().encode("PROXY ");
const V2_SIG = Uint8Array.from([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

/** A parsed header: `source` null means "use the connection's own address" (LOCAL, UNKNOWN, UNSPEC, UNIX). */
export interface ProxyHeader {
  version: 1 | 2;
  source: Addr | null;
}

function fail(problem: string, limit?: string): never {
  throw new ProxyHeaderError(`Cannot parse PROXY header: ${problem}`, limit ? { limit } : {});
}

/** Whether `buf` starts with as much of `sig` as it holds. */
function startsLike(buf: Uint8Array, sig: Uint8Array): boolean {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false;
  return true;
}

/**
 * The header at the start of `buf`: its value and size, or null when more
 * bytes are needed. Throws {@link ProxyHeaderError} on anything else.
 */
export function parseProxyHeader(buf: Uint8Array): { value: ProxyHeader; size: number } | null {
  if (buf.length === 0) return null;
  if (startsLike(buf, V1_SIG)) return parseV1(buf);
  if (startsLike(buf, V2_SIG)) return parseV2(buf);
  fail("the connection does not start with a PROXY protocol signature");
}

function parseV1(buf: Uint8Array): { value: ProxyHeader; size: number } | null {
  const n = Math.min(buf.length, V1_MAX);
  let end = -1;
  for (let i = V1_SIG.length; i < n; i++) {
    if (buf[i] === 0x0a) {
      end = i;
      break;
    }
    if (buf[i]! < 0x20 && buf[i] !== 0x0d) fail("version 1 line has a control character");
  }
  if (end < 0) {
    if (buf.length >= V1_MAX) {
      fail(`version 1 line is longer than ${V1_MAX} bytes`, "proxy_header_size");
    }
    return null;
  }
  if (buf[end - 1] !== 0x0d) fail("version 1 line does not end in CRLF");
  const line = String.fromCharCode(...buf.subarray(V1_SIG.length, end - 1));
  if (line.includes("\r")) fail("version 1 line has a control character");
  const size = end + 1;
  const parts = line.split(" ");
  if (parts[0] === "UNKNOWN") return { value: { version: 1, source: null }, size };
  const family = parts[0] === "TCP4" ? "ipv4" : parts[0] === "TCP6" ? "ipv6" : null;
  if (family === null) fail(`version 1 protocol ${JSON.stringify(parts[0])} is not supported`);
  if (parts.length !== 5) fail("version 1 line needs protocol, two addresses and two ports");
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  for (const a of [src, dst]) {
    if (ipKind(a) !== family || normalizeIP(a) === null) {
      fail(`version 1 address ${JSON.stringify(a)} is not an ${family} address`);
    }
  }
  for (const p of [sport, dport]) {
    if (!/^(0|[1-9][0-9]{0,4})$/.test(p) || Number(p) > 65535) {
      fail(`version 1 port ${JSON.stringify(p)} is not in 0..65535`);
    }
  }
  return { value: { version: 1, source: { host: normalizeIP(src)!, port: Number(sport) } }, size };
}

function parseV2(buf: Uint8Array): { value: ProxyHeader; size: number } | null {
  if (buf.length < 16) return null;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) fail(`version ${verCmd >> 4} is not supported`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) fail(`version 2 command ${cmd} is not supported`);
  const fam = buf[13]! >> 4;
  const proto = buf[13]! & 0x0f;
  if (fam > 3 || proto > 2) {
    fail(`version 2 address family 0x${buf[13]!.toString(16)} is not supported`);
  }
  const len = (buf[14]! << 8) | buf[15]!;
  if (len > V2_MAX_LENGTH) {
    fail(`version 2 length ${len} exceeds ${V2_MAX_LENGTH}`, "proxy_header_size");
  }
  const need = fam === 1 ? 12 : fam === 2 ? 36 : fam === 3 ? 216 : 0;
  if (len < need) fail(`version 2 length ${len} is too short for its addresses (${need})`);
  if (buf.length < 16 + len) return null;
  const size = 16 + len;
  // LOCAL (the proxy's own health check), and what is not TCP over IP: the connection's address.
  if (cmd === 0 || proto !== 1 || (fam !== 1 && fam !== 2)) {
    return { value: { version: 2, source: null }, size };
  }
  const host = fam === 1 ? formatIPv4(buf, 16) : formatIPv6(buf, 16);
  const at = fam === 1 ? 24 : 48;
  const port = (buf[at]! << 8) | buf[at + 1]!;
  return { value: { version: 2, source: { host: normalizeIP(host) ?? host, port } }, size };
}

/**
 * Read the header that starts `conn`, within `timeoutMs` of the call. Resolves
 * to the connection with the header's source as its remote address (its own,
 * where the header names none) and the bytes after the header as its first
 * read; with `startTls`, to the TLS connection `conn.startTls()` makes of it,
 * those bytes being the start of its TLS stream. Rejects with
 * {@link ProxyHeaderError} (bad or missing header), `TimeoutError`,
 * `EofError` or `NetError`; the caller closes `conn`.
 */
export async function readProxyHeader(
  conn: Conn,
  timeoutMs: number,
  startTls = false,
): Promise<{ conn: Conn; header: ProxyHeader }> {
  const rd = new Reader(conn, 16 + V2_MAX_LENGTH);
  const header = await deadline(
    rd.parse(parseProxyHeader, "PROXY header"),
    timeoutMs,
    "PROXY header",
  );
  const remote = header.source ?? conn.remote;
  if (!startTls) return { conn: withRemote(conn, remote, rd.rest()), header };
  if (!conn.startTls) throw new TypeError("startTls: not a connection of a deferTls listener");
  return { conn: withRemote(await conn.startTls(rd.rest()), remote), header };
}

/**
 * `conn` as seen from `remote` (and at `local`, if given), with `rest` (bytes
 * already read from it) read first.
 */
export function withRemote(
  conn: Conn,
  remote: Addr,
  rest: Uint8Array = new Uint8Array(0),
  local?: Addr,
): Conn {
  return new SourcedConn(conn, remote, rest, local ?? null);
}

class SourcedConn implements Conn {
  #rest: Uint8Array | null;
  constructor(
    readonly inner: Conn,
    readonly remote: Addr,
    rest: Uint8Array,
    readonly at: Addr | null,
  ) {
    this.#rest = rest.length > 0 ? rest : null;
    if (inner.writev) this.writev = (chunks) => inner.writev!(chunks);
  }
  get local(): Addr {
    return this.at ?? this.inner.local;
  }
  get closed(): Promise<void> {
    return this.inner.closed;
  }
  get nagle(): boolean {
    return this.inner.nagle ?? false;
  }
  read(): Promise<Uint8Array | null> {
    const r = this.#rest;
    if (r === null) return this.inner.read();
    this.#rest = null;
    return Promise.resolve(r);
  }
  write(chunk: Uint8Array): Promise<void> {
    return this.inner.write(chunk);
  }
  /** The inner Conn's, where it has one. */
  readonly writev?: (chunks: Uint8Array[]) => Promise<void>;
  end(): Promise<void> {
    return this.inner.end();
  }
  close(): void {
    this.#rest = null;
    this.inner.close();
  }
  setNoDelay(on: boolean): void {
    this.inner.setNoDelay(on);
  }
}
