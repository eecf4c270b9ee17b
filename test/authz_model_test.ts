/**
 * Model-based test of authorization (SPEC.md §7, §8). Each run generates
 * grants (names, wildcards, CIDRs, ports, ranges), an agent allowlist (with
 * `client=` rules) and 1..6 CONNECTs with user names and targets, hostile
 * ones included (NUL, `%`, spaces, non-ASCII, punycode, `2130706433`,
 * `0x7f.1`, `127.1`, mapped IPv6, trailing dots, mixed case). The CONNECTs go
 * through a real server and agent on real sockets to tripwire listeners on
 * 127.0.0.1 and ::1. A small model, written from SPEC.md §7 and not from src/,
 * predicts each reply code, every address the agent tries to connect to, and
 * which tripwire sees the connection; the test asserts all three.
 *
 * **The test's network.** This machine has no DNS, and the test must never
 * reach anything but loopback. The agent gets a {@link Net} built on the real
 * runtime adapter whose `lookup` and name `dial` answer from {@link HOSTS}
 * (the test's /etc/hosts: exact, canonical names; anything else is
 * ENOTFOUND), and whose `dial` connects for real only to 127.0.0.1 and ::1;
 * any other address is "network unreachable" (ENETUNREACH) without a packet
 * sent. So the model knows where every allowed name goes:
 *
 *   P0, P1, P2  tripwires (accept, record, close) on 127.0.0.1 and on ::1,
 *               six in all: each address family has its own
 *   P3          no listener: 0x05. A port below the ephemeral range: a
 *               freshly closed ephemeral port once answered in 10^4 runs
 *               (another process took it, or a connect to it picked that very
 *               port as its source port and met itself).
 *
 * Runs: BURROW_MODEL_RUNS (default 500, about 3 s); `npm run fuzz` runs this
 * file under Node with 10^4 (about a minute). BURROW_MODEL_SEED replays a
 * seed that fast-check printed (with the same BURROW_MODEL_RUNS).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Agent } from "../src/agent.ts";
import { tokenCredential } from "../src/auth.ts";
import { parseServerConfig, type ServerConfig } from "../src/config/mod.ts";
import { createLogger } from "../src/log.ts";
import type { Rule, Target } from "../src/messages.ts";
import { NetError } from "../src/errors.ts";
import type { Conn, DatagramSocket, DialOptions, Listener, Net } from "../src/net.ts";
import { parseRule } from "../src/policy.ts";
import { Reader } from "../src/reader.ts";
import { Server } from "../src/server/mod.ts";
import { parseMethodSelection, parseReply, parseUserpassReply } from "../src/socks5_decode.ts";
import { greeting, request, userpassRequest } from "../src/socks5_encode.ts";
import { deadline } from "../src/time.ts";
import { AGENT_TOKEN, ALICE_TOKEN, BOB_TOKEN, runtime, runtimeNet } from "./helpers.ts";

const env = (k: string): string | undefined => globalThis.process?.env?.[k];
const RUNS = Number(env("BURROW_MODEL_RUNS") ?? 500);
const SEED = env("BURROW_MODEL_SEED");

// ------------------------------------------------------------ the network

/** The test's /etc/hosts (canonical names only; lookups are exact). */
const HOSTS: Readonly<Record<string, readonly string[]>> = {
  "localhost": ["127.0.0.1"],
  "a.corp": ["127.0.0.1"],
  "db.corp": ["127.0.0.1"],
  "b.a.corp": ["127.0.0.1"],
  "x.lab": ["127.0.0.1"],
  "xn--bcher-kva.corp": ["127.0.0.1"],
  "v6.corp": ["::1"],
  "dual.corp": ["::1", "127.0.0.1"],
  "far.corp": ["10.1.2.3"],
  "mapped.corp": ["::ffff:127.0.0.1"],
  "fallback.corp": ["10.1.2.3", "127.0.0.1"],
  /** Under CIDR rules only the first 4 inside are tried (SPEC.md §7.3). */
  "many.corp": ["10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6", "127.0.0.1"],
};

/** What the test's network does with an IP literal: only loopback is real. */
function netIP(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1]! : host; // the kernel connects a mapped address over IPv4
}
const isIP = (host: string) => host.includes(":") || /^\d+\.\d+\.\d+\.\d+$/.test(host);

/** The real adapter, with {@link HOSTS} as resolver and loopback as the only network. */
class TestNet implements Net {
  readonly runtime: string;
  /** Every address the agent tried on a target port (P0..P3), in order. */
  readonly attempts: string[] = [];

  constructor(readonly real: Net, readonly watched: ReadonlySet<number>) {
    this.runtime = real.runtime;
  }

  listen(opts: Parameters<Net["listen"]>[0]): Promise<Listener> {
    return this.real.listen(opts);
  }

