/**
 * TLS helpers, runtime-free (WebCrypto and `@peculiar/x509` only):
 * certificate generation for burrow servers and tests, and SHA-256
 * certificate fingerprints for pinning.
 *
 * - {@link generateSelfSigned}: an ECDSA P-256 server certificate, to be
 *   pinned by its {@link fingerprint} (like SSH host keys).
 * - {@link generateCA} and {@link issueCert}: a small CA and leaves signed by
 *   it, for CA-verified links (and the tests of that mode). A self-signed
 *   certificate cannot be trusted as its own CA: rustls (Deno) rejects a CA
 *   certificate used as an end entity, and the self-signed server
 *   certificate is CA:false; so CA mode needs a CA and a leaf.
 *
 * Fingerprints are SHA-256 of a certificate's DER, written as uppercase
 * colon-separated hex (`AB:CD:…`, as OpenSSH and chisel show them); input in
 * any case, with or without colons or spaces, is accepted
 * ({@link normalizeFingerprint}).
 *
 * `@peculiar/x509` is loaded on first use of a generator only, so the
 * fingerprint helpers (which the runtime adapters use) do not load it.
 *
 * @module
 */
import { toHex } from "./auth.ts";
import { NetError } from "./errors.ts";

/** A PEM certificate (maybe a chain, leaf first) and its PKCS#8 PEM key. */
export interface CertAndKey {
  cert: string;
  key: string;
}

export interface CertOptions {
  /**
   * DNS names and IP literals for the subjectAltName; the first is also the
   * subject CN. Default `["localhost", "127.0.0.1", "::1"]`.
   */
  names?: string[];
  /** Validity in days from now (backdated one hour for clock skew). */
  days?: number;
}

/** Default names of a generated server certificate. */
export const DEFAULT_NAMES: readonly string[] = ["localhost", "127.0.0.1", "::1"];
/** Default validity of generated certificates: ten years. */
const DEFAULT_DAYS = 3650;
const DAY_MS = 86_400_000;
const EC_KEY = { name: "ECDSA", namedCurve: "P-256" } as const;
const EC_SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

type X509 = typeof import("@peculiar/x509");
let x509Module: Promise<X509> | undefined;

/**
 * Loads `@peculiar/x509`. Its dependency tsyringe insists on the Reflect
 * metadata API (`reflect-metadata`) at import time; when nothing installed
 * it, a minimal one (the three functions tsyringe calls) is put in place
 * first. It only stores metadata, it changes nothing else.
 */
function loadX509(): Promise<X509> {
  return (x509Module ??= (async () => {
    const R = Reflect as unknown as Record<string, unknown>;
    if (typeof R.getMetadata !== "function") {
      const store = new WeakMap<object, Map<unknown, unknown>>();
      const own = (t: object, create: boolean) => {
        let m = store.get(t);
        if (!m && create) store.set(t, m = new Map());
        return m;
      };
      const getOwn = (k: unknown, t: object) => own(t, false)?.get(k);
      R.defineMetadata = (k: unknown, v: unknown, t: object) => void own(t, true)!.set(k, v);
      R.getOwnMetadata = getOwn;
      R.getMetadata = (k: unknown, t: object) => {
        for (let o: object | null = t; o !== null; o = Object.getPrototypeOf(o)) {
          const m = own(o, false);
          if (m?.has(k)) return m.get(k);
        }
        return undefined;
      };
    }
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(crypto);
    return x509;
  })());
}

/** Random positive serial number, 16 bytes, as hex. */
function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, minimal DER (no leading zero byte)
  return toHex(b);
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const isIp = (name: string) => IPV4.test(name) || name.includes(":");

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + days * DAY_MS) };
}

/** A CN value: the name, without characters that need escaping in a DN. */
const cn = (name: string) => `CN=${name.replace(/[^\w.\-: ]/g, "_")}`;

async function leafExtensions(x509: X509, names: readonly string[], key: CryptoKey) {
  if (names.length === 0) throw new TypeError("a certificate needs at least one name");
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    new x509.SubjectAlternativeNameExtension(
      names.map((value) => ({ type: isIp(value) ? "ip" as const : "dns" as const, value })),
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(key, false),
  ];
}

async function newKeys(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"]);
}

async function keyPem(x509: X509, key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY") + "\n";
}

/**
 * A self-signed ECDSA P-256 server certificate (CA:false, digitalSignature,
 * serverAuth, SAN with the DNS names and IPs of `names`), valid ten years by
 * default. Pin it by its {@link fingerprint}.
 */
export async function generateSelfSigned(opts: CertOptions = {}): Promise<CertAndKey> {
  const x509 = await loadX509();
  const names = opts.names ?? DEFAULT_NAMES;
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: cn(names[0] ?? "burrow"),
    keys,
    signingAlgorithm: EC_SIGN,
    ...validity(opts.days ?? DEFAULT_DAYS),
    extensions: await leafExtensions(x509, names, keys.publicKey),
  });
  return { cert: cert.toString("pem") + "\n", key: await keyPem(x509, keys.privateKey) };
}

