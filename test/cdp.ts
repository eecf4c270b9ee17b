/**
 * Headless Chromium for tests, driven over the DevTools protocol (CDP) with
 * a minimal WebSocket client on this runtime's own sockets (src/net.ts), so
 * it runs the same on Node 20 (no global WebSocket), Deno and Bun. Uses
 * Debian's `chromium`; never downloads a browser. Every wait is bounded;
 * `close()` ends the browser and removes its temporary profile.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Conn, Net } from "../src/net.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const x of bytes) s += String.fromCharCode(x);
  return btoa(s);
}

/** A client WebSocket (RFC 6455) carrying text messages: just what CDP needs. */
class MiniWebSocket {
  #buf: Uint8Array = new Uint8Array(0);
  #closed = false;
  constructor(readonly conn: Conn) {}

  static async connect(net: Net, url: string): Promise<MiniWebSocket> {
    const u = new URL(url);
    const conn = await net.dial({ host: u.hostname, port: Number(u.port) });
    const ws = new MiniWebSocket(conn);
    const key = b64(crypto.getRandomValues(new Uint8Array(16)));
    await conn.write(enc.encode(
      `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    for (let i = 0; i < 1000; i++) {
      const text = dec.decode(ws.#buf);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        if (!/^HTTP\/1\.1 101 /.test(text)) {
          conn.close();
          throw new Error(`WebSocket upgrade refused: ${text.slice(0, end)}`);
        }
        ws.#buf = ws.#buf.subarray(enc.encode(text.slice(0, end + 4)).length);
        return ws;
      }
      if (!await ws.#more()) break;
    }
    conn.close();
    throw new Error("WebSocket upgrade: no answer");
  }

  async #more(): Promise<boolean> {
    const c = await this.conn.read();
    if (c === null) return false;
    this.#buf = concat(this.#buf, c);
    return true;
  }

  async #need(n: number): Promise<void> {
    while (this.#buf.length < n) {
      if (!await this.#more()) throw new Error("WebSocket closed");
    }
  }

  async #frame(opcode: number, payload: Uint8Array): Promise<void> {
    const n = payload.length;
    const head = n < 126
      ? [0x80 | opcode, 0x80 | n]
      : n < 65536
      ? [0x80 | opcode, 0x80 | 126, n >> 8, n & 255]
      : [
        0x80 | opcode,
        0x80 | 127,
        0,
        0,
        0,
        0,
        n >>> 24,
        (n >>> 16) & 255,
        (n >>> 8) & 255,
        n & 255,
      ];
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const out = new Uint8Array(head.length + 4 + n);
    out.set(head);
    out.set(mask, head.length);
    for (let i = 0; i < n; i++) out[head.length + 4 + i] = payload[i]! ^ mask[i & 3]!;
    await this.conn.write(out);
  }

  send(text: string): Promise<void> {
    return this.#frame(1, enc.encode(text));
  }

  /** The next text message, or null when the connection ends. */
  async recv(): Promise<string | null> {
    let message: Uint8Array = new Uint8Array(0);
    for (;;) {
      try {
        await this.#need(2);
      } catch {
        return null;
      }
      const b0 = this.#buf[0]!;
      const b1 = this.#buf[1]!;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        await this.#need(4);
        len = (this.#buf[2]! << 8) | this.#buf[3]!;
        off = 4;
      } else if (len === 127) {
        await this.#need(10);
        len = 0;
        for (let i = 2; i < 10; i++) len = len * 256 + this.#buf[i]!;
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const maskAt = off;
      if (masked) off += 4;
      await this.#need(off + len);
      const payload = this.#buf.slice(off, off + len);
      if (masked) { for (let i = 0; i < len; i++) payload[i]! ^= this.#buf[maskAt + (i & 3)]!; }
      this.#buf = this.#buf.subarray(off + len);
      const opcode = b0 & 0x0f;
      if (opcode === 8) return null;
      if (opcode === 9) {
        await this.#frame(10, payload);
        continue;
      }
      if (opcode === 10) continue;
      message = concat(message, payload);
      if (b0 & 0x80) return dec.decode(message);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.conn.close();
  }
}

type Json = Record<string, unknown>;

/** One CDP connection to the browser; commands to a page carry its session id. */
class Cdp {
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  constructor(readonly ws: MiniWebSocket) {
    void this.#loop();
  }

  async #loop(): Promise<void> {
    for (;;) {
      const text = await this.ws.recv();
      if (text === null) break;
      const msg = JSON.parse(text) as { id?: number; result?: Json; error?: { message: string } };
      if (msg.id === undefined) continue; // an event
      const p = this.#pending.get(msg.id);
      if (!p) continue;
      this.#pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`CDP: ${msg.error.message}`));
      else p.resolve(msg.result ?? {});
    }
    for (const p of this.#pending.values()) p.reject(new Error("CDP connection closed"));
    this.#pending.clear();
  }

  send(method: string, params: Json = {}, sessionId?: string, ms = 15000): Promise<Json> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`CDP ${method}: no answer in ${ms} ms`));
      }, ms);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }))
        .catch((e: Error) => this.#pending.get(id)?.reject(e));
    });
  }
}

export interface Page {
  /** Evaluate `expression` in the page; its value (JSON). */
  eval<T>(expression: string): Promise<T>;
  /** Poll `expression` every 100 ms until it is truthy; false after `ms`. */
  waitFor(expression: string, ms?: number): Promise<boolean>;
  /** A PNG of the page. */
  screenshot(): Promise<Uint8Array>;
  /** Emulate a viewport (a phone with `mobile`) and a color scheme. */
  view(v: { width: number; height: number; mobile?: boolean; dark?: boolean }): Promise<void>;
}

export interface Browser {
  open(url: string): Promise<Page>;
  close(): Promise<void>;
}

/** Where Debian's chromium is, or null. */
export function chromiumPath(): string | null {
  for (const p of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) if (existsSync(p)) return p;
  return null;
}

/** Start headless Chromium on a fresh profile (with `extra` flags); the caller must close() it. */
export async function launchChromium(
  net: Net,
  width = 1400,
  height = 900,
  /** More flags, e.g. `--ignore-certificate-errors` for a test CA. */
  extra: string[] = [],
): Promise<Browser> {
  const exe = chromiumPath();
  if (!exe) throw new Error("chromium is not installed: apt-get install -y chromium");
  const profile = mkdtempSync(join(tmpdir(), "burrow-chromium-"));
  const child: ChildProcess = spawn(exe, [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    `--user-data-dir=${profile}`,
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    `--window-size=${width},${height}`,
    ...extra,
    "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Uint8Array) => void (stderr += dec.decode(d)));
  const exited = new Promise<void>((r) => {
    child.on("exit", () => r());
    child.on("error", () => r());
  });
  let gone = false;
  void exited.then(() => gone = true);
  const kill = async () => {
    if (!gone && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    rmSync(profile, { recursive: true, force: true });
  };
  let ws: MiniWebSocket | undefined;
  try {
    let url: string | undefined;
    const end = Date.now() + 30000;
    while (!url) {
      url = /DevTools listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
      const file = join(profile, "DevToolsActivePort");
      if (!url && existsSync(file)) {
        const [port, path] = readFileSync(file, "utf8").split("\n");
        if (port && path) url = `ws://127.0.0.1:${port}${path}`;
      }
      if (url) break;
      if (gone) throw new Error(`chromium exited: ${stderr.slice(-2000)}`);
      if (Date.now() > end) throw new Error(`chromium did not start: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    ws = await MiniWebSocket.connect(net, url);
  } catch (e) {
    await kill();
    throw e;
  }
  const cdp = new Cdp(ws);
  return {
    async open(url) {
      const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
      const sid = String(sessionId);
      await cdp.send("Emulation.setDeviceMetricsOverride", {
        width,
        height,
        deviceScaleFactor: 1,
        mobile: false,
      }, sid);
      await cdp.send("Page.enable", {}, sid);
      await cdp.send("Page.navigate", { url }, sid);
      const page: Page = {
        async eval<T>(expression: string): Promise<T> {
          const r = await cdp.send("Runtime.evaluate", { expression, returnByValue: true }, sid);
          const res = r.result as { value?: T } | undefined;
          return res?.value as T;
        },
        async waitFor(expression, ms = 15000) {
          const end = Date.now() + ms;
          for (;;) {
            try {
              if (await page.eval<boolean>(`!!(${expression})`)) return true;
            } catch {
              // page still loading
            }
            if (Date.now() > end) return false;
            await new Promise((r) => setTimeout(r, 100));
          }
        },
        async view(v) {
          await cdp.send("Emulation.setDeviceMetricsOverride", {
            width: v.width,
            height: v.height,
            deviceScaleFactor: 1,
            mobile: v.mobile ?? false,
          }, sid);
          await cdp.send("Emulation.setEmulatedMedia", {
            features: [{ name: "prefers-color-scheme", value: v.dark ? "dark" : "light" }],
          }, sid);
        },
        async screenshot() {
          const r = await cdp.send("Page.captureScreenshot", { format: "png" }, sid);
          const bin = atob(String(r.data));
          return Uint8Array.from(bin, (c) => c.charCodeAt(0));
        },
      };
      return page;
    },
    async close() {
      try {
        await cdp.send("Browser.close", {}, undefined, 3000);
      } catch {
        // killed below
      }
      ws.close();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      await kill();
    },
  };
}
