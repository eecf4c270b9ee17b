meta:
  id: issued_token
  title: burrow issued token (the bytes behind its base64url text)
  license: MIT
  ks-version: "0.11"
  endian: be
doc: |
  A token the server signs (SPEC.md §6.4): for a configured client (kind 1)
  or a signed-in person (kind 2), with its own id, issue and expiry time,
  signed with Ed25519 by the server key `key_id` names. Its text is the
  base64url of these bytes without padding, at most 255 characters. The
  decoder also checks that nothing follows the signature and that the
  subject is UTF-8; the signature is checked by the server.
doc-ref: SPEC.md §6.4
seq:
  - id: version
    type: u1
    valid: 1
  - id: kind
    type: u1
    enum: kind
    valid:
      any-of:
        - kind::client
        - kind::person
  - id: key_id
    type: u4
    doc: First 4 bytes of SHA-256 of the signing key's raw Ed25519 public key.
  - id: token_id
    size: 16
  - id: issued_at
    type: u4
    doc: Unix time, seconds.
  - id: expires_at
    type: u4
    doc: Unix time, seconds; after issued_at (checked by the decoder).
  - id: len_subject
    type: u1
    valid:
      min: 1
      max: 96
  - id: subject
    size: len_subject
    doc: UTF-8 (checked by the decoder).
  - id: signature
    size: 64
    doc: |
      Ed25519 over "burrow-v1 issued token" 0x00 and every byte before
      this field.
enums:
  kind:
    1: client
    2: person
