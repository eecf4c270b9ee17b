/**
 * `burrow` on Bun:  bun run runtimes/bun/main.ts <command> …
 * and the single executable: `npm run compile` → dist/burrow (scripts/compile.ts).
 * @module
 */
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import {
  secretFileReader,
  secretFileWriter,
  unhandledRejectionLine,
} from "../../src/adapter/mod.ts";
import { type Host, main } from "../../src/cli/mod.ts";
import type { Addr } from "../../src/net.ts";
import { net } from "./mod.ts";

export const host: Host = {
  net,
  version: Bun.version,
  env: (name) => process.env[name],
  cwd: () => process.cwd(),
  // The `bun build --compile` executable is the whole CLI; its modules live under /$bunfs/.
  command: import.meta.path.startsWith("/$bunfs/")
    ? [process.execPath]
    : [process.execPath, "run", import.meta.path],
  readTextFile: (path) => Bun.file(path).text(),
  // Bun.write has no mode option; node:fs is Bun's own implementation here.
  writeSecretFile: secretFileWriter({ mkdir, writeTextFile: writeFile, chmod }),
  readSecretFile: secretFileReader({ stat, readTextFile: (p) => Bun.file(p).text() }),
  onSignal(signal, fn) {
    process.on(signal, fn);
    return () => void process.off(signal, fn);
  },
  serveHttp(addr, fetch) {
    let bound: Addr = addr;
    let server: ReturnType<typeof Bun.serve>;
    try {
      server = Bun.serve({
        hostname: addr.host,
        port: addr.port,
        fetch: (req, srv): Response | Promise<Response> => {
          const ip = srv.requestIP(req);
          return fetch(req, {
            remote: { host: ip?.address ?? "", port: ip?.port ?? 0 },
            listener: "http",
            bound,
          });
        },
      });
    } catch (e) {
      return Promise.reject(e); // a port in use: Bun.serve throws at once
    }
    bound = { host: addr.host, port: server.port ?? addr.port };
    return Promise.resolve({
      addr: bound,
      close: () => server.stop(true),
    });
  },
  print: (line) => console.log(line),
};

/** A stray rejection is a bug to log, not a reason to drop every user's streams. */
function keepServing(): void {
  process.on("unhandledRejection", (e) => {
    console.error(unhandledRejectionLine(e));
  });
}

if (import.meta.main) {
  keepServing();
  process.exitCode = await main(host, Bun.argv.slice(2));
}
