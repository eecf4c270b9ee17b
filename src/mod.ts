/**
 * burrow as a library: the runtime-free core. Pair it with a runtime's
 * adapter (`burrow/node`, `burrow/deno`, `burrow/bun` export `net`):
 *
 * ```ts
 * import { Agent, createLogger, parseRule, tokenCredential } from "burrow";
 * import { net } from "burrow/node";
 *
 * const agent = new Agent(net, {
 *   server: { host: "burrow.example.com", port: 7000 },
 *   tls: { fingerprint: "3F:A0:…:9C" },
 *   name: "office",
 *   credential: tokenCredential(process.env.BURROW_TOKEN!),
 *   rules: parseRule("*.corp:80,443"),
 *   software: "my-app/1.0",
 * }, createLogger());
 * agent.start();
 * ```
 *
 * The command line is `main` with a runtime's `Host` (runtimes/<name>/main.ts).
 *
 * @module
 */
export { Server } from "./server/mod.ts";
export { Agent, type AgentOptions, type SessionInfo } from "./agent.ts";
export { type ClientOptions, ClientProxy, type ConnectResult, connectThrough } from "./client.ts";
export {
  type AgentConfig,
  type Grant,
  type Identity,
  type Limits,
  parseAddr,
  parseAgentConfig,
  parseDuration,
  parseServerConfig,
  type ServerConfig,
  serverDefaults,
  type TlsConfig,
} from "./config/mod.ts";
export {
  type Credential,
  ed25519Credential,
  ed25519Verifier,
  generateKeyPair,
  tokenCredential,
  tokenHash,
  tokenVerifier,
  type Verifier,
} from "./auth.ts";
export {
  type CertAndKey,
  type CertOptions,
  fingerprint,
  generateSelfSigned,
  normalizeFingerprint,
} from "./tls.ts";
export { formatRule, parseRule } from "./policy.ts";
export {
  type BatchSink,
  batchSink,
  createLogger,
  type Fields,
  type Level,
  type Logger,
  silent,
  type Sink,
} from "./log.ts";
export {
  ConfigError,
  EofError,
  NetError,
  type NetErrorCode,
  PeerError,
  ProtocolError,
  ProxyError,
  RuleError,
  SocksError,
  TimeoutError,
  UsageError,
} from "./errors.ts";
export type {
  Addr,
  Conn,
  DialOptions,
  Listener,
  ListenOptions,
  Net,
  TlsClientOptions,
  TlsServerOptions,
} from "./net.ts";
export { type Rule, type Target, VERSION_MAX, VERSION_MIN } from "./messages.ts";
export { VERSION } from "./version.ts";
export { type Host, main, versionLine } from "./cli/mod.ts";
