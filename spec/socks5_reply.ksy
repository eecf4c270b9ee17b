meta:
  id: socks5_reply
  title: SOCKS5 reply (server → client)
  xref:
    rfc: 1928
  license: MIT
  ks-version: "0.11"
  imports:
    - addr
    - registries
    - socks5_registries
  endian: be
doc: |
  RFC 1928 §6 reply. The reply codes are burrow's stream status codes
  (SPEC.md §9.3), forwarded unchanged from OPEN_RESULT.
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    enum: socks5_registries::version
    valid: socks5_registries::version::socks5
  - id: reply
    type: u1
    enum: registries::status
  - id: reserved
    type: u1
    valid: 0
  - id: bound
    type: addr