/**
 * A CA certificate (ECDSA P-256, CA:true with path length 0, keyCertSign and
 * cRLSign) for {@link issueCert}. Trust its `cert` with the `ca` dial option.
 */
export async function generateCA(
  opts: { name?: string; days?: number } = {},
): Promise<CertAndKey> {
  const x509 = await loadX509();
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: cn(opts.name ?? "burrow CA"),
    keys,
    signingAlgorithm: EC_SIGN,
    ...validity(opts.days ?? DEFAULT_DAYS),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false),
    ],
  });
  return { cert: cert.toString("pem") + "\n", key: await keyPem(x509, keys.privateKey) };
}

/**
 * A server certificate for `names` signed by `ca` (from {@link generateCA}).
 * The returned `cert` is the chain: the leaf, then the CA certificate.
 */
export async function issueCert(
  ca: CertAndKey,
  names: string[] = [...DEFAULT_NAMES],
  opts: { days?: number } = {},
): Promise<CertAndKey> {
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(pemBlocks(ca.cert)[0] ?? noCert());
  const caKey = await crypto.subtle.importKey(
    "pkcs8",
    pemBlocks(ca.key, "PRIVATE KEY")[0] ?? noCert("PRIVATE KEY"),
    EC_KEY,
    false,
    ["sign"],
  );
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: cn(names[0] ?? "burrow"),
    issuer: caCert.subjectName,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: EC_SIGN,
    ...validity(opts.days ?? 825),
    extensions: [
      ...await leafExtensions(x509, names, keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return {
    cert: cert.toString("pem") + "\n" + caCert.toString("pem") + "\n",
    key: await keyPem(x509, keys.privateKey),
  };
}

function noCert(label = "CERTIFICATE"): never {
  throw new TypeError(`no PEM ${label} found`);
}

/** The DER bytes of each PEM block with this label (default CERTIFICATE). */
export function pemBlocks(pem: string, label = "CERTIFICATE"): Uint8Array<ArrayBuffer>[] {
  const re = new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`, "g");
  return Array.from(pem.matchAll(re), (m) => {
    const bin = atob(m[1]!.replace(/\s+/g, ""));
    const der = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
    return der;
  });
}

/** `AB:CD:…`: bytes as uppercase colon-separated hex. */
export function formatFingerprint(digest: Uint8Array): string {
  return Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join(":").toUpperCase();
}

/**
 * A SHA-256 fingerprint in the canonical form (uppercase, colon-separated).
 * Accepts any case, with or without `:`, spaces or `-`, and an optional
 * `sha256:`/`SHA256=` prefix. Throws TypeError unless it is 32 bytes of hex.
 */
export function normalizeFingerprint(text: string): string {
  const bare = text.trim().replace(/^sha-?256\s*[:=]\s*/i, "").replace(/[\s:-]/g, "");
  if (!/^[0-9a-f]{64}$/i.test(bare)) {
    throw new TypeError(`not a SHA-256 fingerprint (64 hex digits): ${JSON.stringify(text)}`);
  }
  return bare.toUpperCase().replace(/(..)(?!$)/g, "$1:");
}

/** SHA-256 fingerprint of a certificate's DER. */
export async function fingerprintDer(der: Uint8Array<ArrayBuffer>): Promise<string> {
  return formatFingerprint(new Uint8Array(await crypto.subtle.digest("SHA-256", der)));
}

/** SHA-256 fingerprint of the first certificate in `pem` (the leaf of a chain). */
export function fingerprint(pem: string): Promise<string> {
  return fingerprintDer(pemBlocks(pem)[0] ?? noCert());
}

/**
 * A pin or a list of pins (a fleet of servers, each with its own
 * certificate), each in canonical form. Throws TypeError on a malformed
 * one, or on an empty list.
 */
export function normalizePins(pin: string | readonly string[]): string[] {
  const list = typeof pin === "string" ? [pin] : pin;
  if (list.length === 0) throw new TypeError("an empty list of fingerprint pins");
  return [...new Set(list.map(normalizeFingerprint))];
}

/**
 * The error for a server whose leaf certificate has the fingerprint `got`
 * (canonical form) when `pin` (any accepted form; a list: any of them) was
 * expected, or `null` if it matches. The adapters hash the DER themselves
 * (synchronously, right in the handshake callback) and call this.
 */
export function pinMismatch(pin: string | readonly string[], got: string): NetError | null {
  const expected = normalizePins(pin);
  if (expected.includes(got)) return null;
  const want = expected.length === 1 ? expected[0] : `one of ${expected.join(", ")}`;
  return new NetError(
    "ETLS",
    `TLS certificate fingerprint mismatch: expected ${want}, got ${got}`,
  );
}

/** The error for a server that sent no certificate to check a pin against. */
export const noPeerCertificate = () =>
  new NetError("ETLS", "TLS server sent no certificate to check the fingerprint pin against");
