/**
 * The handshake of a peer link (SPEC.md §2.6, §6.5): PEER_HELLO,
 * CHALLENGE, AUTH, PEER_WELCOME, each side proving over both nonces that it
 * holds the fleet secret. What follows is link frames (link.ts); `rest` is
 * what was read of them with the handshake.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, randomBytes, timingSafeEqual } from "../auth.ts";
import { ProtocolError } from "../errors.ts";
import { VERSION_MAX, VERSION_MIN } from "../messages.ts";
import type { Conn } from "../net.ts";
import { deadline } from "../time.ts";
import { Wire } from "../wire.ts";
import { negotiate } from "./login.ts";

const enc = new TextEncoder();

/** SPEC.md §6.5: the HMAC key of the fleet secret. */
export function peerKey(secret: string): Uint8Array {
  return sha256(concat([enc.encode("burrow-v1 peer"), Uint8Array.of(0), enc.encode(secret)]));
}

/** SPEC.md §6.5: what each side of a peer link proves. */
function proof(
  key: Uint8Array,
  role: "dial" | "accept",
  version: number,
  nonceA: Uint8Array,
  nonceD: Uint8Array,
  dialer: string,
): Uint8Array {
  const n = enc.encode(dialer);
  return hmac(
    sha256,
    key,
    concat([
      enc.encode(`burrow-v1 peer ${role}`),
      Uint8Array.of(0, version),
      nonceA,
      nonceD,
      Uint8Array.of(n.length),
      n,
    ]),
  );
}

/** A peer link whose handshake is done: the peer's name, and the link's first bytes. */
export interface PeerHandshake {
  conn: Conn;
  peer: string;
  rest: Uint8Array;
}

/**
 * The dialing side, on a connection whose TLS was verified: hello, prove,
 * check the acceptor's proof. Throws PeerError (the acceptor refused: ERROR),
 * ProtocolError `auth_failed` (the acceptor's proof is wrong) or what the
 * connection throws; bounded by `timeoutMs`.
 */
export function dialHandshake(
  conn: Conn,
  self: string,
  key: Uint8Array,
  timeoutMs: number,
): Promise<PeerHandshake> {
  const wire = new Wire(conn);
  return deadline(
    (async () => {
      const nonceD = randomBytes(32);
      await wire.send({
        type: "PEER_HELLO",
        minVersion: VERSION_MIN,
        maxVersion: VERSION_MAX,
        name: self,
        nonce: nonceD,
      });
      const ch = await wire.expect("CHALLENGE");
      const mine = proof(key, "dial", ch.version, ch.nonce, nonceD, self);
      await wire.send({ type: "AUTH", proof: mine });
      const w = await wire.expect("PEER_WELCOME");
      const want = proof(key, "accept", ch.version, ch.nonce, nonceD, self);
      if (!timingSafeEqual(w.proof, want)) {
        throw new ProtocolError(
          "auth_failed",
          `Cannot take peer link: ${w.name} proved no fleet secret of ours (peer.token_file differs)`,
          { reply: false },
        );
      }
      return { conn, peer: w.name, rest: wire.rest() };
    })(),
    timeoutMs,
    "peer handshake",
    () => conn.close(),
  );
}

/**
 * The accepting side: read PEER_HELLO, challenge, check the dialer's proof
 * (a wrong one: ERROR `auth_failed`, then ProtocolError thrown), welcome
 * with our own proof. Bounded by `timeoutMs`.
 */
export function acceptHandshake(
  conn: Conn,
  self: string,
  key: Uint8Array,
  timeoutMs: number,
): Promise<PeerHandshake> {
  const wire = new Wire(conn);
  return deadline(
    (async () => {
      const hello = await wire.expect("PEER_HELLO");
      const version = negotiate(hello, "peer");
      const nonceA = randomBytes(32);
      await wire.send({ type: "CHALLENGE", version, nonce: nonceA });
      const auth = await wire.expect("AUTH");
      const want = proof(key, "dial", version, nonceA, hello.nonce, hello.name);
      if (!timingSafeEqual(auth.proof, want)) {
        await wire.fail("auth_failed", "authentication failed");
        throw new ProtocolError(
          "auth_failed",
          `Cannot take peer link: ${hello.name} proved no fleet secret of ours ` +
            "(peer.token_file differs)",
          { reply: false },
        );
      }
      const mine = proof(key, "accept", version, nonceA, hello.nonce, hello.name);
      await wire.send({ type: "PEER_WELCOME", name: self, proof: mine });
      return { conn, peer: hello.name, rest: wire.rest() };
    })(),
    timeoutMs,
    "peer handshake",
    () => conn.close(),
  );
}
