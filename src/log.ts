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

export function createLogger(
  opts: { level?: Level; sink?: (line: string) => void; fields?: Fields } = {},
): Logger {
  const min = rank[opts.level ?? "info"];
  const sink = opts.sink ?? ((line: string) => console.error(line));
  const base = opts.fields ?? {};
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (rank[level] < min) return;
    sink(format(level, msg, fields ? { ...base, ...fields } : base));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    with: (fields) => createLogger({ ...opts, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything. */
export const silent: Logger = createLogger({ sink: () => {} });
