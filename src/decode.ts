/**
 * Frame decoding (SPEC.md §3, §5, §10) on top of the parsers that
 * scripts/gen.ts generates from spec/*.ksy.
 *
 * The frame header is checked once, by the framer (framer.ts, SPEC.md §3
 * order and codes, before the payload is buffered). {@link decode} trusts
 * that header: its type byte selects the generated payload type (e.g.
 * `Handshake.Hello` for AGENT_HELLO), which is constructed directly on a
 * stream over the payload bytes. The generated parsers read the wire layout
 * and check what the .ksy states (`valid:`); this module maps the result to
 * the typed {@link Message}, checks the rest of SPEC.md §10 (the name
 * character set, trailing bytes, strict UTF-8 of text fields) and turns
 * every failure into a {@link ProtocolError}.
 *
 * @module
 */
import { Client } from "../generated/Client.js";
import { Control } from "../generated/Control.js";
import { Handshake } from "../generated/Handshake.js";
import { Pool } from "../generated/Pool.js";
import { ProtocolError } from "./errors.ts";
import { formatIPv4, formatIPv6 } from "./ip.ts";
import { addrTarget, describeError, type KaitaiStream, kaitaiStream, utf8 } from "./kaitai.ts";
import {
  type Hello,
  Limits,
  type Message,
  MsgType,
  type MsgTypeName,
  type Rule,
} from "./messages.ts";

const TYPE_NAMES: ReadonlyMap<number, MsgTypeName> = new Map(
  Object.entries(MsgType).map(([name, value]) => [value, name as MsgTypeName]),
);

/** Offset of the message type in the frame header (SPEC.md §3). */
const TYPE_OFFSET = 5;

/** First type of the optional-extension range (SPEC.md §3, §9.1). */
const FIRST_EXTENSION_TYPE = 0x80;

/** Agent and client names (SPEC.md §10). */
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** The name of a known message type, or undefined. */
export function messageTypeName(type: number): MsgTypeName | undefined {
  return TYPE_NAMES.get(type);
}

// ---------------------------------------------------------------------------
// Payloads

class Invalid extends Error {}

/** An agent or client name (SPEC.md §10); empty only if `allowEmpty`. */
function nameField(what: string, bytes: Uint8Array, allowEmpty: boolean): string {
  const s = utf8(bytes, what);
  if (allowEmpty && s === "") return s;
  if (!NAME_RE.test(s)) {
    throw new Invalid(`${what} ${JSON.stringify(s)} is not 1..64 bytes of A-Z a-z 0-9 . _ -`);
  }
  return s;
}

function hello(p: Handshake.Hello): Hello {
  return {
    minVersion: p.minVersion,
    maxVersion: p.maxVersion,
    authMethod: p.authMethod,
    name: nameField("name", p.name, false),
    software: utf8(p.software, "software"),
  };
}

function rule(r: Control.Rule): Rule {
  const base = {
    client: nameField("rule client", r.client, true),
    portMin: r.portMin,
    portMax: r.portMax,
  };
  const body = r.body;
  if (body instanceof Control.HostRule) {
    return { ...base, kind: "host", pattern: utf8(body.pattern, "host pattern") };
  }
  if (body instanceof Control.Cidr4Rule) {
    return { ...base, kind: "cidr4", addr: formatIPv4(body.addr), prefix: body.prefix };
  }
  if (body instanceof Control.Cidr6Rule) {
    return { ...base, kind: "cidr6", addr: formatIPv6(body.addr), prefix: body.prefix };
  }
  throw new Invalid(`rule kind ${r.kind} has no body`);
}

/**
 * Parses the payload of a `type` message from `io` with its generated payload
 * type. One case per message of SPEC.md §5, side by side with encode.ts's
 * `encodeWith`: long, but flat, and easier to check against the spec whole.
 */