  bindUdp(opts: Parameters<Net["bindUdp"]>[0]): Promise<DatagramSocket> {
    return this.real.bindUdp(opts);
  }

  lookup(host: string): Promise<string[]> {
    const a = HOSTS[host];
    if (!a) return Promise.reject(new NetError("ENOTFOUND", `${host} is not in the test's hosts`));
    return Promise.resolve([...a]);
  }

  async dial(opts: DialOptions): Promise<Conn> {
    if (isIP(opts.host)) return this.#dialIP(opts);
    const addrs = await this.lookup(opts.host);
    let last: unknown;
    for (const host of addrs) {
      try {
        return await this.#dialIP({ ...opts, host });
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }

  #dialIP(opts: DialOptions): Promise<Conn> {
    const host = netIP(opts.host);
    if (this.watched.has(opts.port)) this.attempts.push(host);
    if (host !== "127.0.0.1" && host !== "::1") {
      return Promise.reject(
        new NetError("ENETUNREACH", `the test's network has no route to ${host}`),
      );
    }
    return this.real.dial({ ...opts, host });
  }
}

interface Tripwire {
  port: number;
  /** The peer port of every connection accepted. */
  seen: number[];
  close(): void;
}

/** A listener that accepts, records the peer's port, and closes. */
async function tripwire(net: Net, host: string, port: number): Promise<Tripwire> {
  const l = await net.listen({ host, port });
  const seen: number[] = [];
  (async () => {
    for await (const c of l) {
      seen.push(c.remote.port);
      c.close();
    }
  })();
  return { port: l.addr.port, seen, close: () => l.close() };
}

// ---------------------------------------------------------- generated cases

/** Port symbols: P0..P2 tripwires, P3 the dead port. */
type Ports = readonly [number, number, number, number];
/** `""` (no `:ports`), `*`, `P1`, `P0-P2` (range between the two), `P0,P3` (list). */
type PortSpec = string;

interface RuleSpec {
  client: "" | "alice" | "bob";
  host: string;
  ports: PortSpec;
}
interface GrantSpec {
  client: "alice" | "bob";
  agents: string[];
  targets: RuleSpec[];
}
interface Send {
  user: string;
  target: { type: Target["type"]; host: string };
  port: 0 | 1 | 2 | 3;
}
interface Case {
  grants: GrantSpec[];
  allow: RuleSpec[];
  sends: Send[];
}

const RULE_HOSTS = [
  "*",
  "*.corp",
  "a.corp",
  "db.corp",
  "*.lab",
  "localhost",
  "*.CORP.",
  "A.Corp.",
  "xn--bcher-kva.corp",
  "dual.corp",
  "*.a.corp",
  "127.0.0.0/8",
  "127.0.0.1/32",
  "127.0.0.1",
  "10.0.0.0/8",
  "[::/0]",
  "[::1/128]",
  "[::1]",
];

const portIdx = fc.constantFrom(0, 1, 2, 3);
const portSpec: fc.Arbitrary<PortSpec> = fc.oneof(
  { arbitrary: fc.constantFrom("", "*"), weight: 3 },
  { arbitrary: portIdx.map((i) => `P${i}`), weight: 1 },
  {
    arbitrary: fc.tuple(portIdx, portIdx).filter(([a, b]) => a !== b).map(([a, b]) =>
      `P${a}-P${b}`
    ),
    weight: 1,
  },
  {
    arbitrary: fc.tuple(portIdx, portIdx).filter(([a, b]) => a !== b).map(([a, b]) =>
      `P${a},P${b}`
    ),
    weight: 1,
  },
);
/** Broad hosts more often than the rest, so that many CONNECTs get through to the agent. */
const ruleHost = (broad: number) =>
  fc.oneof(
    { arbitrary: fc.constantFrom("*", "*.corp", "127.0.0.0/8", "[::/0]"), weight: broad },
    { arbitrary: fc.constantFrom(...RULE_HOSTS), weight: 2 },
  );
const ruleSpec = (clients: boolean, broad: number): fc.Arbitrary<RuleSpec> =>
  fc.record({
    client: clients
      ? fc.constantFrom("" as const, "" as const, "alice" as const, "bob" as const)
      : fc.constant("" as const),
    host: ruleHost(broad),
    ports: portSpec,
  });
const grantsFor = (client: "alice" | "bob"): fc.Arbitrary<GrantSpec[]> =>
  fc.array(
    fc.record({
      client: fc.constant(client),
      agents: fc.constantFrom(["office"], ["office"], ["office"], ["lab"], ["office", "lab"]),
      targets: fc.array(ruleSpec(false, 3), { maxLength: 3 }),
    }),
    { maxLength: 3 },
  );

const LONG63 = "l".repeat(63) + ".corp";
/** 253 bytes: the longest host name. */
const NAME253 = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(56), "corp"].join(".");
/** Valid host names: in HOSTS, or not (ENOTFOUND), or matching no pattern. */
const NAMES = [
  ...Object.keys(HOSTS),
  "nx.corp",
  "corp",
  "127.0.0.1.corp",
  "_srv.corp",
  "a-b.lab",
  LONG63,
  NAME253,
];
/** `name` in lower, upper or mixed case, with or without a trailing dot. */
const variant = (name: string) =>
  fc.tuple(fc.constantFrom("lower", "upper", "mixed"), fc.boolean()).map(([kase, dot]) => {
    const cased = kase === "lower"
      ? name
      : kase === "upper"
      ? name.toUpperCase()
      : [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("");
    return { type: "domain" as const, host: dot ? `${cased}.` : cased };
  });
const nameTarget = fc.constantFrom(...NAMES).chain(variant);
/** Domain strings that are no host name (SPEC.md §7.3): each must get 0x02, whatever the rules. */
const HOSTILE = [
  "127.0.0.1\0.corp",
  "localhost\0.corp",
  "a.corp\0",
  "a%2ecorp",
  "a%2e.corp",
  "a b.corp",
  " a.corp",
  "a.corp ",
  "bücher.corp",
  "\u212A.corp", // KELVIN SIGN: lower-cases to ASCII "k"
  "\u0430.corp", // Cyrillic a
  "2130706433",
  "0x7f.1",
  "127.1",
  "a.0X1f",
  "a..corp",
  ".a.corp",
  "a.corp..",
  "l".repeat(64) + ".corp",
  NAME253 + "x",
  "*.corp",
  "a/b.corp",
  "a:b",
  "[::1]",
  "::1%1",
  "localhost:80",
];
const hostileTarget = fc.constantFrom(...HOSTILE).map((host) => ({
  type: "domain" as const,
  host,
}));
const IP_TEXTS_V4 = ["127.0.0.1", "127.0.0.2", "10.1.2.3"];
const IP_TEXTS_V6 = [
  "::1",
  "0:0:0:0:0:0:0:1",
  "::ffff:127.0.0.1",
  "::FFFF:7f00:1",
  "::ffff:10.1.2.3",
  "fd00::1",
];
const IP_TARGETS: Send["target"][] = [
  ...IP_TEXTS_V4.map((host) => ({ type: "ipv4" as const, host })),
  ...IP_TEXTS_V6.map((host) => ({ type: "ipv6" as const, host })),
  ...[...IP_TEXTS_V4, ...IP_TEXTS_V6].map((host) => ({ type: "domain" as const, host })),
];
const ipTarget = fc.constantFrom(...IP_TARGETS);
const portArb = fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const);
type TargetPort = Pick<Send, "target" | "port">;
const anyTarget: fc.Arbitrary<TargetPort> = fc.record({
  target: fc.oneof(
    { arbitrary: nameTarget, weight: 5 },
    { arbitrary: hostileTarget, weight: 2 },
    { arbitrary: ipTarget, weight: 3 },
  ),
  port: portArb,
});

