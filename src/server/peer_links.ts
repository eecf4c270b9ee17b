/**
 * The dialing side of peer links (SPEC.md §2.6): a link to each peer this
 * server needs, dialed on demand (TLS pinned to the fleet's certificates,
 * then the handshake of peer_handshake.ts), kept while it carries streams and
 * drained after `peer.idle` without one. On it, a CONNECT this server
 * decided goes to the server that holds the agent's session (FORWARD), as
 * does a login check (FORWARD_CHECK), and the fleet view asks the others
 * what they hold (FLEET).
 *
 * @module
 */
import { fmt } from "../addr.ts";
import { NetError } from "../errors.ts";
import { Link } from "../link.ts";
import type { Logger } from "../log.ts";
import { type MessageOf, Reason, RuleProtocol, Status, type Target } from "../messages.ts";
import type { Conn, Net, TlsClientOptions } from "../net.ts";
import { deadline } from "../time.ts";
import { ok, type Result } from "../result.ts";
import { Wire } from "../wire.ts";
import type { Forwarder, ServerContext } from "./context.ts";
import type { Checked } from "./login_check.ts";
import { dialHandshake } from "./peer_handshake.ts";
import type { PeerAddress, PeerDirectory } from "./peer_directory.ts";
import {
  byteRelay,
  type OpenRequest,
  type OpenResult,
  refuse,
  type Refused,
} from "./replica_open.ts";

/** The largest answer to FLEET this server reads (SPEC.md §10.1, `peer_fleet_bytes`). */
export const MAX_FLEET_BYTES = 16 * 1024 * 1024;
/** How long a FLEET request may take. */
const FLEET_TIMEOUT_MS = 5000;

/** The FLEET ops (SPEC.md §5.24). */
export const FleetOp = {
  view: 1,
  disconnect_agent: 2,
  disconnect_replica: 3,
  close_stream: 4,
} as const;

interface Held {
  peer: string;
  link: Link;
  /** Streams open on it now. */
  streams: number;
  idle: ReturnType<typeof setTimeout> | undefined;
  /** Waiting for a GRANT. */
  waiters: Array<() => void>;
}

export interface PeerLinkParams {
  net: Net;
  ctx: ServerContext;
  /** The fleet secret's key (peer_handshake.ts `peerKey`). */
  key: Uint8Array;
  /** The CA's PEM text when `peer.ca` is set. */
  caPem: string | null;
  directory: PeerDirectory;
}

export class PeerLinks implements Forwarder {
  readonly #links = new Map<string, Promise<Held>>();
  #closed = false;

  constructor(readonly p: PeerLinkParams) {}

  /** Links open now (metrics, tests). */
  get size(): number {
    return this.#links.size;
  }

