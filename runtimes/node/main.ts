#!/usr/bin/env node
/**
 * `burrow` on Node.js:  node --import tsx runtimes/node/main.ts <command> …
 * (from any folder: bin/burrow.mjs, the `bin` of the package and of a
 * checkout, which calls {@link run}).
 * @module
 */
import { type Http2Bindings, type HttpBindings, serve } from "@hono/node-server";
import { realpathSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  secretFileReader,
  secretFileWriter,
  unhandledRejectionLine,
} from "../../src/adapter/mod.ts";
import { type Host, main } from "../../src/cli/mod.ts";
import { net } from "./mod.ts";

const entry = fileURLToPath(import.meta.url);

/** node, its flags (`--import tsx` made absolute, so it works from any directory), this file. */
function command(): string[] {
  const flags = process.execArgv.map((a, i, all) => {
    if (all[i - 1] !== "--import" || /^[./]|^file:/.test(a)) return a;
    try {
      return import.meta.resolve(a);
    } catch {
      return a;
    }
  });
  return [process.execPath, ...flags, entry];
}

export const host: Host = {
  net,
  version: process.versions.node,
  env: (name) => process.env[name],
  cwd: () => process.cwd(),
  command: command(),
  readTextFile: (path) => readFile(path, "utf8"),
  writeSecretFile: secretFileWriter({ mkdir, writeTextFile: writeFile, chmod }),
  readSecretFile: secretFileReader({ stat, readTextFile: (p) => readFile(p, "utf8") }),
  onSignal(signal, fn) {
    process.on(signal, fn);
    return () => process.off(signal, fn);
  },
  serveHttp(addr, fetch) {
    return new Promise((resolve, reject) => {
      let bound = addr;
      const app = (req: Request, env: HttpBindings | Http2Bindings) =>
        fetch(req, {
          remote: {
            host: env.incoming.socket.remoteAddress ?? "",
            port: env.incoming.socket.remotePort ?? 0,
          },
          listener: "http",
          bound,
        });
      const server = serve(
        { fetch: app, hostname: addr.host, port: addr.port },
        (info: AddressInfo) => {
          bound = { host: info.address, port: info.port };
          resolve({
            addr: bound,
            close: () => new Promise<void>((r) => server.close(() => r())),
          });
        },
      );
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

/** Run as a script: also through a symlink, as npm's `node_modules/.bin/burrow` is. */
function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === entry;
  } catch {
    return false;
  }
}

/**
 * Run the CLI with `args`; `command` is how to start it again (for `burrow
 * service`) when that is not this file, as for bin/burrow.mjs.
 */
export function run(args: string[], command: readonly string[] = host.command): Promise<number> {
  keepServing();
  return main({ ...host, command }, args);
}

if (isMain()) process.exitCode = await run(process.argv.slice(2));
