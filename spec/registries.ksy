meta:
  id: registries
  title: burrow v1 registries (error codes, stream status codes, authentication methods)
  license: MIT
  ks-version: "0.11"
  endian: be
doc: |
  Shared enums of the burrow v1 protocol. This type has no fields; other
  specs import it and refer to its enums as `registries::error_code`,
  `registries::status`, `registries::reason` and `registries::auth_method`. Message types
  (SPEC.md §9.1) are the `msg_type` enum of frame.ksy; rule kinds (§9.5) are
  in control.ksy. Values not listed are reserved: receivers keep them as
  plain numbers and do not reject them at the framing layer. scripts/gen.ts
  emits these and every other enum of spec/ as TypeScript constants
  (generated/enums.ts), which src/ uses.
doc-ref: SPEC.md §9
enums:
  error_code:
    1:
      id: protocol_error
      doc: any other violation of SPEC.md
    2:
      id: bad_magic
      doc: frame did not start with `BRRW`
    3:
      id: unsupported_frame_version
      doc: framing version not 1
    4:
      id: frame_too_large
      doc: payload length over MAX_PAYLOAD
    5:
      id: unknown_type
      doc: unknown message type 0x00-0x7F
    6:
      id: unexpected_message
      doc: message not allowed in this state
    7:
      id: invalid_message
      doc: payload does not parse, or a field is out of range
    8:
      id: unsupported_version
      doc: no common protocol version
    9:
      id: auth_failed
      doc: unknown name or wrong proof
    10:
      id: auth_method_unsupported
      doc: method not configured for this name
    11:
      id: session_unknown
      doc: POOL_HELLO names no live session
    12:
      id: replayed
      doc: POOL_HELLO seq already used
    13:
      id: replaced
      doc: a newer session for the same agent took over
    14:
      id: heartbeat_timeout
      doc: peer silent for heartbeat_timeout_ms
    15:
      id: handshake_timeout
      doc: handshake not finished in time
    16:
      id: limit_exceeded
      doc: a configured limit was hit
    17:
      id: shutdown
      doc: the peer is shutting down
    18:
      id: internal_error
      doc: unexpected failure in the sender
  status:
    0x00:
      id: succeeded
      doc: target connected
    0x01:
      id: general_failure
      doc: any other failure
    0x02:
      id: not_allowed
      doc: target outside the agent's allowlist or the policy
    0x03:
      id: network_unreachable
      doc: no route to the target's network
    0x04:
      id: host_unreachable
      doc: name does not resolve, host unreachable, agent offline
    0x05:
      id: connection_refused
      doc: target refused the connection
    0x06:
      id: ttl_expired
      doc: connecting to the target timed out
    0x07:
      id: command_not_supported
      doc: (SOCKS5 front only)
    0x08:
      id: address_type_not_supported
      doc: unknown atyp
  reason:
    0:
      id: none
      doc: not refused
    1:
      id: bad_target
      doc: the target is not a usable host name or address
    2:
      id: not_granted
      doc: the agent is unknown or not granted to the client, or the client has no grant
    3:
      id: agent_ambiguous
      doc: no agent named and the client is granted more than one
    4:
      id: outside_grant
      doc: the target is outside the client's grant
    5:
      id: client_streams
      doc: the client has streams_per_client streams open
    6:
      id: agent_streams
      doc: the agent has streams_per_agent streams open
    7:
      id: agent_offline
      doc: the agent has no session, or lost it while the stream opened
    8:
      id: agent_not_ready
      doc: the agent has not announced its targets in time
    9:
      id: outside_announce
      doc: the target is outside what the agent announced
    10:
      id: pool_timeout
      doc: no pool connection of the agent within pool.wait
    11:
      id: agent_timeout
      doc: the agent did not answer OPEN in time
    12:
      id: agent_failed
      doc: the agent's pool connections failed, or it answered OPEN wrongly
    13:
      id: target_failed
      doc: the agent could not open the target; the status says how
    14:
      id: rate_limited
      doc: the client opened streams faster than new_streams_per_client allows
  auth_method:
    1:
      id: token
      doc: HMAC-SHA256 over the transcript, 32-byte proof
    2:
      id: ed25519
      doc: Ed25519 signature over the transcript, 64-byte proof
    3:
      id: issued_token
      doc: an issued token's bytes (SPEC.md §6.4), 96..191 bytes; client proxies only
