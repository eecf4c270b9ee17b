/**
 * Small timer helpers on web-standard setTimeout. Every timer they create is
 * cleared when the work it guards settles, so nothing keeps a process alive.
 *
 * @module
 */
import { TimeoutError } from "./errors.ts";
import { err, ok, type Result } from "./result.ts";

/** `p`, or a TimeoutError after `ms` (and `onTimeout()` is called). */
export function deadline<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  onTimeout?: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new TimeoutError(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Read `500ms`, `10s`, `2m` or `1h`. A bare number is refused (is `5` five
 * milliseconds or five seconds?): the error shows the form with a unit.
 * Never throws: config.ts's `parseDuration` turns a failure into a
 * ConfigError.
 */
export function readDuration(text: string | number): Result<number> {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(String(text));
  if (!m) {
    return err(`Cannot parse duration "${text}": expected e.g. 500ms, 10s, 2m`);
  }
  if (m[2] === undefined) {
    return err(
      `Cannot parse duration "${text}": a unit is needed: ${m[1]}s (or ${m[1]}ms, ` +
        `${m[1]}m, ${m[1]}h)`,
    );
  }
  const n = Number(m[1]);
  const unit = m[2];
  return ok(
    Math.round(n * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60000 : 3600000)),
  );
}

/**
 * Runs `f` once this turn's I/O callbacks are done (`setImmediate`, which
 * Node, Deno and Bun all have; it is no web standard, so where it is
 * missing, after this turn's microtasks). Work queued for it from many
 * callbacks of one turn runs once: one write, one request.
 */
export const afterTurn: (f: () => void) => void =
  (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate ?? queueMicrotask;
