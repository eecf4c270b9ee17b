/**
 * What the owner of a link (link.ts, SPEC.md §2.4) sets: which side opens
 * streams and which grants them, its limits and deadline, and the callbacks
 * for streams, grants, limits and its end.
 *
 * @module
 */
import type { Conn } from "./net.ts";

export interface LinkOptions {
  /** Called with each stream the peer opens; absent = the peer may not open streams. */
  onStream?: (stream: Conn) => void;
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
  /** The last stream id this side may open (default 2³²−1; tests lower it). */
  lastId?: number;
  /**
   * The side that accepts streams (`onStream`): the peer may open
   * only the stream ids this side granted ({@link Link.grant}); an OPEN
   * beyond them is a link violation.
   */
  granting?: boolean;
  /**
   * The side that opens streams: called with each GRANT's number
   * of new stream ids; {@link Link.open} stays within them. Absent: a GRANT
   * is a link violation.
   */
  onGrant?: (added: number) => void;
}
