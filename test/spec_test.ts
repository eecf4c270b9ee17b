/**
 * SPEC.md and spec/*.ksy agree: the registries of SPEC.md §9 equal the enums
 * of the .ksy files and the constants src/messages.ts exports (generated from
 * those enums into generated/enums.ts; link frame types, §9.6, straight from
 * there), the SOCKS5 versions of SPEC.md §8 equal spec/socks5_*.ksy and
 * src/socks5_encode.ts, every message type has a payload type, every .ksy is
 * documented and points at an existing SPEC.md section, text is declared as
 * bytes (src/ decodes the UTF-8), and every .ksy has a generated module.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import {
  AuthMethod,
  ErrorCode,
  MsgType,
  Reason,
  RuleKind,
  RuleProtocol,
  Status,
} from "../src/messages.ts";
import { LinkFrameType } from "../generated/enums.ts";
import { SOCKS_VERSION, SocksCmd, SocksMethod, USERPASS_VERSION } from "../src/socks5_encode.ts";

const SPEC_DIR = new URL("../spec/", import.meta.url);
const GENERATED_DIR = new URL("../generated/", import.meta.url);
const SPEC_MD = readFileSync(new URL("../SPEC.md", import.meta.url), "utf8");

// ---------------------------------------------------------------------------
// Helpers

type Ksy = Record<string, unknown> & {
  meta?: Record<string, unknown>;
  types?: Record<string, Ksy>;
  enums?: Record<string, Record<string, unknown>>;
  seq?: Record<string, unknown>[];
};

function loadKsy(id: string): Ksy {
  return parseYaml(readFileSync(new URL(`${id}.ksy`, SPEC_DIR), "utf8")) as Ksy;
}

const KSY_IDS = readdirSync(SPEC_DIR).filter((f) => f.endsWith(".ksy")).map((f) => f.slice(0, -4))
  .sort();

/** `name → value` of a .ksy enum, names as written in the .ksy. */
function ksyEnum(id: string, enumName: string): Map<string, number> {
  const values = loadKsy(id).enums?.[enumName];
  assert.ok(values, `spec/${id}.ksy has no enum ${enumName}`);
  const out = new Map<string, number>();
  for (const [key, v] of Object.entries(values)) {
    const name = typeof v === "string" ? v : (v as { id: string }).id;
    out.set(name, Number(key));
  }
  return out;
}

