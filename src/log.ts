/**
 * One-line structured logs on stderr: logfmt (default) or one JSON object per
 * line (`--log-format json`), with the same fields either way (ts, level, msg,
 * then the caller's). Callers pass only fields that are safe to print: never
 * a token, key or proof.
 *
 * The default sink writes the lines of one event-loop turn together (at
 * info a server logs a line per stream: one write per line was an eighth of
 * its CPU under load); a warn or error line goes out at once, with the lines
 * before it.
 *
 * @module
 */
import { afterTurn } from "./time.ts";

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
  /** Whether lines at `level` are written (to skip building what would be dropped). */
  enabled(level: Level): boolean;
}

function quote(v: string): string {
  return /^[\w.:/@\-\[\]*,+]+$/.test(v) ? v : JSON.stringify(v);
}

/** `fields` as logfmt pairs, each with a leading space. */
function pairs(fields: Fields): string {
  let out = "";
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined) continue;
    out += ` ${k}=${typeof v === "string" ? quote(v) : String(v)}`;
  }
  return out;
}

/** Quoted messages: a program logs a few hundred distinct ones at most. */
const quoted = new Map<string, string>();

function head(level: Level, msg: string, now: Date): string {
  let q = quoted.get(msg);
  if (q === undefined) {
    q = JSON.stringify(msg);
    if (quoted.size < 1024) quoted.set(msg, q);
  }
  return `ts=${now.toISOString()} level=${level} msg=${q}`;
}

/** Format one logfmt line. Exported for tests. */
export function format(level: Level, msg: string, fields: Fields, now = new Date()): string {
  return head(level, msg, now) + pairs(fields);
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

/** Does `fields` set a key that `base` has? */
function overrides(fields: Fields, base: Fields): boolean {
  for (const k in fields) {
    if (k in base) return true;
  }
  return false;
}

/** Where lines go: one line (no newline) and its level. */
export type Sink = (line: string, level: Level) => void;

/**
 * A logger; `with()` makes a child that shares everything but its fields.
 * Methods live on the prototype: servers make a child per connection, so a
 * child is one small object.
 */
class FieldLogger implements Logger {
  /** logfmt: this logger's own fields, rendered at its first line. */
  #pairs: string | undefined;

  constructor(
    readonly min: number,
    readonly sink: Sink,
    readonly fields: Fields,
    readonly fmt: typeof format,
  ) {}
  #emit(level: Level, msg: string, fields?: Fields): void {
    if (rank[level] < this.min) return;
    this.sink(this.#line(level, msg, fields), level);
  }
  #line(level: Level, msg: string, fields?: Fields): string {
    if (this.fmt !== format) {
      return this.fmt(level, msg, fields ? { ...this.fields, ...fields } : this.fields);
    }
    // The same line as format() of the merged fields; a field that
    // overrides one of ours keeps our field's place, so that goes the long way.
    if (fields && overrides(fields, this.fields)) {
      return format(level, msg, { ...this.fields, ...fields });
    }
    this.#pairs ??= pairs(this.fields);
    return head(level, msg, new Date()) + this.#pairs + (fields ? pairs(fields) : "");
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
  enabled(level: Level): boolean {
    return rank[level] >= this.min;
  }
}

/** A {@link Sink} that holds lines back until the turn ends; `flush()` writes them now. */
export type BatchSink = Sink & { flush(): void };

/**
 * A sink that hands `write` the lines of one event-loop turn at once (joined
 * by newlines, without the last one), after the turn's callbacks; a line at
 * `urgent` level or above is written at once, after any still waiting.
 */
export function batchSink(write: (text: string) => void, urgent: Level = "warn"): BatchSink {
  let pending: string[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    const text = pending.join("\n");
    pending = [];
    write(text);
  };
  const sink = (line: string, level: Level): void => {
    pending.push(line);
    if (rank[level] >= rank[urgent]) flush();
    else if (pending.length === 1) afterTurn(flush);
  };
  return Object.assign(sink, { flush });
}

export function createLogger(
  opts: { level?: Level; sink?: Sink; fields?: Fields; format?: LogFormat } = {},
): Logger {
  return new FieldLogger(
    rank[opts.level ?? "info"],
    opts.sink ?? batchSink((text) => console.error(text)),
    opts.fields ?? {},
    opts.format === "json" ? formatJson : format,
  );
}

/** A logger that drops everything. */
export const silent: Logger = createLogger({ sink: () => {} });
