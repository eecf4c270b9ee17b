/**
 * How an agent or a client proxy reaches the server (SPEC.md §3.1): raw
 * `host:port` (TCP or TLS, the default), or a WebSocket URL
 * `wss://host[:port][/prefix]` (`ws://` only with `--plain`, for a reverse
 * proxy that terminates TLS; parsed by config.ts `parseServer`). Over
 * WebSocket the agent uses `prefix/agent` and the client proxy
 * `prefix/client`; {@link wsNet} dials that way.
 *
 * @module
 */
import type { Net } from "./net.ts";
import { deadline } from "./time.ts";
import { wsConnect } from "./ws.ts";

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
    bindUdp: (opts) => net.bindUdp(opts),
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
