/**
 * What the `burrow` commands share: the version, usage errors, the log level
 * flag and running until a signal.
 *
 * @module
 */
import { type Command, Option } from "commander";
import {
  type BatchSink,
  batchSink,
  createLogger,
  type Level,
  LOG_FORMATS,
  type LogFormat,
  type Logger,
} from "../log.ts";
import type { Host } from "./mod.ts";
import { UsageError } from "../errors.ts";

import { VERSION } from "../version.ts";

/** burrow's own version (package.json). */
export { VERSION };

/** A command's action hands its work to `main`, which waits for it. */
export type Start = (work: Promise<void>) => void;

/** The `software` string peers log: burrow's version, the runtime and its version. */
export function software(host: Host): string {
  return `burrow/${VERSION} ${host.net.runtime}/${host.version}`;
}

export const logLevelOption = () =>
  new Option("--log-level <level>", "debug, info, warn or error").default("info");

/** The `--log-format` of the command being run (set by {@link addLogFormat}'s hook). */
let logFormat: LogFormat = "logfmt";

export const logFormatOption = () =>
  new Option("--log-format <format>", "logfmt or json (one JSON object per line)")
    .choices(LOG_FORMATS)
    .default("logfmt");

/**
 * Give every command that logs (those with `--log-level`) a `--log-format`
 * flag, and make {@link logger} follow it for the command being run.
 */
export function addLogFormat(program: Command): void {
  for (const cmd of program.commands) {
    if (cmd.options.some((o) => o.long === "--log-level")) cmd.addOption(logFormatOption());
  }
  program.hook("preAction", (_program, action) => {
    const f: unknown = action.opts().logFormat;
    logFormat = f === "json" ? "json" : "logfmt";
  });
}

/** Sinks of the loggers made for commands, until {@link flushLogs}. */
const sinks = new Set<BatchSink>();

export function logger(level: string): Logger {
  if (!["debug", "info", "warn", "error"].includes(level)) {
    throw new UsageError(`--log-level must be debug, info, warn or error`);
  }
  const sink = batchSink((text) => console.error(text));
  sinks.add(sink);
  return createLogger({ level: level as Level, format: logFormat, sink });
}

/** Write the log lines still held back (the command ended; its last lines must not trail it). */
export function flushLogs(): void {
  for (const s of sinks) s.flush();
  sinks.clear();
}

/** Run until SIGINT or SIGTERM: resolves after `stop()` finished. */
export function untilSignal(host: Host, stop: () => Promise<void>, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const offs: Array<() => void> = [];
    const handler = () => {
      if (stopping) return;
      stopping = true;
      log.info("shutting down");
      for (const off of offs) off();
      stop().then(resolve, resolve);
    };
    offs.push(host.onSignal("SIGINT", handler), host.onSignal("SIGTERM", handler));
  });
}

/** Commander's collector for a repeatable flag. */
export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}
