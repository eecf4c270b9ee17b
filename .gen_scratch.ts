import { generateSelfSigned, generateCA, issueCert, fingerprint } from "/work/main/src/tls.ts";
const s = await generateSelfSigned();
console.log(s.cert, s.key.slice(0, 40), await fingerprint(s.cert));
const ca = await generateCA();
const leaf = await issueCert(ca, ["localhost", "127.0.0.1"]);
const fs = await import("node:fs");
fs.writeFileSync("/tmp/ss.pem", s.cert); fs.writeFileSync("/tmp/ss.key", s.key);
fs.writeFileSync("/tmp/ca.pem", ca.cert); fs.writeFileSync("/tmp/leaf.pem", leaf.cert); fs.writeFileSync("/tmp/leaf.key", leaf.key);
