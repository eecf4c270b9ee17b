meta:
  id: socks5_userpass_reply
  title: SOCKS5 username/password reply (server → client)
  xref:
    rfc: 1929
  license: MIT
  ks-version: "0.11"
  imports:
    - socks5_registries
  endian: be
doc: RFC 1929 §2 status reply; a non-zero status closes the connection.
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    enum: socks5_registries::version
    valid: socks5_registries::version::userpass
  - id: status
    type: u1
    enum: socks5_registries::userpass_status
