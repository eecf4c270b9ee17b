meta:
  id: pool
  title: burrow pool-connection and link messages
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
    - control
    - registries
  endian: be
doc: |
  Payloads of the messages of a pool connection: POOL_HELLO, OPEN and
  OPEN_RESULT; and LINK_HELLO, the one BRRW frame of a link,
  after which the link carries link frames (link.ksy). This type has no
  fields of its own; each message is a type of it, selected by frame.ksy.
doc-ref: SPEC.md §2.2
types:
  pool_hello:
    doc: POOL_HELLO (0x20), agent → server; the server does not answer a valid one.
    doc-ref: SPEC.md §5.12
    seq:
      - id: version
        type: u1
        valid:
          min: 1
        doc: The session's protocol version.
      - id: binding
        type: session_binding
        -flat: true
  link_hello:
    doc: |
      LINK_HELLO (0x23), agent → server: the first frame of a
      link, laid out as POOL_HELLO. The server does not answer a valid one;
      the connection then carries link frames (link.ksy), not BRRW frames.
    doc-ref: SPEC.md §5.20
    seq:
      - id: version
        type: u1
        valid:
          min: 1
        doc: The session's protocol version.
      - id: binding
        type: session_binding
        -flat: true
  session_binding:
    doc: |
      What POOL_HELLO and LINK_HELLO carry after the version: the session,
      the connection's number in it and the proof over the pool transcript.
    doc-ref: SPEC.md §6.3
    seq:
      - id: agent_id
        type: u4
        doc: From WELCOME.
      - id: session_id
        size: 16
        doc: From WELCOME.
      - id: seq
        type: u4
        doc: |
          Starts at 1 for each session, +1 per pool connection; a link takes
          one number of the same sequence.
      - id: len_proof
        type: u1
        valid:
          any-of: [32, 64]
        doc: 32 for method token, 64 for ed25519 (SPEC.md §6.3).
      - id: proof
        size: len_proof
  open:
    doc: OPEN (0x21), server → agent.
    doc-ref: SPEC.md §5.13
    seq:
      - id: stream_id
        type: u4
      - id: client_id
        type: u4
      - id: len_client
        type: u1
        valid:
          min: 1
          max: 96
      - id: client
        size: len_client
        -text: utf8
        doc: |
          Client name, for the agent's per-client allowlist, or a signed-in
          person's subject (SPEC.md §6.4); UTF-8 without control characters
          (checked by the decoder).
      - id: protocol
        type: u1
        enum: control::rule_protocol
        valid:
          in-enum: true
        doc: |
          6 = TCP: a stream to `target`; 17 = UDP: a UDP association, whose
          stream then carries datagram records (udp_record.ksy); `target` is
          then the client's requested address, for the log only (SPEC.md §2.5).
      - id: target
        type: addr
  open_result:
    doc: OPEN_RESULT (0x22), agent → server; status 0 starts the raw-bytes phase.
    doc-ref: SPEC.md §5.14
    seq:
      - id: stream_id
        type: u4
      - id: status
        type: u1
        enum: registries::status
      - id: bound
        type: addr
        doc: The agent's local address; IPv4 0.0.0.0:0 when not connected.
