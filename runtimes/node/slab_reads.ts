/**
 * Reads of a Node `tls.TLSSocket` into slabs (issue 26, Node over TLS).
 *
 * Node's TLS socket hands its reader one fresh buffer per TLS record
 * (OpenSSL decrypts ≤ 16 KiB at a time), each pushed through the readable
 * stream's machinery. A link frame of 32 KiB then lies in three chunks and
 * the link framer copies it together (a third of the bulk data path's CPU
 * on the receiving side went to that copy, its zeroed allocation and the
 * per-record buffers). Here the socket decrypts into large slabs instead,
 * record after record, so that consecutive records are adjacent views of
 * one buffer (which `LinkFramer` joins without copying); each view is
 * handed to the socket's `data` listeners as it was before.
 *
 * This is what `net.Socket`'s `onread` option does (a buffer, or a
 * function giving the next one, and a callback), which `node:tls` takes
 * only for a socket it dials itself, not for a server socket wrapped
 * around an accepted one. So the option's three internal fields are set as
 * the `net.Socket` constructor sets them, and the handle is told to use the
 * buffer; where Node lacks any of them (another version), nothing changes.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type * as tls from "node:tls";

/** Bytes of one slab: a record (≤ 16 KiB) fits at least 3 times. */
export const SLAB = 64 * 1024;
/** A new slab is started when less than a whole record would fit. */
const RECORD = 16 * 1024;

type Internal = Record<symbol, unknown> & {
  _handle?: { useUserBuffer?: (buf: Uint8Array) => void } | null;
};

/**
 * Makes `sock` read into slabs; call it before the socket first reads (at
 * creation, or on `secureConnect` before the data listener is attached).
 * Returns false where this Node has no way to (nothing changed then).
 */
export function slabReads(sock: tls.TLSSocket): boolean {
  const s = sock as unknown as Internal;
  const keys = Object.getOwnPropertySymbols(s);
  const key = (name: string) => keys.find((k) => k.description === name);
  const kBuffer = key("kBuffer"), kBufferCb = key("kBufferCb"), kBufferGen = key("kBufferGen");
  const handle = s._handle;
  if (!kBuffer || !kBufferCb || !kBufferGen || typeof handle?.useUserBuffer !== "function") {
    return false;
  }
  if (s[kBuffer] !== null) return false; // it reads into a buffer of its own already
  let slab = new Uint8Array(0);
  let at = 0;
  /** The rest of the slab (a new one when a record might not fit). */
  const next = (): Uint8Array => {
    if (slab.length - at < RECORD) {
      slab = Buffer.allocUnsafeSlow(SLAB); // no zeroing: every byte handed on was written
      at = 0;
    }
    return slab.subarray(at);
  };
  const first = next();
  s[kBufferGen] = next;
  s[kBufferCb] = (n: number) => {
    const chunk = slab.subarray(at, at + n);
    at += n;
    sock.emit("data", chunk);
  };
  s[kBuffer] = first;
  handle.useUserBuffer(first);
  return true;
}
