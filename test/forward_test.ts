/**
 * Local port forwards of `burrow client` (SPEC.md §10.2), run as a real
 * process on each runtime against an in-process server and agent: `psql` to
 * a real PostgreSQL (Debian's, as the postgres user, own data directory and
 * port), `ssh` to the test's own sshd, and `ncat` to an echo target, each
 * through a forward of `-c client.yaml` with `--listen off`; then
 * `--forward` flags (default bind 127.0.0.1, an IPv6 bind in brackets, a
 * refused target that closes the local connection and is logged with its
 * reason).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Net } from "../src/net.ts";
import {
  ALICE_TOKEN,
  burrow,
  echoTarget,
  freePorts,
  readAll,
  runtime,
  type Tunnel,
  tunnel,
} from "./helpers.ts";

const rt = runtime;
const PG_BIN = "/usr/lib/postgresql/15/bin";

/** Run `cmd` without blocking the event loop (the server runs in this process). */
function run(
  cmd: string,
  args: string[],
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) {
      child.stdin!.on("error", () => {}); // a program that exits without reading it: EPIPE
      child.stdin!.end(input);
    }
  });
}

/** Run `cmd` and fail with its output unless it exits 0. */
async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.code}\n${r.stderr}`);
  return r.stdout;
}

/** PostgreSQL as the postgres user (initdb refuses root), in `dir`, on `port`. */
async function postgres(dir: string, port: number): Promise<() => Promise<void>> {
  const pg = join(dir, "pg");
  mkdirSync(pg);
  const { uid, gid } = await must("id", ["postgres"]).then((s) => ({
    uid: Number(/uid=(\d+)/.exec(s)![1]),
    gid: Number(/gid=(\d+)/.exec(s)![1]),
  }));
  chownSync(pg, uid, gid);
  const as = (bin: string, ...args: string[]) =>
    must("runuser", ["-u", "postgres", "--", join(PG_BIN, bin), ...args]);
  await as(
    "initdb",
    "-D",
    join(pg, "data"),
    "-A",
    "trust",
    "-U",
    "postgres",
    "--no-sync",
    "-E",
    "UTF8",
  );
  const opts = `-p ${port} -k ${pg} -c listen_addresses=127.0.0.1 -c fsync=off`;
  await as("pg_ctl", "-D", join(pg, "data"), "-o", opts, "-l", join(pg, "log"), "-w", "start");
  return async () => {
    await as("pg_ctl", "-D", join(pg, "data"), "-m", "immediate", "-w", "stop").catch(() => {});
  };
}

/** The test's own sshd on `port`: its own host key, and `dir`/id as the one authorized key. */
async function sshd(dir: string, port: number): Promise<() => Promise<void>> {
  await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "id")]);
  await must("cp", [join(dir, "id.pub"), join(dir, "authorized_keys")]);
  mkdirSync("/run/sshd", { recursive: true }); // sshd's privilege separation directory
  const conf = join(dir, "sshd_config");
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host_key")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
    ].join("\n") + "\n",
  );
  const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", conf], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  return async () => {
    child.kill("SIGTERM");
    await exited;
  };
}

/** Send `text` to `port` on 127.0.0.1 with ncat; what comes back. */
async function ncat(host: string, port: number, text: string): Promise<string> {
  const r = await run("ncat", [host, String(port)], text);
  return r.stdout;
}

let t: Tunnel;
let dir: string;
let echo: Awaited<ReturnType<typeof echoTarget>>;
const stops: Array<() => Promise<void>> = [];
let ports: number[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "burrow-forward-"));
  chmodSync(dir, 0o755); // postgres enters it
  t = await tunnel();
  echo = await echoTarget(t.net);
  ports = await freePorts(t.net, 9);
  const [pgPort, sshPort] = ports;
  stops.push(await postgres(dir, pgPort!), await sshd(dir, sshPort!));
  await accepting(t.net, "127.0.0.1", sshPort!);
});

after(async () => {
  for (const stop of stops.reverse()) await stop();
  echo.close();
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

const server = () => `127.0.0.1:${t.server.addrs.clients!.port}`;

/** Wait until `port` accepts (the process listens), then close the probe. */
async function accepting(net: Net, host: string, port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await net.dial({ host, port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing accepts on ${host}:${port}`);
}