/** A target and port inside rule `r`: so that more CONNECTs get past the rules. */
function near(r: RuleSpec): fc.Arbitrary<TargetPort> {
  const nums = [...r.ports.matchAll(/P(\d)/g)].map((m) => Number(m[1]) as 0 | 1 | 2 | 3);
  const port = nums.length > 0 ? fc.constantFrom(...nums) : portArb;
  let target: fc.Arbitrary<Send["target"]>;
  if (r.host in CIDRS) {
    const inside = IP_TARGETS.filter((t) => inCidr(LITERALS[t.host]!, r.host));
    target = fc.oneof({ arbitrary: fc.constantFrom(...inside), weight: 2 }, nameTarget);
  } else if (r.host === "*") {
    target = fc.oneof(nameTarget, ipTarget, hostileTarget);
  } else if (r.host.startsWith("*.")) {
    const suffix = `.${hostName(r.host.slice(2))}`;
    const names = NAMES.filter((n) => n.endsWith(suffix));
    target = fc.oneof(fc.constantFrom(...names).chain(variant), hostileTarget);
  } else {
    target = variant(hostName(r.host)!);
  }
  return fc.record({ target, port });
}

const USERS = [
  "alice",
  "bob",
  "alice@office",
  "alice@lab",
  "bob@office",
  "bob@lab",
  "alice@nosuch",
];
const user = fc.oneof(
  { arbitrary: fc.constantFrom("alice@office", "bob@office"), weight: 2 },
  { arbitrary: fc.constantFrom(...USERS), weight: 2 },
);

/**
 * A CONNECT: random; near a random rule; or (most often) a user of a random
 * grant with a target near one of its rules or of the agent's rules.
 */
