/**
 * `burrow` on Deno:  deno run -A runtimes/deno/main.ts <command> …
 * @module
 */
import { type Host, main } from "../../src/cli.ts";
import { net } from "./mod.ts";

export const host: Host = {
  net,
  version: Deno.version.deno,
  readTextFile: (path) => Deno.readTextFile(path),
  async writeSecretFile(path, text) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    await Deno.chmod(path, 0o600);
  },
  onSignal(signal, fn) {
    Deno.addSignalListener(signal, fn);
    return () => Deno.removeSignalListener(signal, fn);
  },
  serveHttp(addr, fetch) {
    return new Promise((resolve, reject) => {
      try {
        const server = Deno.serve({
          hostname: addr.host,
          port: addr.port,
          onListen: (a) => resolve({ addr: { host: a.hostname, port: a.port }, close: () => server.shutdown() }),
        }, fetch);
      } catch (e) {
        reject(e);
      }
    });
  },
  print: (line) => console.log(line),
};

/** A stray rejection is a bug to log, not a reason to drop every user's streams. */
function keepServing(): void {
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    console.error(`ts=${new Date().toISOString()} level=error msg="unhandled rejection" error=${JSON.stringify(String(e.reason))}`);
  });
}

if (import.meta.main) {
  keepServing();
  Deno.exitCode = await main(host, Deno.args);
}
