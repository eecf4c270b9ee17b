/**
 * Internal DNS for the client's machine (`burrow client --dns ADDR`,
 * SPEC.md §10.2): answers DNS queries on ADDR over UDP and TCP (RFC 1035
 * §4.2; over TCP each message after a two-byte length, several per
 * connection and answered as they come, RFC 7766) by sending each, as one
 * datagram, through a UDP association to the DNS server inside the network
 * (`--dns-server`, else the nameserver the agent reported).
 *
 * One association carries every query; it is opened at the first query and
 * again at the next one after it ended. Query ids are rewritten (two local
 * programs may use the same id) and matched back; a query gets SERVFAIL
 * when the association cannot be opened or ends, or when no answer came
 * within the timeout; over {@link DNS_PENDING} queries waiting, a query gets
 * REFUSED (`limit=dns_pending`). An answer with TC set (too big for a
 * datagram) is passed on as it is: the program asks again over TCP, which
 * goes through the association too and may get TC again; DNS over TCP to
 * the inside is not carried.
 *
 * @module
 */
import { fmt, targetText } from "./addr.ts";
import type { Association } from "./client_association.ts";
import { failure, isResponse, messageId, REFUSED, SERVFAIL, withId } from "./dns_message.ts";
import { ListenError, NetError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Target } from "./messages.ts";
import type { Addr, Conn, DatagramSocket, Listener, Net } from "./net.ts";
import { ok, type Result } from "./result.ts";

/** Queries waiting for an answer, at most (`limit=dns_pending`). */
export const DNS_PENDING = 1024;
/** How long a query waits for its answer: 5 s, dig's and the stub resolvers' default. */
export const DNS_TIMEOUT_MS = 5000;
/** Local TCP connections at once, at most (`limit=dns_tcp_connections`). */
export const DNS_TCP_CONNECTIONS = 64;
/** A TCP connection with no query for this long is closed (RFC 7766 §6.2.3). */
export const DNS_TCP_IDLE_MS = 10_000;
/** After a failed open, queries get SERVFAIL at once for this long. */
const RETRY_MS = 1000;

/** How the DNS front reaches the inside: the client proxy. */
export interface DnsUpstream {
  /** A UDP association (CONNECT with protocol 17) toward `server`; a refusal's text when none. */
  associate(server: Target): Promise<Result<Association, string>>;
  /** The nameserver the agent reported (CHECK, SPEC.md §5.18), or why there is none. */
  nameserver(): Promise<Result<Target, string>>;
}

export interface DnsOptions {
  /** Where to answer, UDP and TCP on the same port. */
  listen: Addr;
  /** The DNS server inside; null: the agent's nameserver. */
  server: Target | null;
  timeoutMs?: number;
  maxPending?: number;
}

/** Counters of the DNS front, for logs and tests. */
export interface DnsStats {
  queries: number;
  answers: number;
  timeouts: number;
  /** Queries answered SERVFAIL because there was no association (refused, ended). */
  failed: number;
  /** Queries refused over the pending limit. */
  refused: number;
  /** Local messages that are no query, and answers that match none. */
  malformed: number;
  unmatched: number;
}

/** The association in use and the DNS server its queries go to. */
interface Open {
  assoc: Association;
  server: Target;
}

interface Pending {
  /** The id it went out with (the key of #pending). */
  key: number;
  /** The program's id. */
  id: number;
  query: Uint8Array;
  reply: (answer: Uint8Array) => void;
  timer: ReturnType<typeof setTimeout>;
  via: Association;
}

export class DnsFront {
  #udp: DatagramSocket | undefined;
  #tcp: Listener | undefined;
  readonly #tcpConns = new Set<Conn>();
  readonly #pending = new Map<number, Pending>();
  /** Queries waiting for the association to open (they count toward the pending limit). */
  #opening = 0;
  #nextId = Math.floor(Math.random() * 0x10000);
  #assoc: Promise<Result<Open, string>> | null = null;
  #failedAt = 0;
  #failure = "";
  readonly stats: DnsStats = {
    queries: 0,
    answers: 0,
    timeouts: 0,
    failed: 0,
    refused: 0,
    malformed: 0,
    unmatched: 0,
  };

