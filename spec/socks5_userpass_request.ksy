meta:
  id: socks5_userpass_request
  title: SOCKS5 username/password request (client → server)
  xref:
    rfc: 1929
  license: MIT
  ks-version: "0.11"
  imports:
    - socks5_registries
  endian: be
doc: |
  RFC 1929 §2 username/password request. The user name selects the client
  and the agent (`client` or `client@agent`, split at the last `@`, SPEC.md
  §7.1); the password is the client's token or an issued token (§6.4).
doc-ref: SPEC.md §8
seq:
  - id: version
    type: u1
    enum: socks5_registries::version
    valid: socks5_registries::version::userpass
    doc: Version of the subnegotiation, 1.
  - id: len_uname
    type: u1
    doc: |
      May be 0, unlike RFC 1929's 1..255: with an issued token as the
      password the token names the client, and curl sends an empty user
      name (`--proxy-user :TOKEN`) as 0 (SPEC.md §8).
  - id: uname
    size: len_uname
    doc: |
      Any octets (RFC 1929); burrow reads them as UTF-8, leniently (invalid
      bytes become U+FFFD, which matches no configured name).
  - id: len_passwd
    type: u1
    valid:
      min: 1
  - id: passwd
    size: len_passwd
    doc: Any octets (RFC 1929); read as UTF-8 leniently, like `uname`.
