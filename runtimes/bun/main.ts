/**
 * `burrow` on Bun:  bun run runtimes/bun/main.ts <command> …
 * @module
 */
import { type Host, main } from "../../src/cli.ts";
import { net } from "./mod.ts";

export const host: Host = {
  net,
  version: Bun.version,
  readTextFile: (path) => Bun.file(path).text(),
  onSignal(signal, fn) {
    process.on(signal, fn);
    return () => void process.off(signal, fn);
  },
  serveHttp(addr, fetch) {
    const server = Bun.serve({ hostname: addr.host, port: addr.port, fetch });
    return Promise.resolve({
      addr: { host: addr.host, port: server.port ?? addr.port },
      close: () => server.stop(true),
    });
  },
  print: (line) => console.log(line),
};

if (import.meta.main) {
  process.exitCode = await main(host, Bun.argv.slice(2));
}
