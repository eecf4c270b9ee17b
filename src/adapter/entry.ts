/**
 * What the CLI entry points (runtimes/<name>/main.ts) share: writing and
 * reading a secret file on the runtime's fs primitives, and the log line of
 * an unhandled rejection.
 *
 * @module
 */
import { format } from "../log.ts";

/** The file system calls {@link secretFileWriter} needs from a runtime. */
export interface SecretFileSystem {
  mkdir(path: string, options: { recursive: true; mode: number }): Promise<unknown>;
  writeTextFile(path: string, text: string, options: { mode: number }): Promise<unknown>;
  chmod(path: string, mode: number): Promise<unknown>;
}

/** The directory part of a `/`-separated path (`.` if there is none). */
export function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash) || "/";
}

/**
 * `Host.writeSecretFile` on `fs`: creates the directory (0700), writes the
 * file (0600 when it is created) and then sets 0600 (when it existed).
 */
export function secretFileWriter(
  fs: SecretFileSystem,
): (path: string, text: string) => Promise<void> {
  return async (path, text) => {
    await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await fs.writeTextFile(path, text, { mode: 0o600 });
    await fs.chmod(path, 0o600);
  };
}

/** The file system calls {@link secretFileReader} needs from a runtime. */
export interface SecretFileReader {
  /** `mode`: the permission bits (null where the runtime has none, as on Windows). */
  stat(path: string): Promise<{ mode: number | null }>;
  readTextFile(path: string): Promise<string>;
}

/**
 * `Host.readSecretFile` on `fs`: the file's text, trimmed, refused when group
 * or others may read it (as ssh refuses a private key) or when it is empty.
 */
export function secretFileReader(fs: SecretFileReader): (path: string) => Promise<string> {
  return async (path) => {
    const { mode } = await fs.stat(path);
    if (mode !== null && (mode & 0o077) !== 0) {
      const bits = (mode & 0o777).toString(8).padStart(4, "0");
      throw new Error(`${path} is readable by group or others (mode ${bits}): chmod 600 it`);
    }
    const text = (await fs.readTextFile(path)).trim();
    if (text === "") throw new Error(`${path} is empty`);
    return text;
  };
}

/**
 * The log line for a rejection nobody handled: the entry points log it
 * (on stderr) rather than exit and drop every user's streams.
 */
export function unhandledRejectionLine(reason: unknown, now = new Date()): string {
  return format("error", "unhandled rejection", { error: String(reason) }, now);
}
