/**
 * The one shape of an outcome that is not an exception: a value, or why
 * there is none. Functions that refuse as part of their job (a bad target, a
 * refused handshake, an unparsable duration) return one; the caller tests
 * `ok` and reads `value` or `error`.
 */
export type Result<T, E = string> = Ok<T> | Err<E>;

/** The success side of a {@link Result}. */
export type Ok<T> = { ok: true; value: T };

/** The failure side of a {@link Result}: fits any `Result<T, E>`. */
export type Err<E> = { ok: false; error: E };

/** A success carrying `value`. */
export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

/** A failure carrying `error`. */
export function err<E>(error: E): Err<E> {
  return { ok: false, error };
}