const sendArb = (grants: GrantSpec[], allow: RuleSpec[]): fc.Arbitrary<Send> => {
  const rules = [...grants.flatMap((g) => g.targets), ...allow];
  const options: Array<fc.WeightedArbitrary<[string, TargetPort]>> = [
    { arbitrary: fc.tuple(user, anyTarget), weight: 2 },
    { arbitrary: fc.tuple(user, fc.constantFrom(...rules).chain(near)), weight: 1 },
  ];
  if (grants.length > 0) {
    options.push({
      arbitrary: fc.constantFrom(...grants).chain((g) =>
        fc.tuple(
          fc.oneof(
            { arbitrary: fc.constantFrom(...g.agents.map((a) => `${g.client}@${a}`)), weight: 2 },
            fc.constant(g.client),
          ),
          fc.oneof(
            { arbitrary: fc.constantFrom(...g.targets, ...allow), weight: 3 },
            fc.constantFrom(...allow),
          ).chain(near),
        )
      ),
      weight: 4,
    });
  }
  return fc.oneof(...options).map(([user, tp]) => ({ user, ...tp }));
};

const ruleText = (r: RuleSpec, ports?: Ports): string => {
  const p = ports ? renderPorts(r.ports, ports) : r.ports;
  return `${r.client ? `${r.client}=` : ""}${r.host}${p === "" ? "" : `:${p}`}`;
};

/** JSON-quoted, with every non-ASCII and control character escaped. */
const quote = (s: string) =>
  JSON.stringify(s).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );

function showCase(c: Case): string {
  const g = c.grants.map((g) =>
    `${g.client}→${g.agents.join(",")} [${g.targets.map((t) => ruleText(t)).join(" ")}]`
  );
  const s = c.sends.map((s) => `${s.user} ${s.target.type} ${quote(s.target.host)}:P${s.port}`);
  return `{ grants: ${g.join("; ") || "none"} | office allows: ${
    c.allow.map((r) => ruleText(r)).join(" ")
  } | sends: ${s.join("; ")} }`;
}

const printable = (c: Case): Case => Object.assign(c, { [fc.toStringMethod]: () => showCase(c) });

