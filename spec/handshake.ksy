meta:
  id: handshake
  title: burrow v1 handshake messages
  license: MIT
  ks-version: "0.11"
  imports:
    - registries
  endian: be
doc: |
  Payloads of the handshake messages of the control and client-proxy
  connections: AGENT_HELLO and CLIENT_HELLO (`hello`), CHALLENGE, AUTH,
  WELCOME, ERROR and CLIENT_READY. This type has no fields of its own; each
  message is a type of it, selected by frame.ksy. Names are 1..64 bytes of
  `A-Z a-z 0-9 . _ -` (SPEC.md §10); the character set is checked by the
  decoder, the length here.
doc-ref: SPEC.md §2.1
types:
  hello:
    doc: |
      AGENT_HELLO (0x01) and CLIENT_HELLO (0x30), which have the same fields;
      `name` is the agent name or the client name. `min_version ≤
      max_version`, both ≥ 1 (SPEC.md §4).
    doc-ref:
      - SPEC.md §5.2
      - SPEC.md §5.15
    seq:
      - id: min_version
        type: u1
        valid:
          min: 1
      - id: max_version
        type: u1
        valid:
          min: min_version
      - id: auth_method
        type: u1
        enum: registries::auth_method
        doc: |
          Not validated against the enum: an unknown method is answered
          with ERROR `auth_method_unsupported`, not `invalid_message`.
      - id: len_name
        type: u1
        valid:
          max: 64
      - id: name
        size: len_name
        -text: name
        doc: |
          UTF-8 (in fact `A-Z a-z 0-9 . _ -`, SPEC.md §10); empty only with
          auth method issued_token (checked by the decoder, SPEC.md §5.15).
      - id: len_software
        type: u1
        valid:
          max: 255
      - id: software
        size: len_software
        -text: utf8
        doc: |
          Free text for logs, e.g. `burrow/0.1.0 node/20.20.2`; UTF-8,
          decoders reject invalid UTF-8 and keep a leading BOM.
  challenge:
    doc: CHALLENGE (0x02), server → agent or client proxy.
    doc-ref: SPEC.md §5.3
    seq:
      - id: version
        type: u1
        valid:
          min: 1
        doc: The chosen protocol version.
      - id: nonce
        size: 32
        doc: Fresh random bytes per connection.
  auth:
    doc: AUTH (0x03), agent or client proxy → server.
    doc-ref: SPEC.md §5.4
    seq:
      - id: len_proof
        type: u1
        valid:
          min: 32
          max: 191
        doc: |
          32 for method token (HMAC-SHA256), 64 for ed25519, 96..191 for
          issued_token (SPEC.md §6.2); the decoder refuses other lengths.
      - id: proof
        size: len_proof
  welcome:
    doc: WELCOME (0x04), server → agent, control.
    doc-ref: SPEC.md §5.5
    seq:
      - id: agent_id
        type: u4
        doc: Server-assigned, stable per agent name.
      - id: session_id
        size: 16
        doc: Random, names this session.
      - id: heartbeat_interval_ms
        type: u4
      - id: heartbeat_timeout_ms
        type: u4
      - id: pool_min
        type: u2
      - id: pool_max
        type: u2
  error:
    doc: ERROR (0x05), either direction; the sender closes the connection.
    doc-ref: SPEC.md §5.6
    seq:
      - id: code
        type: u2
        enum: registries::error_code
      - id: len_message
        type: u2
        valid:
          max: 1024
      - id: message
        size: len_message
        -text: utf8
        doc: |
          Human-readable, never contains a credential; UTF-8, decoders reject
          invalid UTF-8 and keep a leading BOM.
  client_ready:
    doc: CLIENT_READY (0x31), server → client proxy.
    doc-ref: SPEC.md §5.16
    seq:
      - id: client_id
        type: u4
        doc: Server-assigned, stable per client name.
