/**
 * The agent's half of a UDP association (SPEC.md §2.5): an OPEN with
 * protocol 17 is answered without dialing (status 0 when the agent's own
 * allowlist has a UDP rule for the client); then each datagram record's
 * target is checked again against that allowlist (never trusting the
 * server), a name is resolved here and only an address inside a matching
 * rule is used, and the datagram goes out of one UDP socket per address
 * family, opened on demand and closed after `udp_idle` without traffic.
 * Replies come back as records with their source, only from addresses the
 * socket has sent to. Nothing waits: what cannot go at once is dropped and
 * counted, in the association's counts and the agent's totals.
 *
 * @module
 */
import { targetText } from "./addr.ts";
import { ProtocolError } from "./errors.ts";
import { normalizeIP, normalizeTarget } from "./host.ts";
import { ipKind } from "./ip.ts";
import type { Logger } from "./log.ts";
import { type MessageOf, type Rule, RuleProtocol, Status, type Target } from "./messages.ts";
import type { DatagramSocket, Net } from "./net.ts";
import { matchRule, rulesFor } from "./policy.ts";
import { readRecords, RecordWriter, UdpCounts, Waiting } from "./udp_stream.ts";
import type { Wire } from "./wire.ts";
import { NO_ADDR } from "./writer.ts";

/** Default `udp_idle`: an association's socket closes after this long without a datagram. */
export const UDP_IDLE_MS = 60_000;
/** Reply sources a socket remembers (SPEC.md §10). */
const PEERS = 1024;
/** Names an association keeps resolved, and for how long. */
const NAMES = 64;
const NAME_TTL_MS = 30_000;

/** One socket of an association: its family's, with where it has sent. */
interface Side {
  sock: DatagramSocket;
  /** `host port` of every address sent to, oldest first. */
  peers: Map<string, true>;
  waiting: Waiting;
  last: number;
  timer: ReturnType<typeof setTimeout>;
}

type Family = "ipv4" | "ipv6";

export class AgentUdp {
  /** Every association's counts added up, ended ones and open ones. */
  readonly totals: UdpCounts = new UdpCounts();
  /** Associations open now. */
  open = 0;
  /** UDP sockets of the open associations. */
  sockets = 0;

  constructor(
    readonly net: Net,
    readonly rules: Rule[],
    readonly log: Logger,
    readonly idleMs: number = UDP_IDLE_MS,
  ) {}

  /** Answer an OPEN of protocol 17 on `wire`, then relay the association until it ends. */
  async serve(wire: Wire, open: MessageOf<"OPEN">): Promise<void> {
    const log = this.log.with({ stream: open.streamId, client: open.client });
    const rules = rulesFor(this.rules, open.client).filter((r) => r.protocol === RuleProtocol.udp);
    const status = rules.length > 0 ? Status.succeeded : Status.not_allowed;
    const result = {
      type: "OPEN_RESULT" as const,
      streamId: open.streamId,
      status,
      bound: NO_ADDR,
    };
    if (status !== Status.succeeded) {
      log.warn("udp association refused", { reason: "no UDP rule for the client" });
      return wire.last(result);
    }
    try {
      await wire.send(result);
    } catch {
      return wire.conn.close();
    }
    this.open++;
    const counts = new UdpCounts(this.totals);
    const t0 = Date.now();
    try {
      await new Association(this, wire, rules, counts, log).run();
    } finally {
      this.open--;
      log.info("udp association ended", {
        requested: targetText(open.target),
        ms: Date.now() - t0,
        ...counts.fields(),
      });
    }
  }
}

/** One association: its sockets, names resolved, and the stream's writer. */
class Association {
  readonly #sides = new Map<Family, Promise<Side | null>>();
  readonly #names = new Map<string, { ips: string[]; until: number }>();
  readonly #writer: RecordWriter;
  #ended = false;

  constructor(
    readonly agent: AgentUdp,
    readonly wire: Wire,
    readonly rules: Rule[],
    readonly counts: UdpCounts,
    readonly log: Logger,
  ) {
    this.#writer = new RecordWriter(wire.conn, () => this.#end());
  }

