meta:
  id: socks5_userpass_request
  title: SOCKS5 username/password request (client → server)
  xref:
    rfc: 1929
  license: MIT
  ks-version: "0.11"
  encoding: UTF-8
  endian: be
doc: |
  RFC 1929 §2 username/password request. The user name selects the client
  and the agent (`client` or `client@agent`, SPEC.md §7.1); the password is
  the client's token.
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    valid: 1
    doc: Version of the subnegotiation, 1.
  - id: len_uname
    type: u1
    valid:
      min: 1
  - id: uname
    type: str
    size: len_uname
  - id: len_passwd
    type: u1
    valid:
      min: 1
  - id: passwd
    type: str
    size: len_passwd
