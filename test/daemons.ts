/**
 * Real servers the tests start and stop: tinyproxy (HTTP CONNECT with Basic
 * auth), microsocks (SOCKS5 with user/password), nginx (TLS termination
 * with WebSocket pass-through), and nginx's stream module and haproxy (TCP
 * with a PROXY protocol header). Each lives in its own temporary directory,
 * on a free loopback port; `stop()` ends the process and removes it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Addr, Net } from "../src/net.ts";
import { fingerprint, generateSelfSigned } from "../src/tls.ts";
import { freePort, freePorts } from "./helpers.ts";

/** A free port on 127.0.0.1 (for daemons that need one on their command line). */
export { freePort } from "./helpers.ts";

export interface Daemon {
  addr: Addr;
  stop(): Promise<void>;
}

async function daemon(
  net: Net,
  cmd: string,
  args: (port: number) => string[],
  dir?: string,
): Promise<Daemon> {
  const port = await freePort(net);
  const child: ChildProcess = spawn(cmd, args(port), { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  const addr = { host: "127.0.0.1", port };
  const up = await (async () => {
    for (let i = 0; i < 100; i++) {
      try {
        (await net.dial(addr)).close();
        return true;
      } catch {
        await new Promise((r) => setTimeout(r, 30));
      }
    }
    return false;
  })();
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  if (!up) {
    await stop();
    throw new Error(`${cmd} did not start: ${err}`);
  }
  return { addr, stop };
}

/** tinyproxy with Basic auth alice/s3cret; `connectPorts` limits CONNECT (403 otherwise). */
export function tinyproxy(net: Net, connectPorts: number[] = []): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-tinyproxy-"));
  return daemon(net, "tinyproxy", (port) => {
    const conf = join(dir, "tinyproxy.conf");
    writeFileSync(
      conf,
      [
        `Port ${port}`,
        "Listen 127.0.0.1",
        "Timeout 30",
        "Allow 127.0.0.1",
        "MaxClients 20",
        "LogLevel Critical",
        `LogFile "${join(dir, "log")}"`,
        "BasicAuth alice s3cret",
        ...connectPorts.map((p) => `ConnectPort ${p}`),
      ].join("\n") + "\n",
    );
    return ["-d", "-c", conf];
  }, dir);
}

export function microsocks(net: Net): Promise<Daemon> {
  return daemon(
    net,
    "microsocks",
    (port) => ["-i", "127.0.0.1", "-p", String(port), "-u", "alice", "-P", "s3cret"],
  );
}

/**
 * nginx terminating TLS on a free port (on 127.0.0.1 and ::1), passing
 * `/burrow/` (WebSocket upgrades included) to `upstream` with X-Forwarded-For.
 */
export async function nginx(
  net: Net,
  upstream: Addr,
): Promise<{ addr: Addr; pin: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-nginx-"));
  const cert = await certIn(dir);
  const port = await freePort(net);
  writeFileSync(
    join(dir, "nginx.conf"),
    `${nginxTop(dir)}
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port} ssl;
    listen [::1]:${port} ssl;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    location /burrow/ {
      proxy_pass http://${upstream.host}:${upstream.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_buffering off;
    }
  }
}
`,
  );
  const child: ChildProcess = spawn("nginx", [
    "-p",
    dir,
    "-c",
    join(dir, "nginx.conf"),
    "-e",
    join(dir, "error.log"),
  ], {
    stdio: "ignore",
  });
  const addr = { host: "127.0.0.1", port };
  const { stop } = await started(net, child, dir, addr, "nginx");
  return { addr, pin: await fingerprint(cert.cert), stop };
}

/** `child` (its files in `dir`) once it accepts on `addr`; its stop() ends it and removes `dir`. */
async function started(
  net: Net,
  child: ChildProcess,
  dir: string,
  addr: Addr,
  name: string,
): Promise<{ stop(): Promise<void> }> {
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    try {
      (await net.dial(addr)).close();
      return { stop };
    } catch {
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  await stop();
  throw new Error(`${name} did not start`);
}

/**
 * A TCP proxy in front of `upstream` that sends a PROXY header first: nginx's
 * stream module (`proxy_protocol on`: version 1) or haproxy
 * (`send-proxy-v2`). It listens on one free port on both 127.0.0.1 and ::1,
 * so a test has two real sources behind one proxy address.
 */
export async function proxyProtocolProxy(
  net: Net,
  kind: "nginx" | "haproxy",
  upstream: Addr,
): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `burrow-${kind}-`));
  const port = await freePort(net);
  const up = `${upstream.host}:${upstream.port}`;
  const conf = join(dir, `${kind}.conf`);
  if (kind === "nginx") {
    writeFileSync(
      conf,
      `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
stream {
  server {
    listen 127.0.0.1:${port};
    listen [::1]:${port};
    proxy_pass ${up};
    proxy_protocol on;
  }
}
`,
    );
  } else {
    writeFileSync(
      conf,
      `global
  pidfile ${dir}/haproxy.pid
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend front
  bind 127.0.0.1:${port}
  bind ipv6@::1:${port}
  default_backend back
backend back
  server burrow ${up} send-proxy-v2
`,
    );
  }
  const args = kind === "nginx"
    ? ["-p", dir, "-c", conf, "-e", join(dir, "error.log")]
    : ["-db", "-f", conf];
  const child: ChildProcess = spawn(kind, args, { stdio: "ignore" });
  const { stop } = await started(net, child, dir, { host: "127.0.0.1", port }, kind);
  return { port, stop };
}

/**
 * nginx serving the files under `root` (a static site, or a "dumb HTTP" git
 * repository) over HTTPS with a self-signed certificate and over plain HTTP,
 * each on a free port of 127.0.0.1.
 */
export async function staticSite(
  net: Net,
  root: string,
): Promise<{ https: Addr; http: Addr; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-nginx-static-"));
  await certIn(dir);
  const [tls, plain] = await freePorts(net, 2);
  writeFileSync(
    join(dir, "nginx.conf"),
    `${nginxTop(dir)}
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${tls} ssl;
    listen 127.0.0.1:${plain};
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    root ${root};
  }
}
`,
  );
  const child: ChildProcess = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], {
    stdio: "ignore",
  });
  const https = { host: "127.0.0.1", port: tls! };
  const { stop } = await started(net, child, dir, https, "nginx");
  return { https, http: { host: "127.0.0.1", port: plain! }, stop };
}

/** A self-signed certificate, as `dir`/cert.pem and `dir`/key.pem. */
async function certIn(dir: string): Promise<{ cert: string; key: string }> {
  const cert = await generateSelfSigned();
  writeFileSync(join(dir, "cert.pem"), cert.cert);
  writeFileSync(join(dir, "key.pem"), cert.key, { mode: 0o600 });
  return cert;
}

/** The top of an nginx.conf whose files all live in `dir`, up to inside `http {`. */
function nginxTop(dir: string): string {
  return `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`;
}
