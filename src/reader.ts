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
  #buf: Uint8Array = new Uint8Array(0);
  constructor(readonly conn: Conn, readonly limit = 4096) {}

  /** Read until `parse` returns a message; throws EofError at EOF, its own error on bad input. */
  async parse<T>(parse: Parse<T>, what: string): Promise<T> {
    for (;;) {
      if (this.#buf.length > 0) {
        const r = parse(this.#buf);
        if (r) {
          this.#buf = this.#buf.subarray(r.size);
          return r.value;
        }
      }
      if (this.#buf.length >= this.limit) {
        throw new EofError(`${what} longer than ${this.limit} bytes`);
      }
      const chunk = await this.conn.read();
      if (chunk === null) throw new EofError(`connection closed during ${what}`);
      if (this.#buf.length === 0) this.#buf = chunk;
      else {
        const b = new Uint8Array(this.#buf.length + chunk.length);
        b.set(this.#buf);
        b.set(chunk, this.#buf.length);
        this.#buf = b;
      }
    }
  }

  /** Bytes read past the last parsed message. */
  rest(): Uint8Array {
    const r = this.#buf;
    this.#buf = new Uint8Array(0);
    return r;
  }
}
