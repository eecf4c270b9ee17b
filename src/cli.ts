/**
 * The `burrow` command line (see cli/mod.ts); this path is what the
 * runtimes' main.ts and the tests import.
 *
 * @module
 */
export { type Host, type HttpServer, main, versionLine } from "./cli/mod.ts";
export { UsageError } from "./cli/common.ts";
export { serverTls, startServer } from "./cli/server.ts";
