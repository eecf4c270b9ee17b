meta:
  id: control
  title: burrow v1 control-connection messages
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
    - registries
  endian: be
doc: |
  Payloads of the messages of an established control connection: ANNOUNCE,
  POOL_REQUEST, POOL_CONFIRM, PING, PONG, GOAWAY and INSTANCE. This type has no
  fields of its own; each message is a type of it, selected by frame.ksy.
doc-ref: SPEC.md §2.1
types:
  announce:
    doc: |
      ANNOUNCE (0x10), agent → server: the targets the agent serves. Each
      ANNOUNCE replaces the previous one.
    doc-ref: SPEC.md §5.7
    seq:
      - id: num_rules
        type: u2
        valid:
          max: 512
      - id: rules
        type: rule
        repeat: expr
        repeat-expr: num_rules
  rule:
    doc: One allowlist rule of ANNOUNCE.
    doc-ref: SPEC.md §5.7
    seq:
      - id: kind
        type: u1
        enum: rule_kind
        valid:
          in-enum: true
      - id: len_client
        type: u1
        valid:
          max: 64
      - id: client
        size: len_client
        -text: name
        doc: |
          Client name this rule is for, UTF-8 (in fact `A-Z a-z 0-9 . _ -`,
          SPEC.md §10); empty = every client.
      - id: body
        type:
          switch-on: kind
          cases:
            'rule_kind::host': host_rule
            'rule_kind::cidr4': cidr4_rule
            'rule_kind::cidr6': cidr6_rule
      - id: port_min
        type: u2
      - id: port_max
        type: u2
        valid:
          min: port_min
      - id: protocol
        type: u1
        enum: rule_protocol
        valid:
          in-enum: true
        doc: |
          The transport the rule allows, by its IP protocol number: 6 = TCP,
          17 = UDP (SPEC.md §9.8). A rule allows one of them only.
  host_rule:
    doc: |
      Host pattern: `db.corp`, `*.corp` (any subdomain) or `*` (any host),
      1..255 bytes.
    doc-ref: SPEC.md §7.3
    seq:
      - id: len_pattern
        type: u1
        valid:
          min: 1
          max: 255
      - id: pattern
        size: len_pattern
        -text: utf8
        doc: UTF-8; decoders reject invalid UTF-8.
  cidr4_rule:
    doc: IPv4 CIDR prefix.
    seq:
      - id: addr
        size: 4
        -text: ipv4
      - id: prefix
        type: u1
        valid:
          max: 32
  cidr6_rule:
    doc: IPv6 CIDR prefix.
    seq:
      - id: addr
        size: 16
        -text: ipv6
      - id: prefix
        type: u1
        valid:
          max: 128
  pool_request:
    doc: POOL_REQUEST (0x11), server → agent.
    doc-ref: SPEC.md §5.8
    seq:
      - id: request_id
        type: u4
        doc: Echoed in POOL_CONFIRM.
      - id: count
        type: u2
        valid:
          min: 1
        doc: How many more pool connections to open.
  pool_confirm:
    doc: POOL_CONFIRM (0x12), agent → server.
    doc-ref: SPEC.md §5.9
    seq:
      - id: request_id
        type: u4
        doc: From POOL_REQUEST.
      - id: count
        type: u2
        doc: How many of the requested connections the agent opened.
  ping_pong:
    doc: PING (0x13) and PONG (0x14); PONG echoes the PING's data.
    doc-ref: SPEC.md §5.10
    seq:
      - id: data
        size: 8
  goaway:
    doc: |
      GOAWAY (0x15), either direction: the receiver stops using the session
      for new streams; open streams continue.
    doc-ref: SPEC.md §5.11
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
        doc: UTF-8; decoders reject invalid UTF-8 and keep a leading BOM.
  instance:
    doc: |
      INSTANCE (0x16), agent → server: which running
      copy of the agent this session is. Sent once, after WELCOME and before
      ANNOUNCE. Sessions of one name with different instances are replicas.
    doc-ref: SPEC.md §5.19
    seq:
      - id: instance
        size: 16
        doc: Random, made when the agent process starts; the same on every server.
      - id: nameserver
        type: addr
        doc: |
          The agent's first nameserver (its resolver configuration, port 53),
          the default DNS server of a client proxy's internal DNS (SPEC.md
          §5.19, §10.2); IPv4 0.0.0.0 port 0 when it has none.
enums:
  rule_kind:
    1: host
    2: cidr4
    3: cidr6
  rule_protocol:
    6: tcp
    17: udp
