/**
 * Accumulates bytes from a connection until a parser can take a whole
 * message: for the unframed SOCKS5 handshake (SPEC.md §8).
 *
 * @module
 */
import type { Conn } from "./net.ts";
import { EofError } from "./errors.ts";

export type Parse<T> = (buf: Uint8Array) => { value: T; size: number } | null;

export class Reader {
  #buf: Uint8Array;
  /** `initial`: bytes already read from `conn` (another Reader's rest), at most `limit` of them. */
  constructor(readonly conn: Conn, readonly limit = 4096, initial: Uint8Array = new Uint8Array(0)) {
    this.#buf = initial;
  }

  /**
   * Read until `parse` returns a message; throws EofError at EOF, its own
   * error on bad input, and EofError when the message would be longer than
   * `limit`. The limit holds before anything is kept: at most `limit` bytes
   * are ever copied together; bytes of a chunk past the limit are parsed
   * only as what follows a message that ended within it.
   */
  async parse<T>(parse: Parse<T>, what: string): Promise<T> {
    for (;;) {
      if (this.#buf.length > 0) {
        const r = parse(this.#buf);
        // Bytes kept from an earlier chunk may exceed the limit; a message may not.
        if (r && r.size > this.limit) throw this.#tooLong(what);
        if (r) {
          this.#buf = this.#buf.subarray(r.size);
          return r.value;
        }
      }
      if (this.#buf.length >= this.limit) throw this.#tooLong(what);
      const chunk = await this.conn.read();
      if (chunk === null) throw new EofError(`connection closed during ${what}`);
      const room = this.limit - this.#buf.length;
      if (chunk.length <= room) {
        this.#buf = this.#buf.length === 0 ? chunk : concat(this.#buf, chunk);
        continue;
      }
      // Over the limit: only the part that fits is joined and parsed.
      const had = this.#buf.length;
      const head = concat(this.#buf, chunk.subarray(0, room));
      const r = parse(head);
      if (!r) throw this.#tooLong(what);
      // The message did not end within `had` bytes (parse saw those), so it ends in `chunk`.
      this.#buf = chunk.subarray(r.size - had);
      return r.value;
    }
  }

  #tooLong(what: string): EofError {
    return new EofError(`${what} longer than ${this.limit} bytes`);
  }

  /** Bytes read past the last parsed message. */
  rest(): Uint8Array {
    const r = this.#buf;
    this.#buf = new Uint8Array(0);
    return r;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
