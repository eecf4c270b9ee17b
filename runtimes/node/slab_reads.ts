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
 * handed to the socket's `data` listeners as it was before. A slab starts
 * at 4 KiB and doubles while reads come in bulk, up to 64 KiB (what a plain
 * socket's read holds), so an idle connection keeps a small one.
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

/** Bytes of a slab under bulk load: a record (≤ 16 KiB) fits 4 times. */
export const SLAB = 64 * 1024;
/** Bytes of the first slab, and of the next one after a short read: an idle socket holds little. */
const SMALL_SLAB = 4 * 1024;
/** The largest TLS record's plaintext. */
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
  let slab: Uint8Array = new Uint8Array(0);
  let at = 0;
  /** The last read filled what it was offered or was a whole record: bulk. */
  let full = false;
  /**
   * The rest of the slab, or a new one once a quarter of it (at most a
   * record) does not fit: twice as large after bulk reads, up to
   * {@link SLAB}; {@link SMALL_SLAB} after a short one.
   */
  const next = (): Uint8Array => {
    if (slab.length - at < Math.min(RECORD, slab.length / 4) || slab.length === 0) {
      const size = full ? Math.min(SLAB, slab.length * 2) : SMALL_SLAB;
      slab = Buffer.allocUnsafeSlow(size); // no zeroing: every byte handed on was written
      at = 0;
    }
    return slab.subarray(at);
  };
  const first = next();
  s[kBufferGen] = next;
  s[kBufferCb] = (n: number) => {
    full = n >= RECORD || at + n === slab.length;
    const chunk = slab.subarray(at, at + n);
    at += n;
    sock.emit("data", chunk);
  };
  s[kBuffer] = first;
  handle.useUserBuffer(first);
  return true;
}
