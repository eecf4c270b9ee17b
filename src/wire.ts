/**
 * A connection in its framed phase (SPEC.md §3): typed messages in and out,
 * then `rest()` hands over the bytes already read when the connection turns
 * into a raw pipe.
 *
 * @module
 */
import { fmt } from "./addr.ts";
import { type Credential, transcript } from "./auth.ts";
import { decode } from "./decode.ts";
import { encode } from "./encode.ts";
import { NetError, PeerError, ProtocolError } from "./errors.ts";
import { Framer } from "./framer.ts";
import {
  ErrorCode,
  type ErrorCodeName,
  type Message,
  type MessageOf,
  type MsgTypeName,
  VERSION_MAX,
  VERSION_MIN,
} from "./messages.ts";
import { linger } from "./linger.ts";
import { type Conn, type DialOptions, type Net } from "./net.ts";
import { deadline } from "./time.ts";

/** The first bytes of a TLS record (content type 20..23, major version 3): a TLS peer on a plain link. */
function looksLikeTls(chunk: Uint8Array): boolean {
  return chunk[0]! >= 0x14 && chunk[0]! <= 0x17 && chunk[1] === 0x03;
}

export class Wire {
  readonly #framer = new Framer();
  #received = 0;
  /** Since when bytes are held with no frame completed (ms since the epoch); 0: none held. */
  #heldSince = 0;
  constructor(readonly conn: Conn) {}

  /** How long bytes have been held with no frame completed, in ms at `now` (0: none held). */
  heldFor(now: number): number {
    return this.#heldSince === 0 ? 0 : now - this.#heldSince;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#received;
  }

