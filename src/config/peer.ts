/**
 * The server config's `peer:` (SPEC.md §2.6, README "A fleet of servers"):
 * where this server takes peer links, how the others reach it, the fleet
 * secret, and how it verifies the other servers' certificates.
 *
 * @module
 */
import type { Addr } from "../net.ts";
import { normalizeFingerprint } from "../tls.ts";
import { besideFile, type Walker, words } from "./walker.ts";

/** `peer:` in force; null: this server forwards no streams and takes no peer links. */
export interface PeerConfig {
  /** Where peer links are taken (TLS with the server's certificate). */
  listen: Addr;
  /** How the other servers reach `listen` (`host:port`; port 0: the port `listen` got). */
  advertise: Addr;
  /** The file holding the fleet secret. */
  tokenFile: string;
  /** Pins of the fleet's certificates (any matches); or `ca`. */
  fingerprint: string[];
  /** A CA (PEM file) the fleet's certificates are verified against. */
  ca: string | null;
  /** The name verified with `ca` (default: the advertised host). */
  serverName: string | null;
  /** Streams open or grantable at once on a link this server accepts (SPEC.md §10.1). */
  streamsPerLink: number;
  /** A link that carried no stream this long is closed. */
  idleMs: number;
}

export const peerDefaults = { streamsPerLink: 1024, idle: "60s" } as const;

const PEER_KEYS = words(`listen advertise token_file fingerprint ca server_name streams_per_link
  idle`);

/** Parse `peer:`; `file` and `paths` as parseServerConfig takes them. */
export function peerConfig(w: Walker, v: unknown, file: string, paths: boolean): PeerConfig | null {
  if (v === undefined || v === null) return null;
  const p = w.obj(v, "peer");
  w.known(p, "peer", PEER_KEYS);
  const need = (key: string) => p[key] ?? w.fail(`peer.${key}`, "is required");
  const addr = (key: string) =>
    w.addr(need(key), `peer.${key}`, "") ?? w.fail(`peer.${key}`, "must be host:port");
  const path = (key: string) => {
    const s = w.str(need(key), `peer.${key}`);
    return paths ? besideFile(file, s) : s;
  };
  const advertise = addr("advertise");
  const pins = p.fingerprint === undefined
    ? []
    : Array.isArray(p.fingerprint)
    ? p.fingerprint
    : [p.fingerprint];
  const fingerprint = pins.map((x, i) => {
    try {
      return normalizeFingerprint(w.str(x, `peer.fingerprint[${i}]`));
    } catch {
      return w.fail(`peer.fingerprint[${i}]`, "must be a SHA-256 fingerprint (64 hex digits)");
    }
  });
  const ca = p.ca === undefined ? null : path("ca");
  if (fingerprint.length === 0 && ca === null) {
    w.fail("peer", "needs fingerprint (the fleet's certificates) or ca to verify the others");
  }
  return {
    listen: addr("listen"),
    advertise,
    tokenFile: path("token_file"),
    fingerprint,
    ca,
    serverName: p.server_name === undefined ? null : w.str(p.server_name, "peer.server_name"),
    streamsPerLink: w.int(p.streams_per_link, "peer.streams_per_link", 1024, 1, 65536),
    idleMs: w.duration(p.idle, "peer.idle", peerDefaults.idle),
  };
}
