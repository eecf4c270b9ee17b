/**
 * The server config's `store:` section: where the server keeps the state it
 * shares with the rest of a fleet (README "A fleet of servers"): tokens,
 * revocations, signing keys, presence and the audit log. Absent: the
 * embedded store, files in `state_dir`.
 *
 * @module
 */
import { readDuration } from "../time.ts";
import type { Obj, Walker } from "./walker.ts";

export interface StoreConfig {
  /** `postgres`: the PostgreSQL connection URL; null: the embedded store (files in state_dir). */
  postgres: string | null;
  /** A file holding the database password (`password_file`), as given; null: none or in the URL. */
  passwordFile: string | null;
  /** A file holding the key that encrypts signing keys at rest (`key_file`); else BURROW_STORE_KEY. */
  keyFile: string | null;
  /** Whether audit lines are written to the store too (`audit`, default true). */
  audit: boolean;
  /** How long audit lines are kept, seconds (`audit_retention`, default 720h). */
  auditRetention: number;
  /** Audit lines held in memory while the store is slow or down (`audit_queue`, default 10000). */
  auditQueue: number;
  /** How long a presence lease lives without renewal, ms (`lease`, default 10s). */
  leaseMs: number;
  /** How often a server renews its presence lease, ms (`lease_renew`, default 2s). */
  leaseRenewMs: number;
}

export const storeDefaults = {
  auditRetention: "720h",
  auditQueue: 10000,
  lease: "10s",
  leaseRenew: "2s",
} as const;

/** Bounds of `store.lease_renew` and `store.lease`, ms. */
const LEASE_RENEW_MIN = 100;
const LEASE_MAX = 600_000;

/**
 * `store: {postgres, password_file, key_file, audit, audit_retention,
 * audit_queue, lease, lease_renew}`; `path` places a file's path (beside
 * the config file).
 */
export function storeConfig(
  w: Walker,
  section: unknown,
  path: (file: string) => string = (f) => f,
): StoreConfig {
  const s = w.obj(section, "store");
  w.known(s, "store", [
    "postgres",
    "password_file",
    "key_file",
    "audit",
    "audit_retention",
    "audit_queue",
    "lease",
    "lease_renew",
  ]);
  const url = s.postgres === undefined ? null : w.str(s.postgres, "store.postgres");
  if (url !== null && !/^postgres(ql)?:\/\/./.test(url)) {
    w.fail("store.postgres", "must be a postgres:// URL (postgres://user@host:5432/db)");
  }
  const opt = (k: string) => s[k] === undefined ? null : path(w.str(s[k], `store.${k}`));
  if (url === null) {
    for (const k of ["password_file", "key_file", "lease", "lease_renew"]) {
      if (s[k] !== undefined) w.fail(`store.${k}`, "only applies with store.postgres");
    }
  }
  const v = s.audit_retention ?? storeDefaults.auditRetention;
  const d = readDuration(typeof v === "number" ? v : w.str(v, "store.audit_retention"));
  if (!d.ok) w.fail("store.audit_retention", d.error);
  const auditRetention = Math.floor(d.value / 1000);
  if (auditRetention < 60 || auditRetention > 10 * 366 * 86400) {
    w.fail("store.audit_retention", "must be between 1m and 87840h");
  }
  const { leaseMs, leaseRenewMs } = leaseConfig(w, s);
  return {
    postgres: url,
    passwordFile: opt("password_file"),
    keyFile: opt("key_file"),
    audit: s.audit === undefined ? true : w.bool(s.audit, "store.audit"),
    auditRetention,
    auditQueue: w.int(s.audit_queue, "store.audit_queue", storeDefaults.auditQueue, 1, 1_000_000),
    leaseMs,
    leaseRenewMs,
  };
}

/**
 * `store.lease` and `store.lease_renew`: a lease outlives two renewals at
 * least (one renewal late or lost does not drop a live server), is renewed
 * every 100ms at most often, and lives 10m at most.
 */
function leaseConfig(w: Walker, s: Obj) {
  const leaseRenewMs = w.duration(s.lease_renew, "store.lease_renew", storeDefaults.leaseRenew);
  const leaseMs = w.duration(s.lease, "store.lease", storeDefaults.lease);
  if (leaseRenewMs < LEASE_RENEW_MIN) w.fail("store.lease_renew", "must be 100ms or more");
  if (leaseMs > LEASE_MAX) w.fail("store.lease", "must be 10m or less");
  if (leaseMs < 2 * leaseRenewMs) {
    w.fail("store.lease", "must be at least twice store.lease_renew");
  }
  return { leaseMs, leaseRenewMs };
}