  async run(): Promise<void> {
    try {
      await readRecords(this.wire.conn, this.wire.rest(), (r) => this.#out(r.addr, r.data));
    } catch (e) {
      if (e instanceof ProtocolError) {
        this.log.warn("bad datagram record, closing the association", { error: e.message });
      }
    } finally {
      this.#end();
    }
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.wire.conn.close();
    for (const p of this.#sides.values()) {
      void p.then((s) => {
        if (!s) return;
        clearTimeout(s.timer);
        s.sock.close();
      });
    }
  }

  /** A datagram from the client toward `target`: check, resolve, send, or drop. */
  #out(target: Target, data: Uint8Array): void {
    const n = normalizeTarget(target);
    if (!n.ok) return this.counts.drop("refused");
    const t = n.target;
    if (t.type !== "domain") {
      if (!this.rules.some((r) => matchRule(r, t, "never", "udp"))) {
        return this.counts.drop("refused");
      }
      return this.#send(t.host, t.port, data);
    }
    // A name: a host rule allows any of its addresses; CIDR rules only those inside.
    const byName = this.rules.some((r) => r.kind === "host" && matchRule(r, t, "never", "udp"));
    const byCidr = this.rules.some((r) => r.kind !== "host" && matchRule(r, t, "defer", "udp"));
    if (!byName && !byCidr) return this.counts.drop("refused");
    void this.#resolve(t.host).then((ips) => {
      if (ips === null) return this.counts.drop("unreachable");
      const ip = byName
        ? ips[0]
        : ips.find((ip) => this.rules.some((r) => matchRule(r, t, [ip], "udp")));
      if (ip === undefined) return this.counts.drop(byName ? "unreachable" : "refused");
      this.#send(ip, t.port, data);
    });
  }

  /** The addresses of `name` (normalized, at most {@link NAMES} kept), or null. */
  async #resolve(name: string): Promise<string[] | null> {
    const now = Date.now();
    const known = this.#names.get(name);
    if (known && known.until > now) return known.ips;
    let ips: string[];
    try {
      ips = (await this.agent.net.lookup(name)).map(normalizeIP).filter((ip) => ip !== null);
    } catch {
      return null;
    }
    if (this.#names.size >= NAMES) this.#names.delete(this.#names.keys().next().value!);
    this.#names.set(name, { ips, until: now + NAME_TTL_MS });
    return ips;
  }

  #send(host: string, port: number, data: Uint8Array): void {
    if (this.#ended) return;
    const family = ipKind(host);
    if (family === null) return this.counts.drop("refused");
    void this.#side(family).then((s) => {
      if (s === null) return this.counts.drop("unreachable");
      if (!s.waiting.take(data.length)) return this.counts.drop("backpressure");
      const key = `${host} ${port}`;
      s.peers.delete(key);
      s.peers.set(key, true);
      if (s.peers.size > PEERS) s.peers.delete(s.peers.keys().next().value!);
      s.last = Date.now();
      this.counts.up(data.length);
      s.sock.send(data, { host, port }).then(
        () => s.waiting.done(data.length),
        () => {
          s.waiting.done(data.length);
          this.counts.drop("unreachable");
        },
      );
    });
  }

  /** The association's socket of `family`, bound on first use; null if it cannot be bound. */
  #side(family: Family): Promise<Side | null> {
    let p = this.#sides.get(family);
    if (p) return p;
    p = this.agent.net.bindUdp({ host: family === "ipv4" ? "0.0.0.0" : "::" }).then(
      (sock) => {
        if (this.#ended) {
          sock.close();
          return null;
        }
        this.agent.sockets++;
        void sock.closed.then(() => this.agent.sockets--);
        const s: Side = {
          sock,
          peers: new Map(),
          waiting: new Waiting(),
          last: Date.now(),
          timer: setTimeout(() => this.#idle(family, s), this.agent.idleMs),
        };
        void this.#receive(s);
        return s;
      },
      (e) => {
        this.log.warn("cannot bind a UDP socket", { family, error: String(e) });
        this.#sides.delete(family);
        return null;
      },
    );
    this.#sides.set(family, p);
    return p;
  }

  /** Close `s` if it has been idle for `udp_idle`, else look again when it would be. */
  #idle(family: Family, s: Side): void {
    const left = s.last + this.agent.idleMs - Date.now();
    if (left > 0) {
      s.timer = setTimeout(() => this.#idle(family, s), left);
      return;
    }
    this.log.debug("udp socket idle, closing", { family, limit: "udp_idle" });
    this.#sides.delete(family);
    s.sock.close();
  }

  /** Replies on `s`, framed back with their source; only from addresses it has sent to. */
  async #receive(s: Side): Promise<void> {
    for (let d = await s.sock.receive(); d !== null; d = await s.sock.receive()) {
      const host = normalizeIP(d.from.host) ?? d.from.host;
      if (!s.peers.has(`${host} ${d.from.port}`)) {
        this.counts.drop("unsolicited");
        continue;
      }
      s.last = Date.now();
      const kind = ipKind(host) ?? "ipv4";
      if (!this.#writer.send({ type: kind, host, port: d.from.port }, d.data)) {
        this.counts.drop("backpressure");
        continue;
      }
      this.counts.down(d.data.length);
    }
    this.counts.drop("queue", s.sock.dropped);
  }
}
