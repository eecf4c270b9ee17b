/**
 * One-line structured logs on stderr: logfmt (default) or one JSON object per
 * line (`--log-format json`), with the same fields either way (ts, level, msg,
 * then the caller's). Callers pass only fields that are safe to print: never
 * a token, key or proof.
 *
 * @module
 */

export type Level = "debug" | "info" | "warn" | "error";
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | null | undefined>;

/** How a line is written. */
export type LogFormat = "logfmt" | "json";
export const LOG_FORMATS: readonly LogFormat[] = ["logfmt", "json"];

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

/** Format one line as a JSON object: `{"ts":…,"level":…,"msg":…,…fields}`. Exported for tests. */
export function formatJson(level: Level, msg: string, fields: Fields, now = new Date()): string {
  const o: Record<string, string | number | boolean | null> = {
    ts: now.toISOString(),
    level,
    msg,
  };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === "ts" || k === "level" || k === "msg") continue;
    o[k] = typeof v === "number" && !Number.isFinite(v) ? String(v) : v;
  }
  return JSON.stringify(o);
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
    readonly fmt: typeof format,
  ) {}
  #emit(level: Level, msg: string, fields?: Fields): void {
    if (rank[level] < this.min) return;
    this.sink(this.fmt(level, msg, fields ? { ...this.fields, ...fields } : this.fields));
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
    return new FieldLogger(this.min, this.sink, { ...this.fields, ...fields }, this.fmt);
  }
}

export function createLogger(
  opts: { level?: Level; sink?: (line: string) => void; fields?: Fields; format?: LogFormat } = {},
): Logger {
  return new FieldLogger(
    rank[opts.level ?? "info"],
    opts.sink ?? ((line: string) => console.error(line)),
    opts.fields ?? {},
    opts.format === "json" ? formatJson : format,
  );
}

/** A logger that drops everything. */
export const silent: Logger = createLogger({ sink: () => {} });
