/**
 * The walker under both config files: YAML (or JSON) in, typed values out,
 * and every problem a {@link ConfigError} that names the file, the path
 * inside it and the problem; plus the value parsers flags use too.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { ConfigError, RuleError } from "../errors.ts";
import type { Rule } from "../messages.ts";
import type { Addr } from "../net.ts";
import { parseRule } from "../policy.ts";
import { err, ok, type Result } from "../result.ts";
import { readDuration } from "../time.ts";

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Read `host:port`, `[v6]:port` or `:port` (all interfaces). Never throws. */
export function readAddr(text: string): Result<Addr> {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    return err(`Cannot parse address "${text}": expected host:port or [ipv6]:port`);
  }
  return ok({ host: m[1] ?? (m[2] || "0.0.0.0"), port });
}

/** Parse `host:port`, `[v6]:port` or `:port` (all interfaces); a ConfigError if it is none. */
export function parseAddr(text: string): Addr {
  const r = readAddr(text);
  if (!r.ok) throw new ConfigError(r.error);
  return r.value;
}

const RATE_PREFIX: Record<string, number> = {
  "": 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  ki: 2 ** 10,
  mi: 2 ** 20,
  gi: 2 ** 30,
};

/**
 * Read a rate in bytes per second: `10MiB/s`, `500KiB/s`, `1GB/s` (KiB,
 * MiB, GiB: powers of 1024; KB, MB, GB: of 1000; B: bytes). A bare number
 * and bits (`10Mb/s`) are refused: the error shows the form. Never throws.
 */
export function readRate(text: string | number): Result<number> {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMG]i?)?(B|b)\/s\s*$/i.exec(String(text));
  if (m?.[3] === "b") {
    return err(`Cannot parse rate "${text}": b is bits; burrow counts bytes (B), e.g. 10MiB/s`);
  }
  if (!m) {
    return err(
      `Cannot parse rate "${text}": expected bytes per second, e.g. 500KiB/s, 10MiB/s, 1GB/s`,
    );
  }
  return ok(Math.round(Number(m[1]) * RATE_PREFIX[(m[2] ?? "").toLowerCase()]!));
}

/** `n` bytes per second as the config writes it: `1KiB/s`, `1TiB/s`, `1500B/s`. */
export function rateText(n: number): string {
  const units = [["TiB", 2 ** 40], ["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const;
  for (const [u, m] of units) {
    if (n >= m && n % m === 0) return `${n / m}${u}/s`;
  }
  return `${n}B/s`;
}

/** Parse `500ms`, `10s`, `2m` or `1h`; a ConfigError if it is none (a bare number included). */
export function parseDuration(text: string | number): number {
  const r = readDuration(text);
  if (!r.ok) throw new ConfigError(r.error);
  return r.value;
}

export type Obj = Record<string, unknown>;

/** The words of `s`, for lists of keys. */
export const words = (s: string) => s.trim().split(/\s+/);

/** Walks a parsed document; every problem is a ConfigError naming the file and the path. */
export class Walker {
  constructor(readonly file: string) {}
  fail(path: string, problem: string): never {
    throw new ConfigError(`${this.file}: ${path || "(top level)"}: ${problem}`);
  }
  yaml(text: string): unknown {
    try {
      return parseYaml(text);
    } catch (e) {
      return this.fail("", `not valid YAML or JSON: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  obj(v: unknown, path: string): Obj {
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) this.fail(path, "must be a mapping");
    return v as Obj;
  }
  known(o: Obj, path: string, keys: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) {
        this.fail(path ? `${path}.${k}` : k, `unknown key (expected one of ${keys.join(", ")})`);
      }
    }
  }
  list(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, "must be a list");
    return v;
  }
  str(v: unknown, path: string): string {
    if (typeof v !== "string") this.fail(path, "must be a string");
    return v;
  }
  bool(v: unknown, path: string): boolean {
    if (typeof v !== "boolean") this.fail(path, "must be true or false");
    return v;
  }
  name(v: unknown, path: string): string {
    const s = this.str(v, path);
    if (!NAME.test(s)) this.fail(path, `"${s}" must be 1..64 characters of A-Z a-z 0-9 . _ -`);
    return s;
  }
  int(v: unknown, path: string, def: number, min: number, max: number): number {
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer in ${min}..${max}`);
    }
    return v;
  }
  duration(v: unknown, path: string, def: string): number {
    const d = v ?? def;
    if (typeof d !== "string" && typeof d !== "number") {
      return this.fail(path, "must be a duration such as 10s");
    }
    const r = readDuration(d);
    if (!r.ok) return this.fail(path, r.error);
    if (!Number.isFinite(r.value) || r.value <= 0 || r.value > 86_400_000) {
      this.fail(path, "must be between 1ms and 24h");
    }
    return r.value;
  }
  /** A rate (bytes per second, {@link readRate}) in `min`..`max`, or `off` (null). */
  rate(v: unknown, path: string, min: number, max: number): number | null {
    if (v === "off" || v === false) return null;
    if (typeof v !== "string") return this.fail(path, "must be a rate such as 10MiB/s, or off");
    const r = readRate(v);
    if (!r.ok) return this.fail(path, r.error);
    if (r.value < min || r.value > max) {
      this.fail(path, `must be between ${rateText(min)} and ${rateText(max)}`);
    }
    return r.value;
  }
  addr(v: unknown, path: string, def: string): Addr | null {
    if (v === "" || v === false) return null;
    const r = readAddr(v === undefined ? def : this.str(v, path));
    return r.ok ? r.value : this.fail(path, r.error);
  }
  /** A list of rule texts (SPEC.md §7); `clients` says whether `client=` is allowed. */
  rules(v: unknown, path: string, clients: boolean): Rule[] {
    return this.list(v, path).flatMap((t, i) => {
      const p = `${path}[${i}]`;
      const s = this.str(t, p);
      if (!clients && s.includes("=")) this.fail(p, "a grant's targets cannot name a client");
      try {
        return parseRule(s);
      } catch (e) {
        if (e instanceof RuleError) this.fail(p, e.message);
        throw e;
      }
    });
  }
}

/**
 * `path` as named in the config file `file`: a relative path is taken from
 * the file's folder (not from the current one, which differs under a
 * service manager); an absolute one, or one in a file of the current
 * folder, is returned as it is.
 */
export function besideFile(file: string, path: string): string {
  const slash = file.lastIndexOf("/");
  if (path.startsWith("/") || slash < 0) return path;
  return `${file.slice(0, slash + 1)}${path}`;
}
