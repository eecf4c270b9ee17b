/**
 * What the owner of a link (link.ts, SPEC.md §2.4) sets: its side (the
 * agent grants stream ids and accepts the streams, `onStream`; the server
 * opens streams within the grants, `onGrant`), its limits and deadline, and
 * the callbacks for limits and its end.
 *
 * @module
 */
import type { Conn } from "./net.ts";

/** The agent's side: grants stream ids ({@link Link.grant}) and accepts the streams. */
export interface AcceptorOptions extends CommonOptions {
  /**
   * Called with each stream the peer opens; the peer may open only the
   * stream ids this side granted, an OPEN beyond them is a link violation.
   */
  onStream: (stream: Conn) => void;
  onGrant?: never;
}

/** The server's side: opens streams ({@link Link.open}) within the peer's grants. */
export interface OpenerOptions extends CommonOptions {
  /** Called with each GRANT's number of new stream ids. */
  onGrant: (added: number) => void;
  onStream?: never;
}

export type LinkOptions = AcceptorOptions | OpenerOptions;

interface CommonOptions {
  /** Streams open at once that the peer may have; an OPEN beyond it is RESET. Default 65536. */
  maxStreams?: number;
  /**
   * Inspects the first bytes received; an error it returns fails the link
   * (the agent uses it to read a server's ERROR frame refusing the link).
   */
  first?: (chunk: Uint8Array) => Error | null;
  /**
   * Called when a limit of the link triggers, before it fails: its name (as
   * in `limit=…`) and value, to log and count.
   */
  onLimit?: (limit: string, max: number) => void;
  /**
   * Bytes of a frame held this long with no frame completed fail the link
   * (`limit=frame_timeout`, SPEC.md §10.1): a peer trickling a frame in
   * cannot hold its buffer forever. Absent: no deadline.
   */
  frameTimeoutMs?: number;
  /** Called once when the link fails or closes, with the reason (null after `close()`). */
  onClose?: (why: Error | null) => void;
  /** The last stream id of the link (default 2³²−1; tests lower it). */
  lastId?: number;
}