/** Shorthands for the hand-written examples below. */
const rule = (text: string): RuleSpec => {
  const m = /^(?:(alice|bob)=)?(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(text)!;
  return { client: (m[1] ?? "") as RuleSpec["client"], host: m[2]!, ports: m[3] ?? "" };
};
const send = (user: string, type: Target["type"], host: string, port: Send["port"] = 0): Send => ({
  user,
  target: { type, host },
  port,
});

/**
 * Cases that run first, every time (fast-check `examples`): one per corner of
 * SPEC.md §7 that random runs reach only now and then.
 */
const EXAMPLES: Case[] = ([
  { // §7.3: non-ASCII is refused, even when it lower-cases to ASCII (U+212A → "k")
    grants: [{ client: "bob", agents: ["office"], targets: [rule("*.corp")] }],
    allow: [rule("*.corp")],
    sends: [send("bob@office", "domain", "\u212A.corp"), send("bob", "domain", "db.corp")],
  },
  { // §7.3: a NUL byte; a mapped address is IPv4 ([::/0] does not reach it); IP literal as name
    grants: [{ client: "alice", agents: ["office"], targets: [rule("*.corp"), rule("[::/0]")] }],
    allow: [rule("*")],
    sends: [
      send("alice", "domain", "127.0.0.1\0.corp"),
      send("alice", "ipv6", "::ffff:127.0.0.1"),
      send("alice", "domain", "::ffff:127.0.0.1"),
      send("alice", "ipv6", "::1", 1),
      send("alice", "domain", "0:0:0:0:0:0:0:1", 2),
    ],
  },
  { // §7.3: names under CIDR rules only: resolved, only addresses inside, at most 4 tried
    grants: [{ client: "alice", agents: ["office"], targets: [rule("*.corp"), rule("*.lab")] }],
    allow: [rule("10.0.0.0/8"), rule("127.0.0.0/8:P0,P3"), rule("[::1/128]:P1")],
    sends: [
      send("alice", "domain", "many.corp"),
      send("alice", "domain", "Fallback.Corp.", 0),
      send("alice", "domain", "dual.corp", 1),
      send("alice", "domain", "far.corp", 3),
      send("alice", "domain", "x.lab", 1),
      send("alice", "domain", "nx.corp", 0),
    ],
  },
  { // §7.1 and §7.2: bare client with two agents; agent offline; client= rules
    grants: [
      { client: "alice", agents: ["office", "lab"], targets: [rule("*")] },
      { client: "bob", agents: ["office"], targets: [rule("localhost:P1-P2")] },
    ],
    allow: [rule("bob=localhost"), rule("alice=127.0.0.1/32:P2")],
    sends: [
      send("alice", "domain", "localhost"),
      send("alice@lab", "domain", "localhost"),
      send("alice@office", "domain", "localhost"),
      send("bob", "domain", "LOCALHOST.", 2),
      send("bob", "domain", "localhost", 0),
      send("alice@office", "domain", "127.0.0.1", 2),
    ],
  },
] satisfies Case[]).map(printable);

const caseArb: fc.Arbitrary<Case> = fc.record({
  grants: fc.tuple(grantsFor("alice"), grantsFor("bob")).map(([a, b]) => [...a, ...b]),
  allow: fc.array(ruleSpec(true, 1), { minLength: 1, maxLength: 4 }),
}).chain(({ grants, allow }) =>
  fc.array(sendArb(grants, allow), { minLength: 1, maxLength: 6 })
    .map((sends) => printable({ grants, allow, sends }))
);

function renderPorts(spec: PortSpec, ports: Ports): string {
  const p = (i: string) => ports[Number(i)]!;
  let m = /^P(\d)-P(\d)$/.exec(spec);
  if (m) {
    const [a, b] = [p(m[1]!), p(m[2]!)];
    return `${Math.min(a, b)}-${Math.max(a, b)}`;
  }
  m = /^P(\d),P(\d)$/.exec(spec);
  if (m) return `${p(m[1]!)},${p(m[2]!)}`;
  m = /^P(\d)$/.exec(spec);
  if (m) return `${p(m[1]!)}`;
  return spec;
}

// ------------------------------------------------------------------ model
//
// Written from SPEC.md §7 (and §9.3 for the codes), on purpose without src/.

const NOT_ALLOWED = 0x02;
const NET_UNREACHABLE = 0x03;
const HOST_UNREACHABLE = 0x04;
const REFUSED = 0x05;

/** IP literals the cases use: text → canonical text (mapped IPv6 → IPv4). */
const LITERALS: Readonly<Record<string, string>> = {
  "127.0.0.1": "127.0.0.1",
  "127.0.0.2": "127.0.0.2",
  "10.1.2.3": "10.1.2.3",
  "::1": "::1",
  "0:0:0:0:0:0:0:1": "::1",
  "::ffff:127.0.0.1": "127.0.0.1",
  "::FFFF:7f00:1": "127.0.0.1",
  "::ffff:10.1.2.3": "10.1.2.3",
  "fd00::1": "fd00::1",
};
/** Canonical IP → family and value. */
const IP_VALUE: Readonly<Record<string, [4 | 6, bigint]>> = {
  "127.0.0.1": [4, 0x7f000001n],
  "127.0.0.2": [4, 0x7f000002n],
  "10.1.2.3": [4, 0x0a010203n],
  "10.1.2.4": [4, 0x0a010204n],
  "10.1.2.5": [4, 0x0a010205n],
  "10.1.2.6": [4, 0x0a010206n],
  "::1": [6, 1n],
  "fd00::1": [6, (0xfd00n << 112n) | 1n],
};
/** CIDR rule texts → family, base, prefix. */
const CIDRS: Readonly<Record<string, [4 | 6, bigint, number]>> = {
  "127.0.0.0/8": [4, 0x7f000000n, 8],
  "127.0.0.1/32": [4, 0x7f000001n, 32],
  "127.0.0.1": [4, 0x7f000001n, 32],
  "10.0.0.0/8": [4, 0x0a000000n, 8],
  "[::/0]": [6, 0n, 0],
  "[::1/128]": [6, 1n, 128],
  "[::1]": [6, 1n, 128],
};

type Canon = { kind: "name"; name: string } | { kind: "ip"; ip: string };

/** §7.3 "Target form": a host name, canonical (lower case, no trailing dot), or null. */
function hostName(s: string): string | null {
  const body = s.endsWith(".") ? s.slice(0, -1) : s;
  if (body.length < 1 || body.length > 253) return null;
  const labels = body.split(".");
  if (!labels.every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l))) return null;
  const last = labels[labels.length - 1]!;
  if (/^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/i.test(last)) return null;
  return body.toLowerCase();
}

function canon(t: Send["target"]): Canon | null {
  const ip = LITERALS[t.host];
  if (ip !== undefined) return { kind: "ip", ip };
  if (t.type !== "domain") throw new Error(`model: unknown IP literal ${t.host}`);
  const name = hostName(t.host);
  return name === null ? null : { kind: "name", name };
}

function inCidr(ip: string, host: string): boolean {
  const c = CIDRS[host];
  const v = IP_VALUE[ip];
  if (!c || !v) throw new Error(`model: unknown CIDR ${host} or IP ${ip}`);
  const [fam, base, prefix] = c;
  if (v[0] !== fam) return false;
  const shift = BigInt((fam === 4 ? 32 : 128) - prefix);
  return v[1] >> shift === base >> shift;
}

