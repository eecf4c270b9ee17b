meta:
  id: socks5_method_selection
  title: SOCKS5 method selection (server → client)
  xref:
    rfc: 1928
  license: MIT
  ks-version: "0.11"
  imports:
    - socks5_registries
  endian: be
doc: The server's chosen authentication method (RFC 1928 §3).
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    enum: socks5_registries::version
    valid: socks5_registries::version::socks5
  - id: method
    type: u1
    enum: socks5_registries::method
