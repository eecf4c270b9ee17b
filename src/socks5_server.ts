/**
 * The server side of the SOCKS5 handshake (SPEC.md §8, §10.2; RFC 1928,
 * RFC 1929), shared by the routing server's SOCKS5 port and the client
 * proxy's local port: method selection, user/password, the request. Refusals
 * the RFC defines are answered here (method 0xFF, RFC 1929 status 1, reply
 * 0x07 for other commands, 0x08 for an unknown address type, 0x02 for a
 * domain name that is not valid UTF-8); malformed input
 * throws {@link SocksError} or {@link EofError} and gets no reply.
 *
 * @module
 */
import { SocksError } from "./errors.ts";
import { linger } from "./linger.ts";
import { Status, type Target } from "./messages.ts";
import type { Conn } from "./net.ts";
import type { Reader } from "./reader.ts";
import { err, ok, type Result } from "./result.ts";
import { parseGreeting, parseRequest, parseUserpassRequest } from "./socks5_decode.ts";
import { methodSelection, reply, SocksCmd, SocksMethod, userpassReply } from "./socks5_encode.ts";

export interface SocksServerOptions {
  /** Accept method 0x00 (no authentication) when offered; else 0x02 is required. */
  noAuth: boolean;
  /**
   * RFC 1929: are these credentials good? Not called for method 0x00. A
   * boolean when known at once (no turn of the event loop is spent on it).
   */
  checkUser(username: string, password: string): boolean | Promise<boolean>;
  /** Take UDP ASSOCIATE (RFC 1928 §7) too; else it gets reply 0x07 as BIND does. */
  udp?: boolean;
}

/** A CONNECT (or, with `udp`, UDP ASSOCIATE) request that passed the handshake. */
export interface SocksRequest {
  username: string | null;
  /** `connect`, or `udpAssociate` (whose target is the client's address, RFC 1928 §7). */
  command: "connect" | "udpAssociate";
  target: Target;
}

/** Why the handshake refused a request (already answered). */
export interface SocksRefusal {
  refusal:
    | "no_acceptable_method"
    | "auth_failed"
    | "command_not_supported"
    | "address_type_not_supported"
    | "bad_target";
  username: string | null;
  detail: string;
}

/** Run the handshake on `conn` up to a CONNECT request; the caller answers it with {@link socksReply}. */
export async function acceptSocks(
  conn: Conn,
  rd: Reader,
  opts: SocksServerOptions,
): Promise<Result<SocksRequest, SocksRefusal>> {
  const greeting = await rd.parse(parseGreeting, "SOCKS5 greeting");
  let username: string | null = null;
  if (opts.noAuth && greeting.methods.includes(SocksMethod.noAuth)) {
    await conn.write(methodSelection(SocksMethod.noAuth));
  } else if (greeting.methods.includes(SocksMethod.userpass)) {
    await conn.write(methodSelection(SocksMethod.userpass));
    const up = await rd.parse(parseUserpassRequest, "SOCKS5 user/password");
    username = up.username;
    const checked = opts.checkUser(up.username, up.password);
    if (!(typeof checked === "boolean" ? checked : await checked)) {
      await conn.write(userpassReply(1));
      void linger(conn);
      return err({ refusal: "auth_failed", username, detail: "bad user name or password" });
    }
    await conn.write(userpassReply(0));
  } else {
    await conn.write(methodSelection(SocksMethod.noAcceptable));
    void linger(conn);
    return err({
      refusal: "no_acceptable_method",
      username,
      detail: `no acceptable method among ${greeting.methods.join(",")}`,
    });
  }
  let req;
  try {
    req = await rd.parse(parseRequest, "SOCKS5 request");
  } catch (e) {
    if (!(e instanceof SocksError)) throw e;
    if (e.code === "bad_domain") {
      await socksReply(conn, Status.not_allowed); // as any domain that is no host name (§7.3)
      return err({ refusal: "bad_target", username, detail: e.message });
    }
    if (e.code !== "bad_address_type") throw e;
    await socksReply(conn, Status.address_type_not_supported);
    return err({ refusal: "address_type_not_supported", username, detail: e.message });
  }
  const udp = opts.udp === true && req.command === SocksCmd.udpAssociate;
  if (req.command !== SocksCmd.connect && !udp) {
    await socksReply(conn, Status.command_not_supported);
    return err({
      refusal: "command_not_supported",
      username,
      detail: `command ${req.command} not supported`,
    });
  }
  return ok({ username, command: udp ? "udpAssociate" : "connect", target: req.target });
}

/**
 * Answer a CONNECT with `status`. A refusal (status ≠ 0) then ends the
 * connection cleanly, so the reply arrives even over TLS; the returned
 * promise does not wait for that.
 */
export async function socksReply(conn: Conn, status: number, bound?: Target): Promise<void> {
  await conn.write(reply(status, bound));
  if (status !== Status.succeeded) void linger(conn);
}
