/**
 * The audit log in the state store (README "A fleet of servers"): the lines
 * that say who did what (streams, refusals, authentication failures,
 * tokens, sign-ins, operators' actions) go to the store too, with their
 * fields, besides the log. The server's logger is wrapped once; the store
 * queues the lines and writes them in batches (store_audit.ts), so the
 * stream path only adds a line to a queue.
 *
 * @module
 */
import type { Fields, Level, Logger } from "../log.ts";
import type { Store } from "./store.ts";

/** The messages that are audit lines. */
export const AUDIT_MESSAGES: ReadonlySet<string> = new Set([
  "stream ended",
  "connect refused",
  "stream closed by admin",
  "authentication failed",
  "socks authentication failed",
  "http proxy authentication failed",
  "admin authentication failed",
  "sign-in refused",
  "signed in",
  "token issued",
  "token revoked",
  "token signing key rotated",
  "agent connected",
  "agent session ended",
  "agent disconnected by admin",
  "agent replica disconnected by admin",
  "config reloaded",
]);

/** A logger that also hands its audit lines to a store; see the module doc. */
class AuditLogger implements Logger {
  constructor(readonly inner: Logger, readonly fields: Fields, readonly store: Store) {}

  #audit(level: Level, msg: string, fields: Fields | undefined): void {
    if (!AUDIT_MESSAGES.has(msg)) return;
    const all = fields ? { ...this.fields, ...fields } : this.fields;
    this.store.audit({ at: Date.now(), level, msg, fields: all });
  }
  debug(msg: string, fields?: Fields): void {
    this.inner.debug(msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.inner.info(msg, fields);
    this.#audit("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.inner.warn(msg, fields);
    this.#audit("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.inner.error(msg, fields);
    this.#audit("error", msg, fields);
  }
  with(fields: Fields): Logger {
    return new AuditLogger(this.inner.with(fields), { ...this.fields, ...fields }, this.store);
  }
  enabled(level: Level): boolean {
    return this.inner.enabled(level);
  }
}

/** `log`, also writing audit lines to `store` when it keeps them ({@link Store.audits}). */
export function auditLogger(log: Logger, store: Store): Logger {
  return store.audits ? new AuditLogger(log, {}, store) : log;
}
