/**
 * Configuration: the server's file (server.ts), the agent's (agent.ts), and
 * the walker and value parsers under both (walker.ts). Every error about bad
 * configuration is a `ConfigError`. Trusted proxies and IPv6 shares: trust.ts.
 *
 * @module
 */
export * from "./server.ts";
export * from "./agent.ts";
export type { Cidr } from "./trust.ts";
export { besideFile, parseAddr, parseDuration, readAddr } from "./walker.ts";
