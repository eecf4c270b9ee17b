const rd = (p: string) => require("fs").readFileSync(p, "utf8");
const ss = { cert: rd("/tmp/ss.pem"), key: rd("/tmp/ss.key") };
const leaf = { cert: rd("/tmp/leaf.pem"), key: rd("/tmp/leaf.key") };
const ca = rd("/tmp/ca.pem");
async function run(name: string, server: any, tls: any, withHandshake: boolean) {
  const log: string[] = [];
  const srv = Bun.listen({ hostname: "127.0.0.1", port: 0, tls: server, socket: {
    open(s) { log.push("S open"); }, data(s, d) { log.push("S data " + d.length); },
    handshake(s, ok, err) { log.push(`S hs ${ok} ${err}`); }, close() { log.push("S close"); }, error(s, e) { log.push("S err " + e); },
  }});
  const handlers: any = {
    open(s: any) { log.push("C open authorized=" + s.authorized); },
    data() {}, close(s: any, e: any) { log.push("C close " + e); }, error(s: any, e: any) { log.push("C err " + e); },
    connectError(s: any, e: any) { log.push("C connectError " + e); },
  };
  if (withHandshake) handlers.handshake = (s: any, ok: boolean, err: any) => {
    const pc = s.getPeerCertificate(); const x = s.getX509Certificate?.();
    log.push(`C hs ok=${ok} err=${err?.code ?? err} raw=${pc?.raw?.length} x509=${x?.raw?.length} fp=${pc?.fingerprint256?.slice(0, 11)}`);
  };
  try {
    const c = await Bun.connect({ hostname: "127.0.0.1", port: srv.port, tls, socket: handlers });
    log.push("connect resolved authorized=" + c.authorized + " err=" + c.getAuthorizationError?.());
    c.write("hi");
    await Bun.sleep(100);
    c.end();
  } catch (e: any) { log.push("connect rejected " + e.code + " " + e.message); }
  await Bun.sleep(100);
  srv.stop(true);
  console.log(name, "\n  " + log.join("\n  "));
}
await run("pin/noverify hs", ss, { rejectUnauthorized: false, serverName: "localhost" }, true);
await run("pin/noverify nohs", ss, { rejectUnauthorized: false, serverName: "localhost" }, false);
await run("selfsigned verify", ss, { serverName: "localhost" }, true);
await run("selfsigned verify nohs", ss, { serverName: "localhost" }, false);
await run("ca ok", leaf, { serverName: "localhost", ca: [ca] }, true);
await run("ca ok nohs", leaf, { serverName: "localhost", ca: [ca] }, false);
await run("ca wrong name", leaf, { serverName: "wrong.example", ca: [ca] }, true);
await run("ca wrong name nohs", leaf, { serverName: "wrong.example", ca: [ca] }, false);
await run("ca by ip (no serverName)", leaf, { ca: [ca] }, false);
await run("no ca", leaf, { serverName: "localhost" }, false);