  constructor(
    readonly net: Net,
    readonly opts: DnsOptions,
    readonly upstream: DnsUpstream,
    readonly log: Logger,
  ) {}

  /** Queries waiting for an answer (or for the association to open). */
  get pending(): number {
    return this.#pending.size + this.#opening;
  }

  /** The bound address (UDP and TCP share its port). */
  get addr(): Addr | undefined {
    return this.#udp?.addr;
  }

  /**
   * Bind UDP, then TCP on the same port (with port 0: the UDP socket's,
   * tried again with another when TCP has that port in use, 20 times).
   */
  async start(): Promise<void> {
    const at = this.opts.listen;
    for (let tries = 1;; tries++) {
      const udp = await this.net.bindUdp({ host: at.host, port: at.port }).catch((e) => {
        throw new ListenError(fmt(at), "--dns", e);
      });
      const tcpAt = { host: at.host, port: udp.addr.port };
      const tcp = await this.net.listen(tcpAt).catch((e) => {
        udp.close();
        const again = at.port === 0 && e instanceof NetError && e.code === "EADDRINUSE";
        if (again && tries < 20) return null;
        throw new ListenError(fmt(tcpAt), "--dns", e);
      });
      if (!tcp) continue;
      [this.#udp, this.#tcp] = [udp, tcp];
      break;
    }
    this.log.info("dns listening", {
      dns: fmt(this.#udp.addr),
      server: this.opts.server ? targetText(this.opts.server) : "(the agent's nameserver)",
    });
    this.#serveUdp(this.#udp);
    this.#serveTcp(this.#tcp);
  }

  async stop(): Promise<void> {
    this.#udp?.close();
    this.#tcp?.close();
    for (const c of this.#tcpConns) c.close();
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    void this.#assoc?.then((a) => a.ok && a.value.assoc.close()); // an open under way too
    await Promise.all([this.#udp?.closed, ...[...this.#tcpConns].map((c) => c.closed)]);
  }

  #serveUdp(sock: DatagramSocket): void {
    (async () => {
      for (;;) {
        const d = await sock.receive();
        if (d === null) return;
        const from = d.from;
        this.#query(d.data, (answer) => void sock.send(answer, from).catch(() => {}));
      }
    })();
  }

  #serveTcp(listener: Listener): void {
    (async () => {
      for await (const conn of listener) {
        if (this.#tcpConns.size >= DNS_TCP_CONNECTIONS) {
          this.log.warn("dns tcp connection refused", {
            limit: "dns_tcp_connections",
            max: DNS_TCP_CONNECTIONS,
          });
          conn.close();
          continue;
        }
        this.#tcpConns.add(conn);
        conn.closed.then(() => this.#tcpConns.delete(conn));
        this.#tcpConn(conn).catch(() => conn.close());
      }
    })();
  }

  /** One TCP connection: length-prefixed queries, each answered when its answer comes. */
  async #tcpConn(conn: Conn): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    let idle = setTimeout(() => conn.close(), DNS_TCP_IDLE_MS);
    let due = 0; // queries read and not answered yet
    let drained: (() => void) | null = null;
    const reply = (answer: Uint8Array) => {
      const out = new Uint8Array(2 + answer.length);
      out[0] = answer.length >> 8;
      out[1] = answer.length & 0xff;
      out.set(answer, 2);
      conn.write(out).catch(() => conn.close());
      if (--due === 0) drained?.();
    };
    try {
      for (;;) {
        const chunk = await conn.read();
        if (chunk === null) break;
        clearTimeout(idle);
        idle = setTimeout(() => conn.close(), DNS_TCP_IDLE_MS);
        buf = buf.length === 0 ? chunk : concat(buf, chunk); // at most one message + one chunk
        while (buf.length >= 2) {
          const len = (buf[0]! << 8) | buf[1]!;
          if (buf.length < 2 + len) break;
          if (this.#query(buf.subarray(2, 2 + len), reply)) due++;
          buf = buf.subarray(2 + len);
        }
      }
    } finally {
      clearTimeout(idle);
    }
    // The client ended its side: the answers still due go out (each comes, at the
    // latest after the timeout, or the connection closes), then FIN.
    if (due > 0) await Promise.race([new Promise<void>((r) => (drained = r)), conn.closed]);
    await conn.end().catch(() => {});
    conn.close();
  }

  /**
   * One query from a local program; `reply` sends an answer back the way it
   * came, called once later (or at once) unless this returns false (not a
   * query: dropped).
   */
  #query(msg: Uint8Array, reply: (answer: Uint8Array) => void): boolean {
    if (messageId(msg) === null || isResponse(msg)) {
      this.stats.malformed++;
      return false;
    }
    this.stats.queries++;
    const max = this.opts.maxPending ?? DNS_PENDING;
    if (this.#pending.size + this.#opening >= max) {
      this.stats.refused++;
      if (this.stats.refused === 1 || this.stats.refused % 1000 === 0) {
        this.log.warn("dns query refused", {
          limit: "dns_pending",
          max,
          refused: this.stats.refused,
        });
      }
      reply(failure(msg, REFUSED));
      return true;
    }
    if (Date.now() - this.#failedAt < RETRY_MS) {
      this.#fail(msg, reply);
      return true;
    }
    const query = msg.slice();
    this.#opening++;
    void this.#association().then((a) => {
      this.#opening--;
      if (!a) return this.#fail(query, reply);
      const key = this.#freeId();
      const timer = setTimeout(() => this.#timeout(key), this.opts.timeoutMs ?? DNS_TIMEOUT_MS);
      this.#pending.set(key, { key, id: messageId(query)!, query, reply, timer, via: a.assoc });
      if (!a.assoc.send(a.server, withId(query, key))) this.#settle(key, failure(query, SERVFAIL));
    });
    return true;
  }

  #fail(query: Uint8Array, reply: (answer: Uint8Array) => void): void {
    this.stats.failed++;
    reply(failure(query, SERVFAIL));
  }

  /** An id no pending query uses (the pending limit leaves most free). */
  #freeId(): number {
    while (this.#pending.has(this.#nextId)) this.#nextId = (this.#nextId + 1) & 0xffff;
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) & 0xffff;
    return id;
  }

