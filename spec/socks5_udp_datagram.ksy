meta:
  id: socks5_udp_datagram
  title: SOCKS5 UDP request header and its data (client ↔ UDP relay)
  xref:
    rfc: 1928
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
  endian: be
doc: |
  RFC 1928 §7: every datagram between a client and its UDP relay carries
  this header. From the client, `target` is where the data goes; from the
  relay, where it came from. The whole is one UDP payload: at most 65507
  bytes (IPv4), header included. A datagram with `fragment` ≠ 0 is dropped
  and counted (fragmentation is not implemented; RFC 1928 allows that).
doc-ref: SPEC.md §8.2
seq:
  - id: reserved
    type: u2
    valid: 0
  - id: fragment
    type: u1
    doc: 0 = a whole datagram; anything else is a fragment, dropped.
  - id: target
    type: addr
  - id: data
    size-eos: true
