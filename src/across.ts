/**
 * The rules of SPEC.md §5 that span fields, which a .ksy cannot state and
 * the generated codec therefore does not check: decode.ts refuses a message
 * that breaks one, encode.ts (strict) will not write it.
 *
 * @module
 */
import { AuthMethod, type Message } from "./messages.ts";

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** What is wrong with `msg` across its fields, or null. */
export function acrossFields(msg: Message): string | null {
  switch (msg.type) {
    case "AGENT_HELLO":
    case "CLIENT_HELLO":
      // Only an issued token names its client by itself (§5.15, §6.4).
      return msg.name === "" && msg.authMethod !== AuthMethod.issued_token
        ? "name is empty, which only auth method issued_token allows"
        : null;
    case "AUTH": {
      const n = msg.proof.length; // token 32, ed25519 64, issued_token 96..191 (§6.2)
      return n === 32 || n === 64 || (n >= 96 && n <= 191)
        ? null
        : `proof of ${n} bytes is not 32, 64 or 96..191`;
    }
    case "OPEN":
      // A client name or a person's subject (§5.13): no control characters.
      return CONTROL.test(msg.client) ? "client has a control character" : null;
    default:
      return null;
  }
}
