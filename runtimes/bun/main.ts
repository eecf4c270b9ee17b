/**
 * `burrow` on Bun:  bun run runtimes/bun/main.ts <command> …
 * @module
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { type Host, main } from "../../src/cli.ts";
import { net } from "./mod.ts";

export const host: Host = {
  net,
  version: Bun.version,
  readTextFile: (path) => Bun.file(path).text(),
  async writeSecretFile(path, text) {
    // Bun.write has no mode option; node:fs is Bun's own implementation here.
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, text, { mode: 0o600 });
    await chmod(path, 0o600);
  },
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

/** A stray rejection is a bug to log, not a reason to drop every user's streams. */
function keepServing(): void {
  process.on("unhandledRejection", (e) => {
    console.error(`ts=${new Date().toISOString()} level=error msg="unhandled rejection" error=${JSON.stringify(String(e))}`);
  });
}

if (import.meta.main) {
  keepServing();
  process.exitCode = await main(host, Bun.argv.slice(2));
}
