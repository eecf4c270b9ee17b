meta:
  id: link
  title: burrow link frame (7-byte header and typed body)
  license: MIT
  ks-version: "0.11"
  endian: be
doc: |
  One link frame. A link is one long-lived connection per
  session from the agent to the agent port; its first frame is the BRRW
  frame LINK_HELLO (pool.ksy), and after it the connection carries only link
  frames, which multiplex many pool streams: a 7-byte header (type, stream
  id, body length) then `len_body` bytes of body. The rules: the type is one
  of `link_frame_type`; the stream id is not 0; a DATA body is 1..65535
  bytes of stream data; OPEN, FIN, RESET, GRANT, PING and PONG have no
  body (GRANT's stream id is the highest id the server may open; PING's is
  a number of the sender's, which PONG echoes); a WINDOW body is 4
  bytes (all checked as soon as the header is in), a u4 increment ≥ 1. A frame
  that breaks one is a link violation: the receiver closes the link at once
  (a link has no ERROR frame). The rules that need the link's state (stream
  ids, windows) are SPEC.md §3.2's, not this parser's.
doc-ref: SPEC.md §3.2
seq:
  - id: type
    type: u1
    enum: link_frame_type
    valid:
      in-enum: true
    doc: SPEC.md §9.6; a type not in the enum is a link violation.
  - id: stream_id
    type: u4
    valid:
      min: 1
    doc: The stream the frame belongs to; 0 is never a stream.
  - id: len_body
    type: u2
    valid:
      expr: |
        type == link_frame_type::data ? _ >= 1 :
        type == link_frame_type::window ? _ == 4 : _ == 0
    doc: |
      Bytes of body that follow: 1..65535 for DATA, 4 for WINDOW, 0 for
      OPEN, FIN, RESET, GRANT, PING and PONG.
  - id: body
    size: len_body
    type:
      switch-on: type
      cases:
        'link_frame_type::open': empty
        'link_frame_type::window': window
        'link_frame_type::fin': empty
        'link_frame_type::reset': empty
        'link_frame_type::grant': empty
        'link_frame_type::ping': empty
        'link_frame_type::pong': empty
    doc: |
      DATA: the stream's bytes, kept raw (no case); WINDOW: `window`;
      OPEN, FIN, RESET, GRANT, PING, PONG: `empty`.
types:
  window:
    doc: |
      Body of WINDOW: the receiver of the stream's DATA lets the sender send
      `increment` more bytes of it.
    doc-ref: SPEC.md §3.2
    seq:
      - id: increment
        type: u4
        valid:
          min: 1
  empty:
    doc: The empty body of OPEN, FIN, RESET, GRANT, PING and PONG.
enums:
  link_frame_type:
    0x00:
      id: data
      doc: stream bytes, 1..65535 of them (SPEC.md §3.2)
    0x01:
      id: open
      doc: a new stream, from the server, with an id the agent granted; no body (SPEC.md §3.2)
    0x02:
      id: window
      doc: u4 increment ≥ 1 of the stream's send window (SPEC.md §3.2)
    0x03:
      id: fin
      doc: the sender's direction of the stream has ended; no body (SPEC.md §3.2)
    0x04:
      id: reset
      doc: the stream is closed in both directions; no body (SPEC.md §3.2)
    0x05:
      id: grant
      doc: |
        agent → server: the server may open streams up to the
        frame's stream id; no body (SPEC.md §3.2)
    0x06:
      id: ping
      doc: |
        either direction: answer with PONG carrying the same stream id
        field (a number of the sender's, no stream), once every frame
        before it was read; no body (SPEC.md §3.2)
    0x07:
      id: pong
      doc: the answer to the oldest PING not yet answered, with its stream id field; no body (SPEC.md §3.2)
