import fc from "fast-check";
import assert from "node:assert/strict";
import { encode } from "./src/encode.ts";
import { decode, decodeHeader } from "./src/decode.ts";
import * as S from "./src/socks5_decode.ts";
import * as E from "./src/socks5_encode.ts";
import { message, socks } from "./test/arbitraries.ts";
import { ProtocolError, SocksError } from "./src/errors.ts";
fc.assert(fc.property(message, (m) => { assert.deepStrictEqual(decode(encode(m)), m); }), { numRuns: 3000 });
const dec = new TextDecoder();
fc.assert(fc.property(socks.greeting, (g) => { const b = E.greeting(g.methods); assert.deepStrictEqual(S.parseGreeting(b), { value: { methods: [...g.methods] }, size: b.length });
  for (let i = 0; i < b.length; i++) assert.equal(S.parseGreeting(b.subarray(0, i)), null); }));
fc.assert(fc.property(socks.userpassRequest, (u) => { const b = E.userpassRequest(u.user, u.pass); const r = S.parseUserpassRequest(b); assert.deepStrictEqual(r, { value: { username: u.user, password: u.pass }, size: b.length });
  for (let i = 0; i < b.length; i++) assert.equal(S.parseUserpassRequest(b.subarray(0, i)), null); }));
fc.assert(fc.property(socks.request, (u) => { const b = E.request(u.cmd, u.target); const r = S.parseRequest(b); assert.deepStrictEqual(r, { value: { command: u.cmd, target: u.target }, size: b.length });
  for (let i = 0; i < b.length; i++) assert.equal(S.parseRequest(b.subarray(0, i)), null); }));
fc.assert(fc.property(socks.reply, (u) => { const b = E.reply(u.rep, u.bound); const r = S.parseReply(b); assert.deepStrictEqual(r, { value: { reply: u.rep, bound: u.bound }, size: b.length }); }));
// fuzz: random bytes never throw anything but ProtocolError
fc.assert(fc.property(message, fc.array(fc.tuple(fc.nat(), fc.integer({min:0,max:255})), {maxLength: 4}), fc.nat(), (m, edits, cut) => {
  const b = encode(m).slice(); for (const [p, v] of edits) b[p % b.length] = v;
  const c = edits.length % 2 ? b.subarray(0, cut % (b.length + 1)) : b;
  try { decode(c); } catch (e) { if (!(e instanceof ProtocolError)) throw e; }
}), { numRuns: 5000 });
fc.assert(fc.property(fc.uint8Array({maxLength: 300}), (b) => {
  for (const f of [S.parseGreeting, S.parseMethodSelection, S.parseUserpassRequest, S.parseUserpassReply, S.parseRequest, S.parseReply]) {
    try { const r = f(b); if (r) assert.ok(r.size <= b.length); } catch (e) { if (!(e instanceof SocksError)) throw e; }
  }
}), { numRuns: 5000 });
const hdr = (bytes: number[]) => Uint8Array.from(bytes);
for (const [h, code] of [
  [[0x42,0x52,0x52,0x58,1,1,0,0,0,0,0,0], "bad_magic"], [[0x42,0x52,0x52,0x57,2,1,0,0,0,0,0,0], "unsupported_frame_version"],
  [[0x42,0x52,0x52,0x57,1,1,0,1,0,0,0,0], "invalid_message"], [[0x42,0x52,0x52,0x57,1,1,0,0,0,4,0x93,0xe0], "frame_too_large"],
  [[0x42,0x52,0x52,0x57,1,0x7f,0,0,0,0,0,0], "unknown_type"], [[0x42,0x52,0x52,0x57,1,0x01,0,0,0,0,0,0], "invalid_message"],
] as const) {
  try { decode(hdr([...h])); assert.fail("no throw"); } catch (e) { assert.ok(e instanceof ProtocolError); assert.equal(e.code, code); console.log(code, "->", e.message); }
}
console.log(decode(hdr([0x42,0x52,0x52,0x57,1,0x80,0,0,0,0,0,2, 1, 2])), decodeHeader(hdr([0x42,0x52,0x52,0x57,1,0x80,0,0,0,0,0,2])));
// BOM and invalid utf8 in ERROR message
const err = (msg: number[]) => hdr([0x42,0x52,0x52,0x57,1,5,0,0,0,0,0,4+msg.length, 0,1, 0, msg.length, ...msg]);
console.log(decode(err([0xef,0xbb,0xbf,0x41])));
try { decode(err([0xff, 0x41])); } catch (e) { console.log((e as Error).message); }
try { decode(hdr([0x42,0x52,0x52,0x57,1,0x13,0,0,0,0,0,9, 1,2,3,4,5,6,7,8,9])); } catch (e) { console.log((e as Error).message); }
try { decode(hdr([0x42,0x52,0x52,0x57,1,0x13,0,0,0,0,0,7, 1,2,3,4,5,6,7])); } catch (e) { console.log((e as Error).message); }
console.log("ok");
