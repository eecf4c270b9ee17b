/**
 * `burrow` on Node.js:  node --import tsx runtimes/node/main.ts <command> …
 * @module
 */
import { serve } from "@hono/node-server";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { secretFileWriter, unhandledRejectionLine } from "../../src/adapter/mod.ts";
import { type Host, main } from "../../src/cli/mod.ts";
import { net } from "./mod.ts";

export const host: Host = {
  net,
  version: process.versions.node,
  readTextFile: (path) => readFile(path, "utf8"),
  writeSecretFile: secretFileWriter({ mkdir, writeTextFile: writeFile, chmod }),
  onSignal(signal, fn) {
    process.on(signal, fn);
    return () => process.off(signal, fn);
  },
  serveHttp(addr, fetch) {
    return new Promise((resolve, reject) => {
      const server = serve({ fetch, hostname: addr.host, port: addr.port }, (info: AddressInfo) => {
        resolve({
          addr: { host: info.address, port: info.port },
          close: () => new Promise<void>((r) => server.close(() => r())),
        });
      });
      server.once("error", reject);
    });
  },
  print: (line) => void process.stdout.write(line + "\n"),
};

/** A stray rejection is a bug to log, not a reason to drop every user's streams. */
function keepServing(): void {
  process.on("unhandledRejection", (e) => {
    console.error(unhandledRejectionLine(e));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  keepServing();
  process.exitCode = await main(host, process.argv.slice(2));
}
