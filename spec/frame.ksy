meta:
  id: frame
  title: burrow v1 frame (12-byte header and typed payload)
  license: MIT
  ks-version: "0.11"
  imports:
    - handshake
    - control
    - pool
    - client
    - peer
  endian: be
doc: |
  Every message before the raw-bytes phase is one frame: a 12-byte header
  then `len_payload` bytes of payload. The payload of a known message type
  MUST parse exactly, with no trailing bytes (the payload type reads it from
  its own substream; the decoder checks that the substream is at its end).
  Types 0x80-0xFF not listed in `msg_type` are optional extensions: their
  payload stays raw bytes and receivers skip the frame. A receiver checks
  `len_payload` against MAX_PAYLOAD (262144) before it allocates the
  payload; burrow checks the header once, incrementally, and then parses
  the payload with the type this switch names for `msg_type`.
doc-ref: SPEC.md §3
seq:
  - id: header
    type: header
  - id: payload
    size: header.len_payload
    type:
      switch-on: header.msg_type
      cases:
        'msg_type::agent_hello': handshake::hello
        'msg_type::challenge': handshake::challenge
        'msg_type::auth': handshake::auth
        'msg_type::welcome': handshake::welcome
        'msg_type::error': handshake::error
        'msg_type::announce': control::announce
        'msg_type::pool_request': control::pool_request
        'msg_type::pool_confirm': control::pool_confirm
        'msg_type::ping': control::ping_pong
        'msg_type::pong': control::ping_pong
        'msg_type::goaway': control::goaway
        'msg_type::instance': control::instance
        'msg_type::pool_hello': pool::pool_hello
        'msg_type::open': pool::open
        'msg_type::open_result': pool::open_result
        'msg_type::link_hello': pool::link_hello
        'msg_type::client_hello': handshake::hello
        'msg_type::client_ready': handshake::client_ready
        'msg_type::connect': client::connect
        'msg_type::connect_result': client::connect_result
        'msg_type::check': client::check
        'msg_type::peer_hello': peer::peer_hello
        'msg_type::forward': peer::forward
        'msg_type::fleet': peer::fleet
        'msg_type::peer_welcome': peer::peer_welcome
        'msg_type::forward_check': peer::forward_check
types:
  header:
    doc: |
      The fixed 12-byte frame header. Receivers check, in this order: magic
      (ERROR `bad_magic`), framing version (`unsupported_frame_version`),
      flags (`invalid_message`), payload length (`frame_too_large`), then the
      message type (`unknown_type` for an unknown type below 0x80).
    doc-ref: SPEC.md §3
    seq:
      - id: magic
        contents: BRRW
      - id: frame_version
        type: u1
        valid: 1
        doc: |
          Framing (header layout) version, always 1; not the negotiated
          protocol version of SPEC.md §4.
      - id: msg_type
        type: u1
        enum: msg_type
      - id: flags
        type: u2
        valid: 0
        doc: No flags are defined in v1.
      - id: len_payload
        type: u4
        valid:
          max: 262144
        doc: Bytes of payload that follow, at most MAX_PAYLOAD.
enums:
  msg_type:
    0x01:
      id: agent_hello
      doc: agent → server, control (SPEC.md §5.2)
    0x02:
      id: challenge
      doc: server → agent or client proxy (SPEC.md §5.3)
    0x03:
      id: auth
      doc: agent or client proxy → server (SPEC.md §5.4)
    0x04:
      id: welcome
      doc: server → agent, control (SPEC.md §5.5)
    0x05:
      id: error
      doc: either direction, any connection (SPEC.md §5.6)
    0x10:
      id: announce
      doc: agent → server, control (SPEC.md §5.7)
    0x11:
      id: pool_request
      doc: server → agent, control (SPEC.md §5.8)
    0x12:
      id: pool_confirm
      doc: agent → server, control (SPEC.md §5.9)
    0x13:
      id: ping
      doc: either direction, control (SPEC.md §5.10)
    0x14:
      id: pong
      doc: either direction, control (SPEC.md §5.10)
    0x15:
      id: goaway
      doc: either direction, control (SPEC.md §5.11)
    0x16:
      id: instance
      doc: agent → server, control (SPEC.md §5.19)
    0x20:
      id: pool_hello
      doc: agent → server, pool (SPEC.md §5.12)
    0x21:
      id: open
      doc: server → agent, pool (SPEC.md §5.13)
    0x22:
      id: open_result
      doc: agent → server, pool (SPEC.md §5.14)
    0x23:
      id: link_hello
      doc: agent → server, link (SPEC.md §5.20)
    0x30:
      id: client_hello
      doc: client proxy → server (SPEC.md §5.15)
    0x31:
      id: client_ready
      doc: server → client proxy (SPEC.md §5.16)
    0x32:
      id: connect
      doc: client proxy → server (SPEC.md §5.17)
    0x33:
      id: connect_result
      doc: server → client proxy (SPEC.md §5.18)
    0x34:
      id: check
      doc: client proxy → server, instead of CONNECT (SPEC.md §5.21)
    0x40:
      id: peer_hello
      doc: dialing server → accepting server, peer (SPEC.md §5.22)
    0x41:
      id: forward
      doc: dialing server → accepting server, peer-link stream (SPEC.md §5.23)
    0x42:
      id: fleet
      doc: dialing server → accepting server, peer-link stream (SPEC.md §5.24)
    0x43:
      id: peer_welcome
      doc: accepting server → dialing server, peer (SPEC.md §5.25)
    0x44:
      id: forward_check
      doc: dialing server → accepting server, peer-link stream, instead of FORWARD for a login check (SPEC.md §5.26)
