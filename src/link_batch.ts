/**
 * One write of a link (link_writer.ts): the frames it takes from its queues,
 * handed to the connection without copying a large DATA body.
 *
 * A DATA frame is queued as its body (a view of what the stream's reader
 * read) and gets its header only here: the headers, the other frames and
 * the small bodies are copied into one buffer, and each body of
 * {@link COPY_LIMIT} bytes or more is handed on as it is, between the
 * views of that buffer. A Conn with `writev` (Node's sockets: one `writev`,
 * over TLS one `SSL_write` of what Node joins natively) takes the parts in
 * one call, so no JavaScript buffer of a frame's size is made for it (on
 * Node each counts as external memory, and enough of them start V8's
 * collections: issue 26). Elsewhere each large body is joined to the part
 * before it (its header at the end), so every write is whole frames and
 * there are no more writes than frames, as when every frame was encoded
 * into a buffer of its own.
 *
 * @module
 */
import { dataHeader, LINK_HEADER_SIZE } from "./link_frame.ts";
import type { Conn } from "./net.ts";

/** Bodies this large go to the connection as they are, not copied into the batch's buffer. */
export const COPY_LIMIT = 16 * 1024;
const RESOLVED = Promise.resolve();

export class LinkBatch {
  /** Whole frames, and the bodies of DATA frames (a FIN: an empty body). */
  readonly parts: Uint8Array[] = [];
  /** Per part: 0 for a whole frame, else the stream of the DATA or FIN body. */
  readonly streams: number[] = [];
  /** Bytes of the frames, headers included. */
  bytes = 0;

  get length(): number {
    return this.parts.length;
  }

  /** A whole frame (encoded). */
  frame(f: Uint8Array): void {
    this.parts.push(f);
    this.streams.push(0);
    this.bytes += f.length;
  }

  /** Stream `stream`'s DATA frame with body `body` (checked before), or its FIN if `body` is empty. */
  data(stream: number, body: Uint8Array): void {
    this.parts.push(body);
    this.streams.push(stream);
    this.bytes += LINK_HEADER_SIZE + body.length;
  }

  /** Hand the frames to `conn`, in order; resolves as the last write does. */
  write(conn: Conn): Promise<void> {
    const out = this.#gather();
    if (conn.writev) return conn.writev(out);
    let last: Promise<void> = RESOLVED;
    // out is [small, body, small, body, …, small?]: each body after the
    // part that ends in its header.
    for (let i = 0; i < out.length; i += 2) {
      const head = out[i]!;
      const body = out[i + 1];
      let buf = head;
      if (body) {
        buf = new Uint8Array(head.length + body.length);
        buf.set(head);
        buf.set(body, head.length);
      }
      last.catch(() => {}); // the last write's promise stands for all
      last = conn.write(buf);
    }
    return last;
  }

  /** The parts to write: views of one buffer (small parts, headers) and the large bodies. */
  #gather(): Uint8Array[] {
    const { parts, streams } = this;
    let small = 0;
    for (let i = 0; i < parts.length; i++) {
      const n = parts[i]!.length;
      if (streams[i] === 0) small += n;
      else small += LINK_HEADER_SIZE + (n < COPY_LIMIT ? n : 0);
    }
    const buf = new Uint8Array(small);
    const out: Uint8Array[] = [];
    let at = 0;
    let from = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const stream = streams[i]!;
      if (stream !== 0) {
        dataHeader(buf, at, stream, p.length);
        at += LINK_HEADER_SIZE;
        if (p.length >= COPY_LIMIT) {
          out.push(buf.subarray(from, at), p);
          from = at;
          continue;
        }
      }
      buf.set(p, at);
      at += p.length;
    }
    if (at > from) out.push(from === 0 ? buf : buf.subarray(from, at));
    return out;
  }
}