/** The body of SPEC.md section `### N.M ...` (up to the next heading). */
function section(num: string): string {
  const lines = SPEC_MD.split("\n");
  const start = lines.findIndex((l) =>
    new RegExp(`^#{2,3} ${num.replace(".", "\\.")}\\.? `).test(l)
  );
  assert.ok(start >= 0, `SPEC.md has no section ${num}`);
  const end = lines.findIndex((l, i) => i > start && /^#{2,3} /.test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

/** Rows of the first Markdown table in `text`, cells trimmed, header and rule skipped. */
function tableRows(text: string): string[][] {
  const rows = text.split("\n").filter((l) => l.startsWith("|"));
  return rows.slice(2).map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
}

/** `name → value` from a registry table of SPEC.md §9 (value column first, name second). */
function specRegistry(num: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of tableRows(section(num))) {
    const [value, name] = row;
    assert.ok(
      value !== undefined && name !== undefined,
      `SPEC.md §${num}: malformed row ${row.join(" | ")}`,
    );
    out.set(name, Number(value));
  }
  assert.ok(out.size > 0, `SPEC.md §${num} has no table rows`);
  return out;
}

function sorted(
  m: Map<string, number> | Record<string, number>,
  normalize = (s: string) => s,
): [string, number][] {
  const entries = m instanceof Map ? [...m] : Object.entries(m);
  return entries.map(([k, v]): [string, number] => [normalize(k), v]).sort((a, b) => a[1] - b[1]);
}

const upper = (s: string) => s.toUpperCase();
/** `no_acceptable` → `noAcceptable`, as scripts/gen.ts spells SOCKS5 keys. */
const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Section numbers of SPEC.md headings: "3", "5.2", ... */
const SECTIONS = new Set(
  [...SPEC_MD.matchAll(/^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? /gm)].map((m) => m[1] ?? ""),
);

function docRefs(node: Record<string, unknown>): string[] {
  const ref = node["doc-ref"];
  if (ref === undefined) return [];
  return Array.isArray(ref) ? ref.map(String) : [String(ref)];
}

/** The type a payload case names: `handshake::hello` → types.hello of spec/handshake.ksy. */
function resolveType(ref: string): Ksy {
  const [file, type] = ref.split("::");
  assert.ok(file !== undefined && type !== undefined, `unexpected type reference ${ref}`);
  const t = loadKsy(file).types?.[type];
  assert.ok(t, `spec/${file}.ksy has no type ${type}`);
  return t;
}

/** upper_snake → UpperCamel, as kaitai-struct-compiler names JavaScript classes. */
const className = (id: string) =>
  id.split("_").map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join("");

// ---------------------------------------------------------------------------
// Registries

test("spec: message types of SPEC.md §9.1 = msg_type of spec/frame.ksy = MsgType", () => {
  const spec = sorted(specRegistry("9.1"));
  assert.deepEqual(sorted(ksyEnum("frame", "msg_type"), upper), spec);
  assert.deepEqual(sorted(MsgType), spec);
  for (const [, value] of spec) {
    assert.ok(value < 0x80, `0x${value.toString(16)} is in the extension range`);
  }
});

test("spec: error codes of SPEC.md §9.2 = error_code of spec/registries.ksy = ErrorCode", () => {
  const spec = sorted(specRegistry("9.2"));
  assert.deepEqual(sorted(ksyEnum("registries", "error_code")), spec);
  assert.deepEqual(sorted(ErrorCode), spec);
});

test("spec: status codes §9.3, auth methods §9.4 and rule kinds §9.5 match the .ksy enums", () => {
  const status = sorted(specRegistry("9.3"));
  assert.deepEqual(sorted(ksyEnum("registries", "status")), status);
  assert.deepEqual(sorted(Status), status);
  const auth = sorted(specRegistry("9.4"));
  assert.deepEqual(sorted(ksyEnum("registries", "auth_method")), auth);
  assert.deepEqual(sorted(AuthMethod), auth);
  const kinds = sorted(specRegistry("9.5"));
  assert.deepEqual(sorted(ksyEnum("control", "rule_kind")), kinds);
  assert.deepEqual(sorted(RuleKind), kinds);
});

test("spec: rule protocols of SPEC.md §9.8 = rule_protocol of spec/control.ksy = RuleProtocol", () => {
  const spec = sorted(specRegistry("9.8"));
  assert.deepEqual(sorted(ksyEnum("control", "rule_protocol")), spec);
  assert.deepEqual(sorted(RuleProtocol), spec);
});

test("spec: refusal reasons of SPEC.md §9.7 = reason of spec/registries.ksy = Reason", () => {
  const spec = sorted(specRegistry("9.7"));
  assert.equal(spec.length, 15);
  assert.deepEqual(sorted(ksyEnum("registries", "reason")), spec);
  assert.deepEqual(sorted(Reason), spec);
});

test("spec: link frame types of SPEC.md §9.6 = link_frame_type of spec/link.ksy = LinkFrameType", () => {
  const spec = sorted(specRegistry("9.6"));
  assert.deepEqual(sorted(ksyEnum("link", "link_frame_type"), upper), spec);
  assert.deepEqual(sorted(LinkFrameType), spec);
  // The body column names the body type the .ksy switches to (DATA: raw bytes).
  const link = loadKsy("link");
  const body = link.seq?.find((a) => a["id"] === "body");
  const cases = (body?.["type"] as { cases?: Record<string, string> } | undefined)?.cases ?? {};
  const BODY: Record<string, string | undefined> = {
    "1..65535 bytes": undefined,
    "empty": "empty",
    "empty (the stream id field is the highest id granted)": "empty",
    "empty (the stream id field is the sender's number)": "empty",
    "empty (the stream id field is the PING's)": "empty",
    "u4 increment ≥ 1": "window",
  };
  for (const [, name, text, sec] of tableRows(section("9.6"))) {
    assert.ok(name !== undefined && text !== undefined && sec !== undefined);
    assert.ok(text in BODY, `SPEC.md §9.6 ${name}: unexpected body ${text}`);
    assert.equal(cases[`link_frame_type::${name.toLowerCase()}`], BODY[text], `${name}: body type`);
    assert.ok(docRefs(link).includes(`SPEC.md §${sec}`), `${name}: spec/link.ksy doc-ref`);
  }
});

test("spec: SOCKS5 versions of SPEC.md §8 = the version checks of spec/socks5_*.ksy = src/socks5_encode.ts", () => {
  const versions = ksyEnum("socks5_registries", "version");
  assert.equal(SOCKS_VERSION, versions.get("socks5"));
  assert.equal(USERPASS_VERSION, versions.get("userpass"));
  const rows = tableRows(section("8"));
  assert.ok(rows.length > 0, "SPEC.md §8 has no table");
  for (const [message, fields] of rows) {
    assert.ok(message !== undefined && fields !== undefined);
    const ver = /^ver u1 = ([0-9]+)/.exec(fields);
    assert.ok(ver, `SPEC.md §8 ${message}: no "ver u1 = N"`);
    const id = `socks5_${
      message.replace(/ \(.*\)$/, "").replace(/[ /]+/g, "_").replace("user_password", "userpass")
    }`;
    const valid = loadKsy(id).seq?.[0]?.["valid"];
    const m = /^socks5_registries::version::([a-z0-9_]+)$/.exec(String(valid));
    assert.ok(
      m,
      `spec/${id}.ksy: version is validated as ${String(valid)}, not against the version enum`,
    );
    assert.equal(versions.get(m[1] ?? ""), Number(ver[1]), `spec/${id}.ksy: version`);
  }
  assert.deepEqual(sorted(SocksMethod), sorted(ksyEnum("socks5_registries", "method"), camel));
  assert.deepEqual(sorted(SocksCmd), sorted(ksyEnum("socks5_registries", "command"), camel));
});

test("spec: every message type has a payload type in spec/frame.ksy documented at its SPEC.md section", () => {
  const frame = loadKsy("frame");
  const payload = frame.seq?.find((a) => a["id"] === "payload");
  const cases = (payload?.["type"] as { cases?: Record<string, string> } | undefined)?.cases;
  assert.ok(cases, "spec/frame.ksy: payload has no switch-on cases");
  const msgTypes = ksyEnum("frame", "msg_type");
  assert.deepEqual(
    Object.keys(cases).sort(),
    [...msgTypes.keys()].map((n) => `msg_type::${n}`).sort(),
    "one case per msg_type",
  );
  for (const row of tableRows(section("9.1"))) {
    const [, name, , , sec] = row;
    assert.ok(name !== undefined && sec !== undefined);
    const ref = cases[`msg_type::${name.toLowerCase()}`];
    assert.ok(ref, `no payload case for ${name}`);
    const type = resolveType(ref);
    const refs = docRefs(type);
    assert.ok(
      refs.includes(`SPEC.md §${sec}`),
      `${name}: ${ref} has doc-ref ${JSON.stringify(refs)}, expected to include "SPEC.md §${sec}"`,
    );
  }
});

// ---------------------------------------------------------------------------
// Style and documentation

const META_KEYS = [
  "id",
  "title",
  "application",
  "file-extension",
  "xref",
  "license",
  "ks-version",
  "imports",
  "encoding",
  "endian",
];
const TOP_KEYS = ["meta", "doc", "doc-ref", "seq", "instances", "types", "enums"];

function assertOrdered(keys: string[], order: string[], where: string): void {
  const known = keys.filter((k) => order.includes(k));
  assert.deepEqual(
    known,
    [...known].sort((a, b) => order.indexOf(a) - order.indexOf(b)),
    `${where}: key order`,
  );
}

test("spec: every .ksy has meta (id = file name, title, license, ks-version 0.11, endian be), doc and doc-ref", () => {
  assert.ok(KSY_IDS.length > 0, "spec/ has no .ksy files");
  for (const id of KSY_IDS) {
    const ksy = loadKsy(id);
    const where = `spec/${id}.ksy`;
    const meta = ksy.meta;
    assert.ok(meta, `${where}: no meta`);
    assert.equal(meta["id"], id, `${where}: meta.id`);
    assert.equal(typeof meta["title"], "string", `${where}: meta.title`);
    assert.ok(["MIT", "CC0-1.0"].includes(String(meta["license"])), `${where}: meta.license`);
    assert.equal(String(meta["ks-version"]), "0.11", `${where}: meta.ks-version`);
    assert.equal(meta["endian"], "be", `${where}: meta.endian`);
    assert.ok(typeof ksy["doc"] === "string" && ksy["doc"].trim() !== "", `${where}: doc`);
    assert.equal(docRefs(ksy).length, 1, `${where}: doc-ref`);
    for (const k of Object.keys(ksy)) {
      assert.ok(TOP_KEYS.includes(k), `${where}: unexpected top-level key ${k}`);
    }
    assertOrdered(Object.keys(ksy), TOP_KEYS, where);
    assertOrdered(Object.keys(meta), META_KEYS, `${where} meta`);
  }
});

test("spec: every doc-ref points at an existing SPEC.md section", () => {
  assert.ok(SECTIONS.has("3") && SECTIONS.has("5.2"), "SPEC.md section headings not found");
  const visit = (node: Ksy, where: string) => {
    for (const ref of docRefs(node)) {
      const m = /^SPEC\.md §([0-9]+(?:\.[0-9]+)?)$/.exec(ref);
      assert.ok(
        m,
        `${where}: doc-ref ${JSON.stringify(ref)} is not "SPEC.md §N" or "SPEC.md §N.M"`,
      );
      assert.ok(
        SECTIONS.has(m[1] ?? ""),
        `${where}: doc-ref ${ref}: SPEC.md has no section ${m[1]}`,
      );
    }
    for (const attr of node.seq ?? []) {
      for (const ref of docRefs(attr)) {
        assert.match(ref, /^SPEC\.md §[0-9]/, `${where}.${String(attr["id"])}`);
      }
    }
    for (const [name, sub] of Object.entries(node.types ?? {})) {
      assertOrdered(Object.keys(sub), TOP_KEYS, `${where}::${name}`);
      visit(sub, `${where}::${name}`);
    }
  };
  for (const id of KSY_IDS) visit(loadKsy(id), `spec/${id}.ksy`);
});

test("spec: length fields are len_*, count fields num_*, and version/magic fields are validated", () => {
  const visit = (node: Ksy, where: string) => {
    for (const attr of node.seq ?? []) {
      const at = `${where}.${String(attr["id"])}`;
      const size = attr["size"];
      if (typeof size === "string") {
        assert.match(size, /(^|\.)len_[a-z0-9_]+$/, `${at}: size ${size}`);
      }
      const count = attr["repeat-expr"];
      if (typeof count === "string") {
        assert.match(count, /(^|\.)num_[a-z0-9_]+$/, `${at}: repeat-expr ${count}`);
      }
      if (/^(magic|frame_version)$/.test(String(attr["id"]))) {
        assert.ok("valid" in attr || "contents" in attr, `${at}: not validated`);
      }
    }
    for (const [name, sub] of Object.entries(node.types ?? {})) visit(sub, `${where}::${name}`);
  };
  for (const id of KSY_IDS) visit(loadKsy(id), `spec/${id}.ksy`);
  // SOCKS5 messages: the version byte is checked by the parser itself (a
  // UDP datagram has none: RFC 1928 §7).
  const socks5 = (i: string) => /^socks5_/.test(i) && !/registries|udp_datagram/.test(i);
  for (const id of KSY_IDS.filter(socks5)) {
    const version = loadKsy(id).seq?.[0];
    assert.equal(version?.["id"], "version", `spec/${id}.ksy: first field`);
    assert.ok(version && "valid" in version, `spec/${id}.ksy: version is not validated`);
  }
});

test("spec: text is declared as bytes (no str, no meta.encoding) and documented as UTF-8 or octets", () => {
  const TEXT = /^(name|software|message|pattern|client|agent|uname|passwd)$/;
  const visit = (node: Ksy, where: string) => {
    for (const attr of node.seq ?? []) {
      const at = `${where}.${String(attr["id"])}`;
      assert.ok(attr["type"] !== "str" && attr["type"] !== "strz", `${at}: type str`);
      if (TEXT.test(String(attr["id"]))) {
        assert.match(String(attr["doc"] ?? ""), /UTF-8|octets/, `${at}: doc does not say UTF-8`);
      }
    }
    for (const [name, sub] of Object.entries(node.types ?? {})) visit(sub, `${where}::${name}`);
  };
  for (const id of KSY_IDS) {
    const ksy = loadKsy(id);
    assert.equal(ksy.meta?.["encoding"], undefined, `spec/${id}.ksy: meta.encoding`);
    visit(ksy, `spec/${id}.ksy`);
  }
});

test("spec: every SOCKS5 message of SPEC.md §8 has its own spec/socks5_*.ksy", () => {
  const want = [
    "greeting",
    "method_selection",
    "userpass_request",
    "userpass_reply",
    "request",
    "reply",
  ];
  for (const m of want) {
    assert.ok(KSY_IDS.includes(`socks5_${m}`), `spec/socks5_${m}.ksy is missing`);
  }
  assert.equal(
    tableRows(section("8")).length,
    want.length,
    "SPEC.md §8 lists another number of messages",
  );
});

test("spec: every spec/*.ksy has a generated module and declarations", () => {
  for (const id of KSY_IDS) {
    for (const ext of [".js", ".d.ts"]) {
      const file = `${className(id)}${ext}`;
      assert.ok(
        existsSync(new URL(file, GENERATED_DIR)),
        `generated/${file} is missing for spec/${id}.ksy`,
      );
    }
  }
});
