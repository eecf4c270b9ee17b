meta:
  id: socks5_request
  title: SOCKS5 request (client → server)
  xref:
    rfc: 1928
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
    - socks5_registries
  endian: be
doc: |
  RFC 1928 §4 request. Only CONNECT is supported; other commands get reply
  0x07. A domain target is passed to the agent unresolved.
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    enum: socks5_registries::version
    valid: socks5_registries::version::socks5
  - id: command
    type: u1
    enum: socks5_registries::command
  - id: reserved
    type: u1
    valid: 0
  - id: target
    type: addr