function portIn(spec: PortSpec, port: number, ports: Ports): boolean {
  if (spec === "" || spec === "*") return true;
  const nums = [...spec.matchAll(/P(\d)/g)].map((m) => ports[Number(m[1])]!);
  if (spec.includes("-")) return port >= Math.min(...nums) && port <= Math.max(...nums);
  return nums.includes(port);
}

/** How a CIDR rule treats a name: grants never match, announcements defer, the agent resolves. */
type Mode = "grant" | "announce" | { resolved: string };

function matches(r: RuleSpec, t: Canon, port: number, ports: Ports, mode: Mode): boolean {
  if (!portIn(r.ports, port, ports)) return false;
  if (r.host in CIDRS) {
    if (t.kind === "ip") return inCidr(t.ip, r.host);
    if (mode === "grant") return false;
    if (mode === "announce") return true;
    return inCidr(mode.resolved, r.host);
  }
  if (r.host === "*") return true;
  if (t.kind !== "name") return false;
  if (r.host.startsWith("*.")) return t.name.endsWith(`.${hostName(r.host.slice(2))}`);
  return t.name === hostName(r.host);
}

interface Prediction {
  reply: number;
  /** Addresses the agent connects to, in order (canonical IP text). */
  attempts: string[];
  /** The tripwire that sees the connection: 0..2 on 127.0.0.1 (P0..P2), 3..5 on ::1. */
  hit: number | null;
  why: string;
}

/** Where a connection to `ip`:`port` goes on the test's network. */
function connect(
  ip: string,
  port: number,
  ports: Ports,
): { ok: true; hit: number } | { ok: false; code: number } {
  if (ip !== "127.0.0.1" && ip !== "::1") return { ok: false, code: NET_UNREACHABLE };
  const i = ports.indexOf(port);
  if (i < 0 || i > 2) return { ok: false, code: REFUSED };
  return { ok: true, hit: ip === "::1" ? 3 + i : i };
}

const resolve = (name: string): string[] | null =>
  HOSTS[name]?.map((a) => LITERALS[a] ?? a) ?? null;

function predict(c: Case, s: Send, ports: Ports): Prediction {
  const no = (reply: number, why: string): Prediction => ({ reply, attempts: [], hit: null, why });
  const port = ports[s.port];
  // §7.3 target form
  const t = canon(s.target);
  if (t === null) return no(NOT_ALLOWED, "not a host name (§7.3)");
  // §7.1 choosing the agent
  const at = s.user.indexOf("@");
  const client = at < 0 ? s.user : s.user.slice(0, at);
  let agent = at < 0 ? "" : s.user.slice(at + 1);
  const mine = c.grants.filter((g) => g.client === client);
  if (agent === "") {
    const agents = new Set(mine.flatMap((g) => g.agents));
    if (agents.size !== 1) {
      return no(NOT_ALLOWED, `bare client granted ${agents.size} agents (§7.1)`);
    }
    agent = [...agents][0]!;
  }
  // §7.2
  const granted = mine.filter((g) => g.agents.includes(agent));
  if (granted.length === 0) return no(NOT_ALLOWED, `no grant of ${agent}`);
  if (!granted.some((g) => g.targets.some((r) => matches(r, t, port, ports, "grant")))) {
    return no(NOT_ALLOWED, "outside the grant");
  }
  if (agent !== "office") return no(HOST_UNREACHABLE, `agent ${agent} offline`);
  const rules = c.allow.filter((r) => r.client === "" || r.client === client);
  if (!rules.some((r) => matches(r, t, port, ports, "announce"))) {
    return no(NOT_ALLOWED, "outside the announcement");
  }
  // The agent's own check (§7.2, §7.3). A target a rule matches as it is is dialed
  // as it is: a name through the test's resolver, which tries its addresses in order.
  let addrs: string[];
  let why: string;
  if (rules.some((r) => matches(r, t, port, ports, "grant"))) {
    if (t.kind === "ip") addrs = [t.ip];
    else {
      const r = resolve(t.name);
      if (r === null) return no(HOST_UNREACHABLE, `agent: ${t.name} does not resolve`);
      addrs = r;
    }
    why = "agent: a rule matches the target itself";
  } else {
    if (t.kind !== "name") return no(NOT_ALLOWED, "agent: outside its rules"); // not reached
    const r = resolve(t.name);
    if (r === null) return no(HOST_UNREACHABLE, `agent: ${t.name} does not resolve`);
    addrs = r.filter((ip) => rules.some((rule) => matches(rule, t, port, ports, { resolved: ip })))
      .slice(0, 4);
    if (addrs.length === 0) return no(NOT_ALLOWED, `agent: ${r.join(",")} outside its CIDR rules`);
    why = "agent: name under a CIDR rule, resolved";
  }
  const attempts: string[] = [];
  let code = 0;
  for (const ip of addrs) {
    attempts.push(ip);
    const r = connect(ip, port, ports);
    if (r.ok) return { reply: 0, attempts, hit: r.hit, why: `${why}, connected` };
    code = r.code;
  }
  return { reply: code, attempts, hit: null, why: `${why}, connect failed` };
}