  /**
   * Forward a CONNECT (a TCP stream or a UDP association) this server
   * decided to a server holding `agent` (FORWARD); its CONNECT_RESULT is
   * the answer. Null when no other server holds the agent.
   */
  async forward(
    req: OpenRequest,
    target: Target,
    agent: string,
    streamId: number,
  ): Promise<OpenResult | null> {
    const { client, log } = req;
    const protocol = RuleProtocol[req.protocol ?? "tcp"];
    const r = await this.#toHolder(
      agent,
      { type: "FORWARD", client, agent, protocol, target: req.target },
      log,
    );
    if (!r?.ok) return r;
    const { wire, bound } = r.value;
    return ok({
      conn: wire.conn,
      rest: wire.rest(),
      bound,
      streamId,
      agent,
      target,
      session: null,
      // A UDP association's: records, checked against the grant here, again by the holder.
      relay: req.relay ?? byteRelay,
    });
  }

  /**
   * A login check (FORWARD_CHECK) of `client` for `agent`, decided by a
   * server holding it: its answer, with the agent's nameserver. Null when no
   * other server holds the agent.
   */
  async check(
    client: string,
    agent: string,
    log: Logger,
  ): Promise<Result<Checked, Refused> | null> {
    const r = await this.#toHolder(agent, { type: "FORWARD_CHECK", client, agent }, log);
    if (!r?.ok) return r;
    r.value.wire.conn.close();
    return ok({ agent, nameserver: r.value.bound, holder: r.value.holder });
  }

  /**
   * Send `msg` on a new stream to a server holding `agent`, in the
   * presence's order: the stream once one answers CONNECT_RESULT with status
   * 0, or its refusal. A holder that cannot be reached, or that answers
   * `agent_offline` (its session ended since), makes way for the next.
   * Null when no other server holds the agent.
   */
  async #toHolder(
    agent: string,
    msg: MessageOf<"FORWARD"> | MessageOf<"FORWARD_CHECK">,
    log: Logger,
  ): Promise<Result<{ wire: Wire; bound: Target; holder: string }, Refused> | null> {
    const holders = this.p.directory.holders(agent);
    if (holders.length === 0) return null;
    const c = this.p.ctx.config();
    for (const h of holders) {
      let conn: Conn;
      try {
        conn = await this.#stream(h);
      } catch (e) {
        log.warn("peer unreachable", { peer: h.name, error: (e as Error).message });
        continue;
      }
      const wire = new Wire(conn);
      try {
        await wire.send(msg);
        const res = await deadline(
          wire.expect("CONNECT_RESULT"),
          c.poolWaitMs + c.openTimeoutMs,
          msg.type,
          () => conn.close(),
        );
        if (res.status === Status.succeeded) return ok({ wire, bound: res.bound, holder: h.name });
        conn.close();
        // Its session ended since the presence said otherwise: the next holder may have one.
        if (res.reason === Reason.agent_offline && h !== holders.at(-1)) continue;
        return refuse(res.status, res.reason, `refused by peer ${h.name} (reason ${res.reason})`);
      } catch (e) {
        conn.close();
        log.warn("forward failed", { peer: h.name, error: (e as Error).message });
      }
    }
    return refuse(
      Status.host_unreachable,
      Reason.agent_offline,
      `agent ${agent} is on ${holders.map((h) => h.name).join(", ")}, which could not be reached`,
    );
  }

  /** Ask every other live server (FLEET): the JSON answers, by server; one that fails is left out. */
  async ask(op: number, arg = ""): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    await Promise.all(
      this.p.directory.peers().map(async (h) => {
        try {
          out.set(h.name, await this.askOne(h, op, arg));
        } catch (e) {
          this.p.ctx.log.warn("fleet request failed", {
            peer: h.name,
            error: (e as Error).message,
          });
        }
      }),
    );
    return out;
  }

  /** One FLEET request to `h`: its JSON answer. Throws when it cannot be had. */
  async askOne(h: PeerAddress, op: number, arg: string): Promise<unknown> {
    const conn = await this.#stream(h);
    try {
      return await deadline(
        (async () => {
          await new Wire(conn).send({ type: "FLEET", op, arg });
          const parts: Uint8Array[] = [];
          let total = 0;
          for (let b = await conn.read(); b !== null; b = await conn.read()) {
            total += b.length;
            if (total > MAX_FLEET_BYTES) {
              this.p.ctx.admission.limitHit("peer_fleet_bytes", {
                peer: h.name,
                max: MAX_FLEET_BYTES,
              });
              throw new NetError("ECONNRESET", `FLEET answer over ${MAX_FLEET_BYTES} bytes`);
            }
            parts.push(b);
          }
          const all = new Uint8Array(total);
          let at = 0;
          for (const b of parts) (all.set(b, at), at += b.length);
          return JSON.parse(new TextDecoder().decode(all)) as unknown;
        })(),
        FLEET_TIMEOUT_MS,
        "FLEET",
        () => conn.close(),
      );
    } finally {
      conn.close();
    }
  }

  close(): void {
    this.#closed = true;
    for (const h of this.#links.values()) {
      void h.then((x) => (clearTimeout(x.idle), x.link.close()), () => {});
    }
    this.#links.clear();
  }

  /** A new stream on the link to `h`, dialing it first if need be, within the grants. */
  async #stream(h: PeerAddress): Promise<Conn> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const held = await this.#linkTo(h);
      if (!held.link.usable) {
        this.#forget(h.name, held);
        continue;
      }
      if (held.link.credit === 0) {
        const wait = this.p.ctx.config().poolWaitMs;
        const got = await deadline(
          new Promise<void>((r) => held.waiters.push(r)),
          wait,
          "peer grant",
        ).then(() => true, () => false);
        if (!got) {
          this.p.ctx.admission.limitHit("peer_streams_per_link", { peer: h.name });
          throw new NetError("ETIMEDOUT", `no stream granted by ${h.name} within ${wait} ms`);
        }
      }
      const conn = held.link.open();
      held.streams++;
      clearTimeout(held.idle);
      void conn.closed.then(() => {
        if (--held.streams === 0) this.#armIdle(held);
      });
      return conn;
    }
    throw new NetError("ECONNRESET", `the link to ${h.name} keeps failing`);
  }

  #armIdle(held: Held): void {
    clearTimeout(held.idle);
    if (this.#closed || !held.link.usable) return;
    held.idle = setTimeout(() => {
      if (held.streams > 0) return;
      this.p.ctx.log.info("peer link idle, closing", { peer: held.peer });
      this.#forget(held.peer, held);
      held.link.drain();
    }, this.p.ctx.config().peer?.idleMs ?? 60_000);
  }

  #forget(name: string, held: Held): void {
    void this.#links.get(name)?.then((x) => {
      if (x === held) this.#links.delete(name);
    }, () => {});
  }

  #linkTo(h: PeerAddress): Promise<Held> {
    const known = this.#links.get(h.name);
    if (known) return known;
    const made = this.#dial(h);
    this.#links.set(h.name, made);
    made.catch(() => {
      if (this.#links.get(h.name) === made) this.#links.delete(h.name);
    });
    return made;
  }

  async #dial(h: PeerAddress): Promise<Held> {
    if (this.#closed) throw new NetError("ECLOSED", "the server is stopping");
    const { ctx, net, key } = this.p;
    const c = ctx.config();
    const peer = c.peer!;
    const tls: TlsClientOptions = peer.fingerprint.length > 0
      ? { fingerprint: peer.fingerprint }
      : { ca: [this.p.caPem ?? ""], serverName: peer.serverName ?? h.advertise.host };
    let conn: Conn;
    try {
      conn = await net.dial({ ...h.advertise, tls, timeoutMs: c.handshakeTimeoutMs });
    } catch (e) {
      if (e instanceof NetError && e.code === "ETLS") {
        ctx.log.error("peer refused: its certificate is not the fleet's", {
          peer: h.name,
          advertise: fmt(h.advertise),
          error: e.message,
        });
      }
      throw e;
    }
    const hs = await dialHandshake(conn, this.p.directory.self, key, c.handshakeTimeoutMs).catch(
      (e) => {
        conn.close();
        ctx.log.error("peer link refused", { peer: h.name, error: (e as Error).message });
        throw e;
      },
    );
    const held: Held = { peer: hs.peer, link: null!, streams: 0, idle: undefined, waiters: [] };
    held.link = new Link(hs.conn, {
      onGrant: () => {
        for (const w of held.waiters.splice(0)) w();
      },
      frameTimeoutMs: c.heartbeatTimeoutMs,
      onLimit: (limit, max) => ctx.admission.limitHit(limit, { peer: h.name, max }),
      onClose: (why) => {
        clearTimeout(held.idle);
        this.#forget(h.name, held);
        if (why) ctx.log.info("peer link ended", { peer: h.name, error: why.message });
      },
    }, hs.rest);
    ctx.log.info("peer link up", { peer: hs.peer, advertise: fmt(h.advertise), role: "dialer" });
    ctx.metrics.inc("burrow_peer_links_total", "Peer links made", { role: "dialer" });
    this.#armIdle(held);
    return held;
  }
}
