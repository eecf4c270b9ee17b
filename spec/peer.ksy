meta:
  id: peer
  title: burrow v1 peer-link messages (server to server)
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
    - control
  endian: be
doc: |
  Payloads of the messages of a peer link between two servers of a fleet:
  PEER_HELLO and PEER_WELCOME around the CHALLENGE and AUTH of
  handshake.ksy, after which the link carries link frames (link.ksy); and
  FORWARD, FORWARD_CHECK and FLEET, each the first DATA of a stream the
  dialing server opens on it. This type has no fields of its own; each
  message is a type of it, selected by frame.ksy.
doc-ref: SPEC.md §2.6
types:
  peer_hello:
    doc: PEER_HELLO (0x40), dialing server → accepting server, the first frame of a peer link.
    doc-ref: SPEC.md §5.22
    seq:
      - id: min_version
        type: u1
        valid:
          min: 1
      - id: max_version
        type: u1
        valid:
          min: min_version
      - id: len_name
        type: u1
        valid:
          min: 1
          max: 64
      - id: name
        size: len_name
        -text: name
        doc: The dialing server's name in the fleet (its id in the store's presence), UTF-8 (in fact `A-Z a-z 0-9 . _ -`).
      - id: nonce
        size: 32
        doc: The dialer's fresh random bytes (`nonce_d`, SPEC.md §6.5).
  peer_welcome:
    doc: |
      PEER_WELCOME (0x43), accepting server → dialing server, after a valid
      AUTH; link frames follow it at once.
    doc-ref: SPEC.md §5.25
    seq:
      - id: len_name
        type: u1
        valid:
          min: 1
          max: 64
      - id: name
        size: len_name
        -text: name
        doc: The accepting server's name in the fleet, UTF-8 (in fact `A-Z a-z 0-9 . _ -`).
      - id: proof
        size: 32
        doc: HMAC-SHA256 of the accepting side's peer transcript (SPEC.md §6.5).
  forward:
    doc: |
      FORWARD (0x41), dialing server → accepting server: a CONNECT (a TCP
      stream or a UDP association) decided by the dialer, to be decided
      again and opened by the accepting server; the first DATA of a
      peer-link stream, answered with CONNECT_RESULT.
    doc-ref: SPEC.md §5.23
    seq:
      - id: len_client
        type: u1
        valid:
          min: 1
          max: 96
      - id: client
        size: len_client
        -text: utf8
        doc: The client's identity, a client's name or a person's subject; UTF-8.
      - id: len_agent
        type: u1
        valid:
          min: 1
          max: 64
      - id: agent
        size: len_agent
        -text: name
        doc: The agent chosen by the dialing server, UTF-8 (in fact `A-Z a-z 0-9 . _ -`).
      - id: protocol
        type: u1
        enum: control::rule_protocol
        valid:
          in-enum: true
        doc: |
          6 = TCP: a stream to `target`; 17 = UDP: a UDP association, whose
          stream then carries datagram records (udp_record.ksy) both ways;
          `target` is then the client's requested address, for the log only
          (SPEC.md §2.5, §2.6).
      - id: target
        type: addr
  forward_check:
    doc: |
      FORWARD_CHECK (0x44), dialing server → accepting server: a login check
      (CHECK) for an agent the dialer holds no session of, to be decided by
      the accepting server; the first DATA of a peer-link stream, answered
      with CONNECT_RESULT (its `bound` the agent's nameserver), then FIN.
    doc-ref: SPEC.md §5.26
    seq:
      - id: len_client
        type: u1
        valid:
          min: 1
          max: 96
      - id: client
        size: len_client
        -text: utf8
        doc: The client's identity, as in FORWARD; UTF-8.
      - id: len_agent
        type: u1
        valid:
          min: 1
          max: 64
      - id: agent
        size: len_agent
        -text: name
        doc: The agent chosen by the dialing server, UTF-8 (in fact `A-Z a-z 0-9 . _ -`).
  fleet:
    doc: |
      FLEET (0x42), dialing server → accepting server: an admin request; the
      first DATA of a peer-link stream, answered with one JSON document in
      raw bytes, then FIN.
    doc-ref: SPEC.md §5.24
    seq:
      - id: op
        type: u1
        doc: 1 view, 2 disconnect_agent, 3 disconnect_replica, 4 close_stream.
      - id: len_arg
        type: u1
      - id: arg
        size: len_arg
        -text: utf8
        doc: UTF-8; the agent name, `name instance`, or the stream id in decimal; empty for view.
