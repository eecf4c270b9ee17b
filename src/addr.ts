/**
 * Text forms of addresses and targets, for logs and CLI output.
 *
 * @module
 */
import type { Target } from "./messages.ts";
import type { Addr } from "./net.ts";

/** `host:port`, with brackets around IPv6. */
export function fmt(a: Addr | undefined): string {
  if (!a) return "-";
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export function targetText(t: Target): string {
  return fmt(t);
}