test(`${rt}: -c client.yaml forwards with --listen off: psql, ssh, ncat`, async () => {
  const [pgPort, sshPort, pgFwd, sshFwd, echoFwd, , , , labFwd] = ports;
  writeFileSync(join(dir, "token"), `${ALICE_TOKEN}\n`);
  const yaml = join(dir, "client.yaml");
  writeFileSync(
    yaml,
    `server: ${server()}
name: alice
token_file: token
plain: true
forwards:
  - listen: ${pgFwd}
    target: 127.0.0.1:${pgPort}
    agent: office
  - { listen: "127.0.0.1:${sshFwd}", target: "localhost:${sshPort}" }
  - { listen: ${echoFwd}, target: "127.0.0.1:${echo.addr.port}" }
  - { listen: ${labFwd}, target: "127.0.0.1:${echo.addr.port}", agent: lab }
`,
  );
  const p = burrow(rt, ["client", "-c", yaml, "--listen", "off", "--agent", "office"]);
  try {
    await p.waitFor(new RegExp(`forward listening.*forward=127\\.0\\.0\\.1:${echoFwd}`));
    await accepting(t.net, "127.0.0.1", echoFwd!);
    const psql = await run("psql", [
      `host=127.0.0.1 port=${pgFwd} user=postgres dbname=postgres sslmode=disable connect_timeout=10`,
      "-Atc",
      "select 6 * 7",
    ]);
    assert.equal(psql.stdout, "42\n", psql.stderr);
    const ssh = await run("ssh", [
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "ConnectTimeout=10",
      "-i",
      join(dir, "id"),
      "-p",
      String(sshFwd),
      "root@127.0.0.1",
      "echo",
      "sshd-through-burrow",
    ]);
    assert.equal(ssh.stdout, "sshd-through-burrow\n", ssh.stderr);
    assert.equal(await ncat("127.0.0.1", echoFwd!, "ping over ncat\n"), "ping over ncat\n");
    // A forward's own agent: alice is not granted lab, so its stream is refused.
    const lab = await t.net.dial({ host: "127.0.0.1", port: labFwd! });
    assert.equal((await readAll(lab)).length, 0);
    lab.close();
    await p.waitFor(/connect refused.*agent=lab.*reason=not_granted/);
    // --listen off: no SOCKS5/HTTP listener.
    assert.doesNotMatch(p.output(), /client proxy listening/);
  } finally {
    await p.stop();
  }
});

test(`${rt}: --forward flags: default 127.0.0.1, [::1], a refused target is closed and logged`, async () => {
  const [, , , , , plainFwd, v6Fwd, deniedFwd] = ports;
  const p = burrow(rt, [
    "client",
    "--server",
    server(),
    "--plain",
    "--name",
    "alice",
    "--token",
    ALICE_TOKEN,
    "--agent",
    "office",
    "--listen",
    "127.0.0.1:0",
    "--forward",
    `${plainFwd}=127.0.0.1:${echo.addr.port}`,
    "--forward",
    `[::1]:${v6Fwd}=127.0.0.1:${echo.addr.port}`,
    "--forward",
    `${deniedFwd}=10.1.2.3:80`,
  ]);
  try {
    await p.waitFor(/client proxy listening/);
    assert.match(p.output(), new RegExp(`forward listening.*forward=127\\.0\\.0\\.1:${plainFwd}`));
    assert.equal(await ncat("127.0.0.1", plainFwd!, "v4\n"), "v4\n");
    assert.equal(await ncat("::1", v6Fwd!, "v6\n"), "v6\n");
    // Outside alice's grant: the local connection is closed without a byte.
    const c = await t.net.dial({ host: "127.0.0.1", port: deniedFwd! });
    assert.equal((await readAll(c)).length, 0);
    c.close();
    await p.waitFor(/connect refused.*forward=127\.0\.0\.1:\d+.*reason=outside_grant/);
  } finally {
    await p.stop();
  }
});

test(`${rt}: a forward port in use ends the client with one line naming --forward`, async () => {
  const held = await t.net.listen({ host: "127.0.0.1", port: 0 });
  const p = burrow(rt, [
    ...["client", "--server", server(), "--plain", "--name", "alice", "--token", ALICE_TOKEN],
    ...["--listen", "127.0.0.1:0", "--forward", `${held.addr.port}=127.0.0.1:${echo.addr.port}`],
  ]);
  try {
    assert.equal(await p.exited, 3, p.output());
    assert.match(
      p.output(),
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${held.addr.port} \\(--forward\\)`),
    );
  } finally {
    await p.stop();
    held.close();
  }
});

test(`${rt}: --listen off without a forward, and a bad --forward, are usage errors`, async () => {
  const common = ["client", "--server", server(), "--plain", "--name", "alice", "--token", "x"];
  const off = burrow(rt, [...common, "--listen", "off"]);
  assert.equal(await off.exited, 2);
  assert.match(off.output(), /--listen off needs at least one --forward/);
  const bad = burrow(rt, [...common, "--forward", "5432=db.corp"]);
  assert.equal(await bad.exited, 2);
  assert.match(bad.output(), /--forward: Cannot parse forward target "db.corp"/);
});
