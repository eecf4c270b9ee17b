/**
 * How an agent or a client proxy reaches the server (SPEC.md §3.1): raw
 * `host:port` (TCP or TLS, the default), or a WebSocket URL
 * `wss://host[:port][/prefix]` (`ws://` only with `--plain`, for a reverse
 * proxy that terminates TLS). Over WebSocket the agent uses `prefix/agent`
 * and the client proxy `prefix/client`.
 *
 * @module
 */
import { parseAddr } from "./config.ts";
import { ConfigError } from "./errors.ts";
import type { Addr, Net } from "./net.ts";
import { deadline } from "./time.ts";
import { wsConnect } from "./ws.ts";

export interface ServerAddress {
  /** Where to connect (the TCP/TLS endpoint). */
  addr: Addr;
  /** Over WebSocket: the URL's path prefix (no trailing slash) and whether the URL asked for TLS. */
  ws?: { prefix: string; secure: boolean; host: string };
}

/** Parse `--server`: `host:port`, `[v6]:port`, `wss://host[:port][/prefix]` or `ws://…`. */
export function parseServer(text: string): ServerAddress {
  if (!/^wss?:\/\//i.test(text)) return { addr: parseAddr(text) };
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ConfigError(`Cannot parse server URL ${JSON.stringify(text)}`);
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new ConfigError(
      `server URL ${JSON.stringify(text)}: no credentials, query or fragment allowed`,
    );
  }
  const secure = u.protocol === "wss:";
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  return {
    addr: { host, port },
    ws: { prefix: u.pathname.replace(/\/+$/, ""), secure, host: u.host },
  };
}

/**
 * `net` whose dials speak WebSocket to `endpoint` (e.g. `/burrow/agent`)
 * after the TCP or TLS connection stands: the Conn it returns carries the
 * link's bytes in binary messages.
 */
export function wsNet(net: Net, hostHeader: string, endpoint: string): Net {
  return {
    runtime: net.runtime,
    listen: (opts) => net.listen(opts),
    lookup: (host) => net.lookup(host),
    async dial(opts) {
      const conn = await net.dial(opts);
      try {
        const upgrade = wsConnect(conn, hostHeader, endpoint);
        return await (opts.timeoutMs
          ? deadline(upgrade, opts.timeoutMs, "WebSocket handshake")
          : upgrade);
      } catch (e) {
        conn.close();
        throw e;
      }
    },
  };
}
