/**
 * Issued tokens (SPEC.md §6.4): the server-signed credential of a client or
 * a signed-in person, with its own id and expiry. This module is the codec
 * (bytes and base64url text) and the signing data; keeping keys, issuing,
 * revoking and checking is server/tokens.ts.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { IssuedToken as Parsed } from "../generated/IssuedToken.js";
import { type Credential, toHex } from "./auth.ts";
import { kaitaiStream, utf8 } from "./kaitai.ts";
import { AuthMethod, TokenKind } from "../generated/enums.ts";

export { TokenKind };

/** Subject bytes (SPEC.md §6.4). */
export const SUBJECT_MAX = 96;
/** Bytes before the subject, and the signature after it. */
const HEAD = 1 + 1 + 4 + 16 + 4 + 4 + 1;
const SIG = 64;
/** The text of the longest token: base64url of HEAD + SUBJECT_MAX + SIG = 191 bytes. */
export const TOKEN_TEXT_MAX = 255;
const TEXT_MIN = Math.ceil(((HEAD + 1 + SIG) * 4) / 3);

export type TokenKindName = "client" | "person";

/** A token's fields, as decoded; its signature not yet checked. */
export interface IssuedToken {
  kind: TokenKindName;
  keyId: number;
  /** 32 lowercase hex digits. */
  id: string;
  /** Unix seconds. */
  issuedAt: number;
  /** Unix seconds. */
  expiresAt: number;
  subject: string;
  /** What the signature covers ({@link signingData} of these). */
  signed: Uint8Array;
  signature: Uint8Array;
}

const enc = new TextEncoder();
const PREFIX = enc.encode("burrow-v1 issued token\0");

/** What a token's signature is over: the domain string and `body` (every byte before the signature). */
export function signingData(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREFIX.length + body.length);
  out.set(PREFIX);
  out.set(body, PREFIX.length);
  return out;
}

/** The key id of a raw 32-byte Ed25519 public key: the first 4 bytes of its SHA-256. */
export function keyIdOf(publicKey: Uint8Array): number {
  const h = sha256(publicKey);
  return new DataView(h.buffer, h.byteOffset).getUint32(0);
}

/** The bytes before the signature, or a TypeError naming what is out of range. */
export function tokenBody(t: {
  kind: TokenKindName;
  keyId: number;
  id: Uint8Array;
  issuedAt: number;
  expiresAt: number;
  subject: string;
}): Uint8Array {
  const subject = enc.encode(t.subject);
  if (subject.length < 1 || subject.length > SUBJECT_MAX) {
    throw new TypeError(`Cannot issue token: subject must be 1..${SUBJECT_MAX} bytes`);
  }
  if (t.id.length !== 16) throw new TypeError("Cannot issue token: token id must be 16 bytes");
  if (!(t.expiresAt > t.issuedAt && t.issuedAt >= 0 && t.expiresAt <= 0xffffffff)) {
    throw new TypeError("Cannot issue token: expiry must follow issue, within 32-bit seconds");
  }
  const out = new Uint8Array(HEAD + subject.length);
  const v = new DataView(out.buffer);
  out[0] = 1;
  out[1] = TokenKind[t.kind];
  v.setUint32(2, t.keyId >>> 0);
  out.set(t.id, 6);
  v.setUint32(22, t.issuedAt);
  v.setUint32(26, t.expiresAt);
  out[30] = subject.length;
  out.set(subject, HEAD);
  return out;
}

/** A token's text: base64url without padding of `body` and `signature`. */
export function tokenText(body: Uint8Array, signature: Uint8Array): string {
  const all = new Uint8Array(body.length + signature.length);
  all.set(body);
  all.set(signature, body.length);
  let s = "";
  for (const b of all) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The token `text` is, or null when it is not one (SPEC.md §6.4: any other
 * password is a static token). Only the shape is checked here, never the
 * signature. The length is checked before anything is decoded.
 */
export function parseToken(text: string): IssuedToken | null {
  if (text.length < TEXT_MIN || text.length > TOKEN_TEXT_MAX || text.length % 4 === 1) return null;
  if (!B64URL.test(text)) return null;
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  // Exact length first: base64url text has one encoding per byte string only
  // without stray bits, so the text must also be what the bytes encode to.
  if (bytes.length !== HEAD + (bytes[30] ?? 0) + SIG || bytes[0] !== 1) return null;
  let p: Parsed;
  let subject: string;
  try {
    p = new Parsed(kaitaiStream(bytes));
    subject = utf8(p.subject, "subject");
  } catch {
    return null;
  }
  if (p.expiresAt <= p.issuedAt) return null;
  const signed = bytes.subarray(0, bytes.length - SIG);
  if (tokenText(signed, p.signature) !== text) return null;
  return {
    kind: p.kind === TokenKind.client ? "client" : "person",
    keyId: p.keyId,
    id: toHex(p.tokenId),
    issuedAt: p.issuedAt,
    expiresAt: p.expiresAt,
    subject,
    signed,
    signature: p.signature,
  };
}

/**
 * The client proxy's credential for an issued token (SPEC.md §6.2 method
 * issued_token: the token's bytes as the proof), or null when `text` is not
 * an issued token.
 */
export function issuedCredential(text: string): Credential | null {
  const t = parseToken(text);
  if (!t) return null;
  const bytes = new Uint8Array(t.signed.length + t.signature.length);
  bytes.set(t.signed);
  bytes.set(t.signature, t.signed.length);
  return { method: AuthMethod.issued_token, prove: () => Promise.resolve(bytes.slice()) };
}
