meta:
  id: udp_record
  title: burrow datagram record (the bytes of a UDP association's stream)
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
  endian: be
doc: |
  One datagram on a UDP association's stream (OPEN or CONNECT with
  protocol 17), after OPEN_RESULT / CONNECT_RESULT status 0: records follow
  each other back to back in both directions, one per datagram. Toward the
  agent `addr` is the datagram's target (IPv4, IPv6 or a domain name the
  agent resolves); toward the client it is the datagram's source (an IP
  address). `len_body` is checked from its 2 bytes, before the body is
  buffered; a record outside these rules resets the stream.
doc-ref: SPEC.md §2.5
seq:
  - id: len_body
    type: u2
    valid:
      min: 5
      max: 65526
    doc: |
      Bytes of `addr` and `data`: at least the smallest address (a
      one-byte name, 5 bytes), at most the largest UDP payload (65507)
      after an IPv6 address (19 bytes).
  - id: body
    type: body
    size: len_body
types:
  body:
    doc: The datagram's address and payload.
    seq:
      - id: addr
        type: addr
        doc: Toward the agent the target, toward the client the source.
      - id: data
        size-eos: true
        valid:
          expr: _.length <= 65507
        doc: The datagram's payload, 0..65507 bytes.
