/**
 * Rendezvous (highest random weight) hashing: which servers an agent keeps
 * its sessions with (`servers_per_agent`, README "A fleet of servers").
 * Each (agent name, server) pair has a weight from SHA-256; an agent ranks
 * the servers by weight, highest first, and uses the first K that answer.
 * Agents so spread evenly over the servers, and when a server comes or
 * goes only the agents that rank it among their first K move: about K/N of
 * them, none of the others.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";

const enc = new TextEncoder();

/**
 * The weight of server `key` (its `host:port`) for agent `name`: the first
 * 8 bytes of SHA-256(name 0x00 key), big-endian.
 */
export function rendezvousWeight(name: string, key: string): bigint {
  const n = enc.encode(name);
  const k = enc.encode(key);
  const buf = new Uint8Array(n.length + 1 + k.length);
  buf.set(n, 0);
  buf.set(k, n.length + 1);
  const d = sha256(buf);
  return new DataView(d.buffer, d.byteOffset, 8).getBigUint64(0);
}

/**
 * The servers `keys` in agent `name`'s order: the indexes of `keys`,
 * highest weight first (equal weights, which SHA-256 makes unlikely, by
 * key text, so that every agent and test sees one order).
 */
export function rendezvousOrder(name: string, keys: readonly string[]): number[] {
  const w = keys.map((k) => rendezvousWeight(name, k));
  return keys.map((_, i) => i).sort((a, b) =>
    w[a]! === w[b]! ? (keys[a]! < keys[b]! ? -1 : 1) : w[a]! > w[b]! ? -1 : 1
  );
}
