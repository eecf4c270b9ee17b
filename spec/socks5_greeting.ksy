meta:
  id: socks5_greeting
  title: SOCKS5 greeting (client → server)
  xref:
    rfc: 1928
  license: MIT
  ks-version: "0.11"
  imports:
    - socks5_registries
  endian: be
doc: |
  The client's version identifier / method selection message (RFC 1928 §3).
  burrow requires method 0x02 (username/password); a greeting that does not
  offer it is answered with method 0xFF and the connection is closed.
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    enum: socks5_registries::version
    valid: socks5_registries::version::socks5
  - id: num_methods
    type: u1
    valid:
      min: 1
  - id: methods
    type: u1
    enum: socks5_registries::method
    repeat: expr
    repeat-expr: num_methods