  /**
   * The next message, or null at a clean EOF between frames. Throws
   * ProtocolError for a malformed or truncated frame and NetError when the
   * connection fails. Extension frames (0x80–0xFF) are skipped.
   */
  async recv(): Promise<Message | null> {
    for (;;) {
      const frame = this.#framer.next();
      if (frame) {
        this.#heldSince = this.#framer.buffered === 0 ? 0 : Date.now();
        const msg = decode(frame);
        if (msg) return msg;
        continue;
      }
      const chunk = await this.conn.read();
      if (chunk === null) {
        const left = this.#framer.rest().length;
        if (left > 0) {
          throw new ProtocolError(
            "protocol_error",
            `Cannot parse frame: truncated after ${left} bytes`,
            {
              reply: false,
            },
          );
        }
        return null;
      }
      if (this.#received === 0 && looksLikeTls(chunk)) {
        throw new ProtocolError(
          "bad_magic",
          "Cannot parse frame: the peer sent a TLS record; it speaks TLS",
          {
            reply: false,
          },
        );
      }
      this.#received += chunk.length;
      if (this.#heldSince === 0) this.#heldSince = Date.now();
      this.#framer.push(chunk);
    }
  }

  /**
   * The next message, which must be one of `types`. ERROR from the peer
   * throws PeerError; EOF throws ProtocolError; anything else throws
   * ProtocolError `unexpected_message`.
   */
  async expect<T extends MsgTypeName>(...types: T[]): Promise<MessageOf<T>> {
    const msg = await this.recv();
    if (msg === null) {
      throw new ProtocolError(
        "protocol_error",
        `Connection closed while waiting for ${types.join(" or ")}`,
        {
          reply: false,
        },
      );
    }
    if ((types as string[]).includes(msg.type)) return msg as MessageOf<T>;
    if (msg.type === "ERROR") throw new PeerError(msg.code, msg.message);
    throw new ProtocolError(
      "unexpected_message",
      `Expected ${types.join(" or ")}, got ${msg.type}`,
    );
  }

  send(msg: Message): Promise<void> {
    return this.conn.write(encode(msg));
  }

  /** Send ERROR (best effort), then end cleanly so that it arrives. */
  fail(code: ErrorCodeName, message: string): Promise<void> {
    return this.last({ type: "ERROR", code: ErrorCode[code], message: message.slice(0, 1024) });
  }

  /**
   * Send `msg` as the last frame (within 1 s: the peer may have stopped
   * reading), then end cleanly so that it arrives (see linger.ts).
   */
  async last(msg: Message): Promise<void> {
    try {
      await deadline(this.send(msg), 1000, `sending ${msg.type}`);
    } catch {
      // the peer is gone; closing is all that is left
      this.conn.close();
      return;
    }
    await linger(this.conn, 1000);
  }

  /** Bytes received after the last returned frame (the raw phase's first bytes). */
  rest(): Uint8Array {
    return this.#framer.rest();
  }
}

/**
 * PING, PONG and ERROR, answered alike at both ends of a control connection
 * (SPEC.md §5.6, §5.10); any other message is `unexpected_message`.
 */
export async function answerControl(wire: Wire, msg: Message): Promise<void> {
  switch (msg.type) {
    case "PING":
      return await wire.send({ type: "PONG", data: msg.data });
    case "PONG":
      return;
    case "ERROR":
      throw new PeerError(msg.code, msg.message);
    default:
      throw new ProtocolError(
        "unexpected_message",
        `${msg.type} is not allowed on a control connection`,
      );
  }
}

/**
 * The proving side of SPEC.md §2.1/§2.3: send AGENT_HELLO or CLIENT_HELLO,
 * answer the CHALLENGE with AUTH. Resolves with the chosen version and the
 * nonce (pool connections prove over it too); what follows is up to the role.
 */
export async function login(
  wire: Wire,
  role: "agent" | "client",
  name: string,
  credential: Credential,
  software: string,
  plain = false,
): Promise<{ version: number; nonce: Uint8Array }> {
  await wire.send({
    type: role === "agent" ? "AGENT_HELLO" : "CLIENT_HELLO",
    minVersion: VERSION_MIN,
    maxVersion: VERSION_MAX,
    authMethod: credential.method,
    name,
    software,
  });
  let ch: MessageOf<"CHALLENGE">;
  try {
    ch = await wire.expect("CHALLENGE");
  } catch (e) {
    // A TLS server answers our plain HELLO with an alert, a reset or a bare close.
    const silent = wire.received === 0 &&
      (e instanceof ProtocolError || (e instanceof NetError && e.code === "ECONNRESET"));
    if (plain && e instanceof ProtocolError && e.code === "bad_magic" && wire.received === 0) {
      throw new ProtocolError(
        "protocol_error",
        "The server answered with TLS: it speaks TLS, drop --plain",
        {
          reply: false,
          cause: e,
        },
      );
    }
    if (plain && silent) {
      throw new ProtocolError(
        "protocol_error",
        "The server closed the connection without a CHALLENGE: if it speaks TLS, drop --plain " +
          "(or it refused this address: see the server's log)",
        { reply: false, cause: e },
      );
    }
    throw e;
  }
  await wire.send({
    type: "AUTH",
    proof: await credential.prove(transcript(role, ch.version, ch.nonce, name)),
  });
  return { version: ch.version, nonce: ch.nonce };
}

/**
 * Dial a burrow server. A TLS dial that the server ends during the
 * handshake (every runtime says ECONNRESET) is most likely a server without
 * TLS on that port: ETLS saying so and what to do (the reverse of
 * {@link login}'s "drop --plain").
 */
export async function dialServer(net: Net, opts: DialOptions): Promise<Conn> {
  try {
    return await net.dial(opts);
  } catch (e) {
    if (!opts.tls || !(e instanceof NetError) || e.code !== "ECONNRESET") throw e;
    throw new NetError(
      "ETLS",
      `The server at ${fmt(opts)} does not speak TLS on that port (it closed the connection ` +
        "in the TLS handshake): check the port, or use --plain if the server really runs with " +
        "tls: off",
      { cause: e },
    );
  }
}
