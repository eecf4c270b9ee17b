meta:
  id: socks5_registries
  title: SOCKS5 (RFC 1928, RFC 1929) code registries used by burrow
  xref:
    rfc: [1928, 1929]
  license: MIT
  ks-version: "0.11"
  endian: be
doc: |
  Enums shared by the SOCKS5 messages. This type has no fields. The reply
  codes of the SOCKS5 reply are burrow's stream status codes,
  `registries::status` (SPEC.md §9.3).
doc-ref: SPEC.md §8
enums:
  version:
    0x05:
      id: socks5
      doc: the `ver` byte of every RFC 1928 message
    0x01:
      id: userpass
      doc: the `ver` byte of the RFC 1929 username/password subnegotiation
  method:
    0x00:
      id: no_auth
      doc: no authentication; the server's SOCKS5 port never selects it, the client proxy's local side does (SPEC.md §10.2)
    0x01:
      id: gssapi
      doc: GSSAPI (not supported)
    0x02:
      id: userpass
      doc: RFC 1929 username/password, required by burrow
    0xff:
      id: no_acceptable
      doc: no acceptable methods; the server closes the connection
  command:
    0x01:
      id: connect
      doc: supported
    0x02:
      id: bind
      doc: answered with reply 0x07
    0x03:
      id: udp_associate
      doc: supported on the server's SOCKS5 port (SPEC.md §8.2)
  userpass_status:
    0x00:
      id: success
      doc: any other value is a failure
    0x01:
      id: failure
      doc: burrow's failure status; the connection is closed
