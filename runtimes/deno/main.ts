/**
 * `burrow` on Deno:
 * `deno run -A --v8-flags=--max-semi-space-size=1 runtimes/deno/main.ts <command> …`
 * (the flag: ./flags.ts).
 * @module
 */
import {
  secretFileReader,
  secretFileWriter,
  unhandledRejectionLine,
} from "../../src/adapter/mod.ts";
import { type Host, main } from "../../src/cli/mod.ts";
import { DENO_V8 } from "./flags.ts";
import { net } from "./mod.ts";

export const host: Host = {
  net,
  version: Deno.version.deno,
  env: (name) => Deno.env.get(name),
  cwd: () => Deno.cwd(),
  command: [
    Deno.execPath(),
    "run",
    "-A",
    DENO_V8,
    import.meta.url.startsWith("file:")
      ? decodeURIComponent(new URL(import.meta.url).pathname)
      : import.meta.url,
  ],
  readTextFile: (path) => Deno.readTextFile(path),
  writeSecretFile: secretFileWriter({
    mkdir: Deno.mkdir,
    writeTextFile: Deno.writeTextFile,
    chmod: Deno.chmod,
  }),
  readSecretFile: secretFileReader({ stat: Deno.stat, readTextFile: Deno.readTextFile }),
  onSignal(signal, fn) {
    Deno.addSignalListener(signal, fn);
    return () => Deno.removeSignalListener(signal, fn);
  },
  serveHttp(addr, fetch) {
    return new Promise((resolve, reject) => {
      try {
        let bound = addr;
        const server = Deno.serve({
          hostname: addr.host,
          port: addr.port,
          onListen: (a) => {
            bound = { host: a.hostname, port: a.port };
            resolve({ addr: bound, close: () => server.shutdown() });
          },
        }, (req, info) => {
          const r = info.remoteAddr;
          return fetch(req, {
            remote: { host: r.hostname, port: r.port },
            listener: "http",
            bound,
          });
        });
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
    console.error(unhandledRejectionLine(e.reason));
  });
}

if (import.meta.main) {
  keepServing();
  Deno.exitCode = await main(host, Deno.args);
}
