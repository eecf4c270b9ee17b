meta:
  id: addr
  title: burrow / SOCKS5 address (atyp, host, port)
  license: MIT
  ks-version: "0.11"
  endian: be
doc: |
  A target or bound address in the SOCKS5 layout of RFC 1928 §5: an
  address type, an IPv4 address, a length-prefixed domain name or an IPv6
  address, then a port. Used by OPEN, OPEN_RESULT, CONNECT, CONNECT_RESULT
  and the SOCKS5 request and reply. A domain name is not resolved by the
  server.
doc-ref: SPEC.md §5.1
seq:
  - id: atyp
    type: u1
    enum: atyp
    valid:
      in-enum: true
  - id: host
    type:
      switch-on: atyp
      cases:
        'atyp::ipv4': ipv4_host
        'atyp::domain': domain_host
        'atyp::ipv6': ipv6_host
  - id: port
    type: u2
types:
  ipv4_host:
    doc: An IPv4 address, network byte order.
    seq:
      - id: addr
        size: 4
  domain_host:
    doc: A domain name of 1..255 bytes, not resolved by the server.
    seq:
      - id: len_name
        type: u1
        valid:
          min: 1
          max: 255
      - id: name
        size: len_name
        -text: utf8
        doc: |
          UTF-8 (SPEC.md §5), kept as bytes here: decoders reject invalid
          UTF-8 and keep a leading BOM.
  ipv6_host:
    doc: An IPv6 address, network byte order.
    seq:
      - id: addr
        size: 16
enums:
  atyp:
    1: ipv4
    3: domain
    4: ipv6
