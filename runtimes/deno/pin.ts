/**
 * Pinning on Deno (see net.ts, "Dial, pinned"): rustls cannot be told to
 * accept one certificate by its fingerprint, so the server's certificate is
 * fetched once with `node:tls`, checked against the pin, and then trusted by
 * rustls as the only anchor, verified by one of its own names.
 *
 * @module
 */
import * as nodeTls from "node:tls";
import { isIP } from "node:net";
import { createHash, X509Certificate } from "node:crypto";
import type { DialOptions } from "../../src/net.ts";
import { checkPin, timedOut, toNetError } from "../../src/adapter/mod.ts";
import { NetError } from "../../src/errors.ts";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();

/** A pinned certificate, as rustls gets it: the PEM and the name to verify. */
export interface Pinned {
  pem: string;
  name: string;
}

/**
 * Step 1 of a pinned dial (net.ts): the server's certificate, fetched with
 * Deno's `node:tls` within `ms` (undefined: no deadline) and checked against `pin`.
 */
export function fetchPinned(
  opts: DialOptions,
  pin: string[],
  ms: number | undefined,
): Promise<Pinned> {
  const { host, port } = opts;
  return new Promise((resolve, reject) => {
    const sock = nodeTls.connect({ host, port, rejectUnauthorized: false });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (e: NetError | null, v?: Pinned) => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      sock.on("error", () => {});
      if (e) {
        sock.destroy();
        reject(e);
      } else {
        // close_notify and FIN, so the server sees a clean EOF; the server
        // closes in turn, and node:tls (no allowHalfOpen) then closes too
        sock.end();
        const t = setTimeout(() => sock.destroy(), 10_000);
        Deno.unrefTimer(t);
        sock.once("close", () => clearTimeout(t));
        resolve(v!);
      }
    };
    // node:tls errors: a network failure keeps its code, anything else is ETLS
    sock.once("error", (e) => done(toNetError(e, { fallback: "ETLS" })));
    sock.once("secureConnect", () => {
      const raw = sock.getPeerCertificate(true)?.raw;
      const mismatch = checkPin(pin, raw, sha256);
      if (mismatch) return done(mismatch);
      try {
        done(null, pinnable(raw));
      } catch (e) {
        done(e as NetError);
      }
    });
    if (ms !== undefined) {
      timer = setTimeout(() => done(timedOut(host, port, opts.timeoutMs!, "TLS connect")), ms);
    }
  });
}

/** A fetched pinned certificate as rustls can trust it, or ETLS why not. */
function pinnable(der: Uint8Array): Pinned {
  const x = new X509Certificate(der);
  // (not checkIssued(): OpenSSL also wants keyCertSign from an issuer)
  if (x.issuer !== x.subject || !x.verify(x.publicKey)) {
    throw new NetError(
      "ETLS",
      "TLS: on Deno only a self-signed certificate can be pinned (rustls cannot trust a " +
        "CA-issued leaf by itself); trust its CA with `ca` instead",
    );
  }
  const name = pinName(x.subjectAltName ?? "");
  if (name === null) {
    throw new NetError(
      "ETLS",
      "TLS: on Deno a pinned certificate needs a DNS name or IP address in its subjectAltName",
    );
  }
  const b64 = btoa(Array.from(der, (b) => String.fromCharCode(b)).join(""));
  const pem = `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{64}/g, "$&\n")}\n` +
    "-----END CERTIFICATE-----\n";
  return { pem: pem.replace("\n\n-----END", "\n-----END"), name };
}

/** Names public CAs may not certify: rustls then trusts only the pinned certificate. */
const RESERVED_NAME = /(^|\.)(localhost|invalid|test|internal|local)$/i;
const PRIVATE_IP =
  /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|::1$|f[cd][0-9a-f]{2}:|fe[89ab][0-9a-f]:)/i;

/**
 * The name to verify a pinned certificate by, from its subjectAltName
 * (`DNS:a, IP Address:1.2.3.4`): a reserved name or private IP if there is
 * one, else the first name (wildcards made concrete).
 */
function pinName(san: string): string | null {
  const names: string[] = [];
  for (const part of san.split(/,\s*/)) {
    const m = /^(DNS|IP Address):(.+)$/.exec(part.trim());
    if (!m) continue;
    const v = m[2]!.trim();
    if (m[1] === "IP Address") names.push(isIP(v) ? v : "");
    else names.push(v.replace(/^\*\./, "pinned."));
  }
  const usable = names.filter((n) => n !== "");
  return usable.find((n) => isIP(n) ? PRIVATE_IP.test(n) : RESERVED_NAME.test(n)) ??
    usable[0] ?? null;
}
