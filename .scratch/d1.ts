import * as tls from "node:tls";
const cert = Deno.readTextFileSync("/tmp/ss.pem"), key = Deno.readTextFileSync("/tmp/ss.key");
const l = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
console.log("listener methods", Object.getOwnPropertyNames(Object.getPrototypeOf(l)));
const port = (l.addr as Deno.NetAddr).port;
const acc = (async () => { const c = await l.accept(); console.log("conn proto", Object.getOwnPropertyNames(Object.getPrototypeOf(c)), Object.getOwnPropertyNames(Object.getPrototypeOf(Object.getPrototypeOf(c)))); await c.handshake(); const b = new Uint8Array(100); const n = await c.read(b); console.log("server got", n); await c.closeWrite(); const m = await c.read(b); console.log("server 2nd read", m); c.close(); })();
const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: "localhost" });
s.on("secureConnect", () => {
  const pc = s.getPeerCertificate(true);
  console.log("authorized", s.authorized, s.authorizationError, "raw", pc.raw?.length, pc.fingerprint256);
  s.write("hello");
});
s.on("data", (d) => console.log("client data", d.length));
s.on("end", () => { console.log("client end"); s.end(); });
s.on("close", () => console.log("client close"));
s.on("error", (e) => console.log("client err", e));
await acc; l.close();
