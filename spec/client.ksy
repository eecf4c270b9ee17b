meta:
  id: client
  title: burrow v1 client-proxy stream messages
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
    - control
    - registries
  endian: be
doc: |
  Payloads of CONNECT, CHECK and CONNECT_RESULT on a client-proxy connection
  (CLIENT_HELLO and CLIENT_READY are in handshake.ksy). This type has no
  fields of its own; each message is a type of it, selected by frame.ksy.
doc-ref: SPEC.md §2.3
types:
  connect:
    doc: CONNECT (0x32), client proxy → server.
    doc-ref: SPEC.md §5.17
    seq:
      - id: len_agent
        type: u1
        valid:
          max: 64
      - id: agent
        size: len_agent
        -text: name
        doc: |
          Agent name, UTF-8 (in fact `A-Z a-z 0-9 . _ -`, SPEC.md §10); empty =
          the client's only granted agent (SPEC.md §7.1).
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
  check:
    doc: |
      CHECK (0x34), client proxy → server: a login check instead of CONNECT;
      answered by CONNECT_RESULT, then the server closes.
    doc-ref: SPEC.md §5.21
    seq:
      - id: len_agent
        type: u1
        valid:
          max: 64
      - id: agent
        size: len_agent
        -text: name
        doc: Agent name, UTF-8, as in CONNECT; empty = the client's only granted agent.
  connect_result:
    doc: CONNECT_RESULT (0x33), server → client proxy.
    doc-ref: SPEC.md §5.18
    seq:
      - id: status
        type: u1
        enum: registries::status
      - id: reason
        type: u1
        enum: registries::reason
        doc: Why the stream was refused (SPEC.md §9.7); 0 with status 0.
      - id: bound
        type: addr
        doc: As in OPEN_RESULT.