// --------------------------------------------------------------- the client

/** SOCKS5 CONNECT with user/password; the reply code and bound address (bounded in time). */
async function socksConnect(
  net: Net,
  proxy: { host: string; port: number },
  user: string,
  pass: string,
  target: Target,
): Promise<{ auth: number; reply: number | null; bound: Target | null }> {
  const conn = await net.dial({ ...proxy, timeoutMs: 5000 });
  try {
    return await deadline(
      (async () => {
        const rd = new Reader(conn);
        await conn.write(greeting([2]));
        const m = await rd.parse(parseMethodSelection, "method selection");
        if (m.method !== 2) return { auth: -1, reply: null, bound: null };
        await conn.write(userpassRequest(user, pass));
        const a = await rd.parse(parseUserpassReply, "auth reply");
        if (a.status !== 0) return { auth: a.status, reply: null, bound: null };
        await conn.write(request(1, target));
        const r = await rd.parse(parseReply, "reply");
        return { auth: 0, reply: r.reply, bound: r.bound };
      })(),
      8000,
      "SOCKS5 CONNECT",
      () => conn.close(),
    );
  } finally {
    conn.close();
  }
}

// ------------------------------------------------------------------ harness

function configFor(grants: GrantSpec[], ports: Ports): ServerConfig {
  return parseServerConfig(
    JSON.stringify({
      listen: { agents: "127.0.0.1:0", socks: "127.0.0.1:0", clients: "", http: "" },
      heartbeat: { interval: "1s", timeout: "5s" },
      pool: { min: 2, max: 16, wait: "3s", idle: "30s" },
      agents: [{ name: "office", token: AGENT_TOKEN }, { name: "lab", token: AGENT_TOKEN }],
      clients: [{ name: "alice", token: ALICE_TOKEN }, { name: "bob", token: BOB_TOKEN }],
      grants: grants.map((g) => ({
        client: g.client,
        agents: g.agents,
        targets: g.targets.map((r) => ruleText(r, ports)),
      })),
    }),
    "(model config)",
  );
}

/** The last lines of the log, for failure messages. */
function ringLogger(size: number) {
  const lines: string[] = [];
  const log = createLogger({
    level: "debug",
    sink: (l) => {
      lines.push(l);
      if (lines.length > size) lines.splice(0, lines.length - size);
    },
  });
  return { log, lines };
}

interface Harness {
  real: Net;
  net: TestNet;
  server: Server;
  trips: Tripwire[];
  ports: Ports;
  log: ReturnType<typeof ringLogger>;
  /** Predicted reply codes so far, for the summary line. */
  tally: Map<number, number>;
  agent?: Agent | undefined;
}