  #timeout(id: number): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.stats.timeouts++;
    this.#pending.delete(id);
    p.reply(failure(p.query, SERVFAIL));
  }

  /** Answer pending query `id` with `answer` (its id is set back to the program's). */
  #settle(id: number, answer: Uint8Array): void {
    const p = this.#pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.#pending.delete(id);
    p.reply(withId(answer, p.id));
  }

  /**
   * The association in use and its server, opened when there is none (one
   * open at a time, shared by the queries that wait for it); null when it
   * cannot be opened (logged; queries fail for {@link RETRY_MS}).
   */
  async #association(): Promise<Open | null> {
    const opening = this.#assoc ??= this.#open();
    const a = await opening;
    if (a.ok) {
      this.#failure = "";
      return a.value;
    }
    if (this.#assoc === opening) this.#assoc = null;
    this.#failedAt = Date.now();
    if (a.error !== this.#failure) this.log.warn("dns unavailable", { error: a.error });
    this.#failure = a.error;
    return null;
  }

  async #open(): Promise<Result<Open, string>> {
    let server = this.opts.server;
    if (!server) {
      const ns = await this.upstream.nameserver();
      if (!ns.ok) return ns;
      server = ns.value;
    }
    const r = await this.upstream.associate(server);
    if (!r.ok) return r;
    this.log.info("dns association open", { server: targetText(server) });
    void this.#answers(r.value);
    return ok({ assoc: r.value, server });
  }

  /** Answers from `assoc` until it ends; then its pending queries fail and the next query reopens. */
  async #answers(assoc: Association): Promise<void> {
    for (;;) {
      const d = await assoc.receive();
      if (d === null) break;
      const id = messageId(d.data);
      if (id === null || !isResponse(d.data) || this.#pending.get(id)?.via !== assoc) {
        this.stats.unmatched++;
        continue;
      }
      this.stats.answers++;
      this.#settle(id, d.data);
    }
    this.log.info("dns association ended", {
      ...(assoc.error ? { error: assoc.error.message } : {}),
    });
    const mine = await this.#assoc;
    if (mine?.ok && mine.value.assoc === assoc) this.#assoc = null;
    for (const p of [...this.#pending.values()]) {
      if (p.via !== assoc) continue;
      this.stats.failed++;
      this.#settle(p.key, failure(p.query, SERVFAIL));
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