function parsePayload(type: MsgTypeName, io: KaitaiStream): Message {
  switch (type) {
    case "AGENT_HELLO":
    case "CLIENT_HELLO":
      return { type, ...hello(new Handshake.Hello(io)) };
    case "CHALLENGE": {
      const p = new Handshake.Challenge(io);
      return { type, version: p.version, nonce: p.nonce.slice() };
    }
    case "AUTH":
      return { type, proof: new Handshake.Auth(io).proof.slice() };
    case "WELCOME": {
      const p = new Handshake.Welcome(io);
      return {
        type,
        agentId: p.agentId,
        sessionId: p.sessionId.slice(),
        heartbeatIntervalMs: p.heartbeatIntervalMs,
        heartbeatTimeoutMs: p.heartbeatTimeoutMs,
        poolMin: p.poolMin,
        poolMax: p.poolMax,
      };
    }
    case "ERROR": {
      const p = new Handshake.Error(io);
      return { type, code: p.code, message: utf8(p.message, "message") };
    }
    case "ANNOUNCE":
      return { type, rules: new Control.Announce(io).rules.map(rule) };
    case "POOL_REQUEST": {
      const p = new Control.PoolRequest(io);
      return { type, requestId: p.requestId, count: p.count };
    }
    case "POOL_CONFIRM": {
      const p = new Control.PoolConfirm(io);
      return { type, requestId: p.requestId, count: p.count };
    }
    case "PING":
    case "PONG":
      return { type, data: new Control.PingPong(io).data.slice() };
    case "INSTANCE":
      return { type, instance: new Control.Instance(io).instance.slice() };
    case "GOAWAY": {
      const p = new Control.Goaway(io);
      return { type, code: p.code, message: utf8(p.message, "message") };
    }
    case "POOL_HELLO":
    case "LINK_HELLO": {
      // One layout (spec/pool.ksy).
      const p = type === "POOL_HELLO" ? new Pool.PoolHello(io) : new Pool.LinkHello(io);
      const b = p.binding;
      return {
        type,
        version: p.version,
        agentId: b.agentId,
        sessionId: b.sessionId.slice(),
        seq: b.seq,
        proof: b.proof.slice(),
      };
    }
    case "OPEN": {
      const p = new Pool.Open(io);
      return {
        type,
        streamId: p.streamId,
        clientId: p.clientId,
        client: nameField("client", p.client, false),
        target: addrTarget(p.target),
      };
    }
    case "OPEN_RESULT": {
      const p = new Pool.OpenResult(io);
      return { type, streamId: p.streamId, status: p.status, bound: addrTarget(p.bound) };
    }
    case "CLIENT_READY":
      return { type, clientId: new Handshake.ClientReady(io).clientId };
    case "CONNECT": {
      const p = new Client.Connect(io);
      return { type, agent: nameField("agent", p.agent, true), target: addrTarget(p.target) };
    }
    case "CONNECT_RESULT": {
      const p = new Client.ConnectResult(io);
      return { type, status: p.status, reason: p.reason, bound: addrTarget(p.bound) };
    }
    case "CHECK":
      return { type, agent: nameField("agent", new Client.Check(io).agent, true) };
  }
}

/**
 * Decodes one whole frame as `Framer.next()` (framer.ts) returns it: a 12-byte
 * header that the framer has already validated (SPEC.md §3), then exactly
 * its payload. The header is not checked again: its type byte selects the
 * payload type and every byte after it is the payload (see
 * {@link decodePayload}). Code that has bytes from elsewhere runs them
 * through a `Framer` first.
 *
 * @returns the message, or `null` for a frame of an unknown extension type
 *   (0x80–0xFF), which the receiver skips (SPEC.md §3).
 * @throws {ProtocolError} `invalid_message` for fewer than 12 bytes, else
 *   as {@link decodePayload}. Nothing else is ever thrown.
 */
export function decode(frame: Uint8Array): Message | null {
  if (frame.length < Limits.HEADER_SIZE) {
    throw new ProtocolError(
      "invalid_message",
      `Cannot parse frame: ${frame.length} bytes, shorter than the ${Limits.HEADER_SIZE}-byte header`,
    );
  }
  return decodePayload(frame[TYPE_OFFSET]!, frame.subarray(Limits.HEADER_SIZE));
}

/**
 * Decodes the payload of a message of type `type` (exactly the payload
 * bytes) with the generated parser of that type.
 *
 * @returns the message, or `null` for an unknown extension type (0x80–0xFF).
 * @throws {ProtocolError} with the SPEC.md §9.2 code to send:
 *   `unknown_type` for an unknown type below 0x80 (which a framer has
 *   already refused), `invalid_message` when the payload does not parse,
 *   has trailing bytes, is not valid UTF-8 where the .ksy documents text, or
 *   breaks a limit of SPEC.md §10. Nothing else is ever thrown.
 */
export function decodePayload(type: number, payload: Uint8Array): Message | null {
  const name = TYPE_NAMES.get(type);
  if (name === undefined) {
    if (type >= FIRST_EXTENSION_TYPE) return null;
    throw new ProtocolError(
      "unknown_type",
      `Cannot parse frame: unknown message type 0x${type.toString(16).padStart(2, "0")}`,
    );
  }
  try {
    const io = kaitaiStream(payload);
    const msg = parsePayload(name, io);
    if (!io.isEof()) {
      const n = io.size - io.pos;
      throw new Invalid(`${n} trailing byte${n === 1 ? "" : "s"}`);
    }
    return msg;
  } catch (err) {
    const why = err instanceof Invalid ? err.message : describeError(err);
    throw new ProtocolError("invalid_message", `Cannot parse ${name} payload: ${why}`, {
      cause: err,
    });
  }
}
