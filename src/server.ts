/**
 * The routing server; see server/mod.ts.
 *
 * @module
 */
export * from "./server/mod.ts";
