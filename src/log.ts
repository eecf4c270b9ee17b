/**
 * One-line structured logs (logfmt) on stderr. Callers pass only fields that
 * are safe to print: never a token, key or proof.
 *
 * @module
 */

export type Level = "debug" | "info" | "warn" | "error";
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: Fields): Logger;
}

function quote(v: string): string {
  return /^[\w.:/@\-\[\]*,+]+$/.test(v) ? v : JSON.stringify(v);
}

/** Format one logfmt line. Exported for tests. */
export function format(level: Level, msg: string, fields: Fields, now = new Date()): string {
  let line = `ts=${now.toISOString()} level=${level} msg=${JSON.stringify(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${typeof v === "string" ? quote(v) : String(v)}`;
  }
  return line;
}

/**
 * A logger; `with()` makes a child that shares everything but its fields.
 * Methods live on the prototype: servers make a child per connection, so a
 * child is one small object.
 */
class FieldLogger implements Logger {
  constructor(
    readonly min: number,
    readonly sink: (line: string) => void,
    readonly fields: Fields,
  ) {}
  #emit(level: Level, msg: string, fields?: Fields): void {
    if (rank[level] < this.min) return;
    this.sink(format(level, msg, fields ? { ...this.fields, ...fields } : this.fields));
  }
  debug(msg: string, fields?: Fields): void {
    this.#emit("debug", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.#emit("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.#emit("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.#emit("error", msg, fields);
  }
  with(fields: Fields): Logger {
    return new FieldLogger(this.min, this.sink, { ...this.fields, ...fields });
  }
}

export function createLogger(
  opts: { level?: Level; sink?: (line: string) => void; fields?: Fields } = {},
): Logger {
  return new FieldLogger(
    rank[opts.level ?? "info"],
    opts.sink ?? ((line: string) => console.error(line)),
    opts.fields ?? {},
  );
}

/** A logger that drops everything. */
export const silent: Logger = createLogger({ sink: () => {} });
