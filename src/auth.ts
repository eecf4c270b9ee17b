/**
 * Challenge-response proofs (SPEC.md §6) over WebCrypto, which Node, Deno and
 * Bun all provide. No secret ever leaves this module in any form but a proof.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { AuthMethod } from "./messages.ts";

const enc = new TextEncoder();

/** WebCrypto's types want an ArrayBuffer-backed view; ours always are. */
const bs = (u: Uint8Array) => u as Uint8Array<ArrayBuffer>;

/** The bytes of `parts`, one after the other. */
export function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** SPEC.md §6.1: what an agent or client proves it can sign. */
export function transcript(
  role: "agent" | "client",
  version: number,
  nonce: Uint8Array,
  name: string,
): Uint8Array {
  const n = enc.encode(name);
  return concat([
    enc.encode(`burrow-v1 ${role}`),
    Uint8Array.of(0, version),
    nonce,
    Uint8Array.of(n.length),
    n,
  ]);
}

/** SPEC.md §6.1: what a pool connection proves. */
export function poolTranscript(
  agentId: number,
  sessionId: Uint8Array,
  seq: number,
  nonce: Uint8Array,
): Uint8Array {
  return concat([
    enc.encode("burrow-v1 pool"),
    Uint8Array.of(0),
    u32(agentId),
    sessionId,
    u32(seq),
    nonce,
  ]);
}

/** The proving side: an agent or client proxy holding a secret. */
export interface Credential {
  readonly method: number;
  prove(data: Uint8Array): Promise<Uint8Array>;
}

/** The verifying side: the server holding a token or a public key. */
export interface Verifier {
  readonly method: number;
  verify(data: Uint8Array, proof: Uint8Array): Promise<boolean>;
}

/**
 * SPEC.md §6.2: the HMAC key of a token is `SHA-256("burrow-v1 token" 0x00 token)`.
 * The server may store this digest (`token_hash`) instead of the token.
 */
export function tokenHash(token: string): Uint8Array {
  return sha256(concat([enc.encode("burrow-v1 token"), Uint8Array.of(0), enc.encode(token)]));
}

/** Compare two byte strings in time that depends only on their lengths. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/*
 * HMAC-SHA256 runs synchronously in @noble/hashes: a pool connection costs
 * two HMACs, and WebCrypto's async round trip cost ~40 µs each on Node
 * (bench/README.md, "Data-path changes").
 */

/** SPEC.md §6.2 method 1. */
export function tokenCredential(token: string): Credential {
  const key = tokenHash(token);
  return { method: AuthMethod.token, prove: (data) => Promise.resolve(hmac(sha256, key, data)) };
}

/** SPEC.md §6.2 method 1, server side, from the token or from its 32-byte {@link tokenHash}. */
export function tokenVerifier(token: string | Uint8Array): Verifier {
  const key = typeof token === "string" ? tokenHash(token) : token;
  return {
    method: AuthMethod.token,
    verify: (data, proof) =>
      Promise.resolve(proof.length === 32 && timingSafeEqual(hmac(sha256, key, data), proof)),
  };
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s: string): Uint8Array | null {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) return null;
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s.trim());
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toBase64(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

/** SPEC.md §6.2 method 2. `privateKey` is base64 PKCS#8, as `burrow keygen` prints. */
export function ed25519Credential(privateKey: string): Credential {
  const key = crypto.subtle.importKey(
    "pkcs8",
    bs(fromBase64(privateKey)),
    { name: "Ed25519" },
    false,
    ["sign"],
  );
  return {
    method: AuthMethod.ed25519,
    prove: async (data) =>
      new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, await key, bs(data))),
  };
}

/** SPEC.md §6.2 method 2, server side. `publicKey` is base64 of the raw 32 bytes. */
export function ed25519Verifier(publicKey: string): Verifier {
  const raw = fromBase64(publicKey);
  if (raw.length !== 32) throw new TypeError("Cannot load Ed25519 public key: expected 32 bytes");
  const key = crypto.subtle.importKey("raw", bs(raw), { name: "Ed25519" }, false, ["verify"]);
  return {
    method: AuthMethod.ed25519,
    verify: async (data, proof) =>
      proof.length === 64 &&
      await crypto.subtle.verify({ name: "Ed25519" }, await key, bs(proof), bs(data)),
  };
}

/** A new Ed25519 key pair: base64 raw public key, base64 PKCS#8 private key. */
export async function generateKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  const k = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return {
    publicKey: toBase64(new Uint8Array(await crypto.subtle.exportKey("raw", k.publicKey))),
    privateKey: toBase64(new Uint8Array(await crypto.subtle.exportKey("pkcs8", k.privateKey))),
  };
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}