/** Like helpers.ts `until`, polling every 2 ms: a run waits for this twice. */
async function poll(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

/** One generated case: apply the grants, start the agent with its rules, send, compare. */
async function runCase(h: Harness, c: Case): Promise<void> {
  const { server, trips, ports, net } = h;
  server.reload(configFor(c.grants, ports));
  const rules: Rule[] = c.allow.flatMap((r) => parseRule(ruleText(r, ports)));
  const before = server.agents.sessions.get("office");
  const agent = h.agent = new Agent(net, {
    server: server.addrs.agents!,
    name: "office",
    credential: tokenCredential(AGENT_TOKEN),
    rules,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    dialTimeoutMs: 5000,
  }, h.log.log.with({ role: "agent" }));
  agent.start();
  const seen0 = trips.map((t) => t.seen.length);
  const want = trips.map(() => 0);
  const bound: number[][] = trips.map(() => []);
  const context = () =>
    [
      `grants: ${
        JSON.stringify(c.grants.map((g) => ({
          ...g,
          targets: g.targets.map((r) => ruleText(r, ports)),
        })))
      }`,
      `office allows: ${JSON.stringify(c.allow.map((r) => ruleText(r, ports)))}`,
      `ports: P0..P2 tripwires ${ports.slice(0, 3).join(", ")} (127.0.0.1 and ::1), P3 dead ${
        ports[3]
      }`,
      "log:",
      ...h.log.lines.slice(-25),
    ].join("\n");
  try {
    await deadline(agent.connected(), 5000, "agent session");
    const announced = await poll(() => {
      const s = server.agents.sessions.get("office");
      return !!s && s !== before && !s.closed && s.rules.length === rules.length;
    }, 5000);
    assert.ok(announced, `the agent's session and announcement reached the server\n${context()}`);
    for (const s of c.sends) {
      const p = predict(c, s, ports);
      h.tally.set(p.reply, (h.tally.get(p.reply) ?? 0) + 1);
      const target = { ...s.target, port: ports[s.port] } as Target;
      const pass = s.user.startsWith("bob") ? BOB_TOKEN : ALICE_TOKEN;
      const mark = net.attempts.length;
      const r = await socksConnect(h.real, server.addrs.socks!, s.user, pass, target);
      const attempts = net.attempts.slice(mark);
      const what = [
        `${s.user} → ${s.target.type} ${quote(s.target.host)}:${target.port} (P${s.port})`,
        `model: reply ${p.reply} (${p.why}), connects to ${JSON.stringify(p.attempts)}`,
        `got:   reply ${r.reply}, connects to ${JSON.stringify(attempts)}`,
        context(),
      ].join("\n");
      assert.equal(r.auth, 0, `SOCKS5 authentication\n${what}`);
      assert.equal(r.reply, p.reply, `reply code\n${what}`);
      assert.deepEqual(attempts, p.attempts, `addresses the agent connected to\n${what}`);
      if (p.hit !== null) {
        want[p.hit]!++;
        assert.equal(r.bound?.host, p.hit < 3 ? "127.0.0.1" : "::1", `bound address\n${what}`);
        bound[p.hit]!.push(r.bound!.port);
      }
    }
  } finally {
    await agent.stop();
    h.agent = undefined;
  }
  // Every predicted connection reached its tripwire (wait for the accepts), and no other did.
  const hits = () => trips.map((t, i) => t.seen.length - seen0[i]!);
  await poll(() => hits().every((n, i) => n >= want[i]!), 2000);
  assert.deepEqual(
    hits(),
    want,
    `connections seen by the tripwires (127.0.0.1 P0..P2, ::1 P0..P2)\n${context()}`,
  );
  trips.forEach((t, i) => {
    const fresh = t.seen.slice(seen0[i]!);
    for (const b of bound[i]!) {
      assert.ok(fresh.includes(b), `tripwire ${i} saw the agent's connection from port ${b}`);
    }
  });
}

/** A port below the ephemeral range with no listener on 127.0.0.1 nor ::1. */
async function deadPort(net: Net): Promise<number> {
  const refused = async (host: string, port: number) => {
    try {
      (await net.dial({ host, port, timeoutMs: 2000 })).close();
      return false;
    } catch (e) {
      return e instanceof NetError && e.code === "ECONNREFUSED";
    }
  };
  for (let port = 1; port < 64; port++) {
    if (await refused("127.0.0.1", port) && await refused("::1", port)) return port;
  }
  throw new Error("no port below 64 refuses connections on 127.0.0.1 and ::1");
}

test(`${runtime}: authorization model: ${RUNS} random policies and targets through server and agent`, async () => {
  const real = await runtimeNet();
  const log = ringLogger(60);
  const server = new Server(real, configFor([], [0, 0, 0, 0]), log.log.with({ role: "server" }));
  await server.start();
  const trips: Tripwire[] = [];
  const v4: Tripwire[] = [];
  const v6: Tripwire[] = [];
  const h: Harness = {
    real,
    net: new TestNet(real, new Set()),
    server,
    trips,
    ports: [0, 0, 0, 0],
    log,
    tally: new Map(),
  };
  let runs = 0;
  const t0 = Date.now();
  try {
    for (let tries = 0; v6.length < 3; tries++) {
      assert.ok(tries < 30, "no free port on both 127.0.0.1 and ::1");
      const t = await tripwire(real, "127.0.0.1", 0);
      try {
        v6.push(await tripwire(real, "::1", t.port));
        v4.push(t);
      } catch {
        t.close(); // taken on ::1: another port
      }
    }
    trips.push(...v4, ...v6);
    h.ports = [trips[0]!.port, trips[1]!.port, trips[2]!.port, await deadPort(real)];
    h.net = new TestNet(real, new Set(h.ports));
    await fc.assert(
      fc.asyncProperty(caseArb, (c) => {
        runs++;
        return runCase(h, c);
      }),
      {
        numRuns: RUNS,
        examples: EXAMPLES.map((c) => [c]),
        includeErrorInReport: true,
        ...(SEED === undefined ? {} : { seed: Number(SEED) }),
      },
    );
  } finally {
    await h.agent?.stop();
    for (const t of [...v4, ...v6]) t.close();
    await server.stop();
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    const codes = [...h.tally].sort(([a], [b]) => a - b).map(([k, v]) => `0x0${k}: ${v}`);
    console.log(
      `authz model on ${runtime}: ${runs} runs in ${secs} s; predicted replies ${codes.join(", ")}`,
    );
  }
});
