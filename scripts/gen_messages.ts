/**
 * The part of scripts/gen.ts that kaitai-struct-compiler cannot do (it has
 * no JavaScript serializer): from the message payload types of spec/*.ksy
 * (the cases of `payload` in frame.ksy) it writes
 *
 * - generated/messages.ts: one interface per payload type (fields
 *   camelCased from the .ksy ids; `len_*` and `num_*` fields are implied by
 *   the data they count), the `Message` union, the table of message types
 *   (`MESSAGE_NAMES`), every numeric `valid:` constraint (`Valid`) and the
 *   fixed layout of the frame and link headers (`Layout`);
 * - generated/codec.ts: one encoder per message (`encodePayload`, one
 *   buffer, lengths written after the data they count, postgres.js style)
 *   and one decoder per message that maps what the generated Kaitai parser
 *   read to the interface (`decodeFields`).
 *
 * Field keys the compiler ignores (`-` prefix) say what the bytes mean:
 * `-text: utf8` (strict UTF-8 text), `-text: name` (an agent or client
 * name, `A-Z a-z 0-9 . _ -`), `-text: ipv4` / `ipv6` (an address as text);
 * `-flat: true` on a user-type field merges its fields into the parent's.
 * A field of type `addr` is a {@link Target}. Anything else the generator
 * does not know makes it fail, so output never silently drifts.
 *
 * @module
 */
import type { KsyAttr, KsyType, Spec } from "./gen.ts";
import { lowerCamel, upperCamel } from "./gen.ts";

/** User types with a hand-written TypeScript form: TS type, writer and reader (src/). */
const MAPPED: Record<string, { ts: string; write: string; read: string }> = {
  addr: { ts: "Target", write: "writeAddr", read: "addrTarget" },
};

/** Specs whose fixed header layouts `Layout` exports. */
const LAYOUT_SPECS = ["frame", "link"];

/** Interface names that would shadow a global of JavaScript get this suffix. */
const GLOBALS = new Set(["Error", "Object", "Function", "Array", "Map", "Set", "Symbol", "Date"]);

const INT_SIZE: Record<string, number> = { u1: 1, u2: 2, u4: 4 };
const WRITE_INT: Record<number, string> = { 1: "u8", 2: "u16", 4: "u32" };

type Text = "utf8" | "name" | "ipv4" | "ipv6";

/** A type of a spec, as found by a reference. */
interface Ref {
  spec: Spec;
  /** type id, or the spec id for the spec's root type */
  id: string;
  ksy: KsyType;
}

/** One field of a type, classified. */
type Field =
  | { kind: "const"; attr: KsyAttr }
  | { kind: "length"; attr: KsyAttr; size: number }
  | { kind: "count"; attr: KsyAttr; size: number }
  | { kind: "discriminant"; attr: KsyAttr; size: number; values: Map<string, number> }
  | { kind: "int"; attr: KsyAttr; size: number }
  | { kind: "bytes"; attr: KsyAttr; fixed: number | null; len: Field | null; text: Text | null }
  | { kind: "mapped"; attr: KsyAttr; map: { ts: string; write: string; read: string } }
  | { kind: "flat"; attr: KsyAttr; ref: Ref }
  | { kind: "nested"; attr: KsyAttr; ref: Ref }
  | { kind: "list"; attr: KsyAttr; ref: Ref; count: Field }
  | { kind: "variant"; attr: KsyAttr; on: string; cases: [string, Ref][] };

interface Valid {
  min?: number | string;
  max?: number | string;
  anyOf?: number[];
  eq?: number;
}

export class MessageGen {
  readonly byId: Map<string, Spec>;
  readonly messages: { name: string; code: number; ref: Ref }[] = [];
  /** Types that get an interface (payloads and what they contain), by interface name. */
  readonly ifaces = new Map<string, Ref>();

  constructor(readonly specs: readonly Spec[]) {
    this.byId = new Map(specs.map((s) => [s.id, s]));
    const frame = this.spec("frame");
    const payload = frame.ksy.seq?.find((a) => a.id === "payload");
    const type = payload?.type;
    if (typeof type !== "object") this.fail("frame.ksy", "payload is not a switch");
    const codes = frame.ksy.enums?.["msg_type"] ?? this.fail("frame.ksy", "no enum msg_type");
    for (const [k, v] of Object.entries(codes)) {
      const id = typeof v === "string" ? v : v.id;
      const target = type.cases[`msg_type::${id}`];
      if (target === undefined) this.fail("frame.ksy", `msg_type ${id} has no payload type`);
      const ref = this.resolve(target, frame, "frame.ksy payload");
      this.messages.push({ name: id.toUpperCase(), code: Number(k), ref });
      this.collect(ref);
    }
    this.messages.sort((a, b) => a.code - b.code);
  }

  fail(where: string, what: string): never {
    throw new Error(`Cannot generate messages from spec/${where}: ${what}`);
  }

  spec(id: string): Spec {
    return this.byId.get(id) ?? this.fail(`${id}.ksy`, "no such spec");
  }

  /** `handshake::hello`, `rule` (in `from`) or `addr` (a spec's root). */
  resolve(name: string, from: Spec, where: string): Ref {
    const parts = name.split("::");
    if (parts.length === 2) {
      const spec = this.spec(parts[0]!);
      const ksy = spec.ksy.types?.[parts[1]!] ?? this.fail(where, `unknown type ${name}`);
      return { spec, id: parts[1]!, ksy };
    }
    const local = from.ksy.types?.[name];
    if (local !== undefined) return { spec: from, id: name, ksy: local };
    const spec = this.byId.get(name) ?? this.fail(where, `unknown type ${name}`);
    return { spec, id: name, ksy: spec.ksy };
  }

  ifaceName(ref: Ref): string {
    const n = upperCamel(ref.id);
    return GLOBALS.has(n) ? `${n}Message` : n;
  }

  /** The Kaitai class of a type: `Handshake.Hello`, or `Addr` for a root. */
  kaitaiClass(ref: Ref): string {
    const root = upperCamel(ref.spec.id);
    return ref.id === ref.spec.id ? root : `${root}.${upperCamel(ref.id)}`;
  }

  collect(ref: Ref): void {
    const name = this.ifaceName(ref);
    const seen = this.ifaces.get(name);
    if (seen !== undefined) {
      if (seen.ksy !== ref.ksy) this.fail(ref.spec.file, `two types are named ${name}`);
      return;
    }
    this.ifaces.set(name, ref);
    for (const f of this.fields(ref)) {
      if (f.kind === "flat" || f.kind === "list" || f.kind === "nested") this.collect(f.ref);
      if (f.kind === "variant") { for (const [, r] of f.cases) this.collect(r); }
    }
  }

  /** The fields of a type, classified; fails on what the generator does not support. */
  fields(ref: Ref): Field[] {
    const seq = ref.ksy.seq ?? [];
    const where = `${ref.spec.file} ${ref.id}`;
    const out: Field[] = [];
    const usedAs = (id: string, key: "size" | "repeat-expr") => seq.find((a) => a[key] === id);
    const switchedOn = (id: string) =>
      seq.find((a) => typeof a.type === "object" && a.type["switch-on"] === id);
    for (const attr of seq) {
      const at = `${where}.${attr.id}`;
      const type = attr.type;
      const valid = attr["valid"];
      if (attr.contents !== undefined) {
        out.push({ kind: "const", attr });
      } else if (typeof type === "string" && type in INT_SIZE) {
        const size = INT_SIZE[type]!;
        if (typeof valid === "number") out.push({ kind: "const", attr });
        else if (usedAs(attr.id, "size")) out.push({ kind: "length", attr, size });
        else if (usedAs(attr.id, "repeat-expr")) out.push({ kind: "count", attr, size });
        else if (switchedOn(attr.id)) {
          const e = attr.enum ?? this.fail(at, "switch on a field without an enum");
          out.push({ kind: "discriminant", attr, size, values: this.enumValues(ref, e, at) });
        } else out.push({ kind: "int", attr, size });
      } else if (type === undefined) {
        const size = attr.size;
        const text = (attr["-text"] as Text | undefined) ?? null;
        if (text !== null && !["utf8", "name", "ipv4", "ipv6"].includes(text)) {
          this.fail(at, `unknown -text ${text}`);
        }
        if (typeof size === "number") {
          out.push({ kind: "bytes", attr, fixed: size, len: null, text });
        } else if (typeof size === "string") {
          const len = out.find((f) => f.attr.id === size) ?? this.fail(at, `size ${size}`);
          out.push({ kind: "bytes", attr, fixed: null, len, text });
        } else this.fail(at, "bytes without a size");
      } else if (typeof type === "string") {
        if (type in MAPPED) {
          out.push({ kind: "mapped", attr, map: MAPPED[type]! });
          continue;
        }
        const r = this.resolve(type, ref.spec, at);
        if (attr.repeat === "expr") {
          const n = attr["repeat-expr"];
          const count = out.find((f) => f.attr.id === n) ?? this.fail(at, `repeat-expr ${n}`);
          out.push({ kind: "list", attr, ref: r, count });
        } else if (attr.repeat !== undefined) {
          this.fail(at, `repeat: ${attr.repeat} is not supported`);
        } else if (attr["-flat"] === true) out.push({ kind: "flat", attr, ref: r });
        else if (attr.size !== undefined) this.fail(at, "a sized user type is not supported");
        else out.push({ kind: "nested", attr, ref: r });
      } else if (typeof type === "object") {
        const on = type["switch-on"];
        const cases = Object.entries(type.cases).map(([k, v]): [string, Ref] => [
          k.split("::").pop()!,
          this.resolve(v, ref.spec, at),
        ]);
        out.push({ kind: "variant", attr, on, cases });
      } else this.fail(at, `unsupported type ${JSON.stringify(type)}`);
    }
    return out;
  }

  enumValues(ref: Ref, name: string, at: string): Map<string, number> {
    const parts = name.split("::");
    const spec = parts.length === 2 ? this.spec(parts[0]!) : ref.spec;
    const e = spec.ksy.enums?.[parts[parts.length - 1]!] ?? this.fail(at, `no enum ${name}`);
    return new Map(
      Object.entries(e).map(([k, v]) => [typeof v === "string" ? v : v.id, Number(k)]),
    );
  }
}

/** The numeric and field-reference constraints of `valid:` (`expr`/`in-enum` are the parser's). */
export function validOf(attr: KsyAttr): Valid {
  const v = attr["valid"];
  if (typeof v === "number") return { eq: v };
  if (v === null || typeof v !== "object") return {};
  const o = v as Record<string, unknown>;
  const out: Valid = {};
  for (const k of ["min", "max"] as const) {
    const x = o[k];
    if (typeof x === "number" || typeof x === "string") out[k] = x;
  }
  if (Array.isArray(o["any-of"])) out.anyOf = o["any-of"] as number[];
  return out;
}

// ---------------------------------------------------------------------------
// generated/messages.ts

const HEADER = "// generated by scripts/gen.ts from spec/*.ksy — do not edit";

function docLines(indent: string, doc: unknown): string[] {
  if (typeof doc !== "string" || doc.trim() === "") return [];
  const lines = doc.trimEnd().split("\n").map((l) => l.replaceAll("*/", "*\\/"));
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [
    `${indent}/**`,
    ...lines.map((l) => `${indent} *${l === "" ? "" : ` ${l}`}`),
    `${indent} */`,
  ];
}

function fieldTs(g: MessageGen, f: Field): string | null {
  switch (f.kind) {
    case "int":
      return "number";
    case "bytes":
      return f.text === null ? "Uint8Array" : "string";
    case "mapped":
      return f.map.ts;
    case "list":
      return `${g.ifaceName(f.ref)}[]`;
    case "nested":
      return g.ifaceName(f.ref);
    default:
      return null;
  }
}

function ifaceTs(g: MessageGen, name: string, ref: Ref): string[] {
  const fields = g.fields(ref);
  const flats = fields.filter((f) => f.kind === "flat").map((f) => g.ifaceName(f.ref));
  const body: string[] = [];
  for (const f of fields) {
    const ts = fieldTs(g, f);
    if (ts === null) continue;
    body.push(...docLines("  ", f.attr.doc), `  ${lowerCamel(f.attr.id)}: ${ts};`);
  }
  const doc = docLines("", `${ref.ksy.doc ?? ""}\n@see spec/${ref.spec.file} \`${ref.id}\``.trim());
  const variant = fields.find((f) => f.kind === "variant");
  if (variant === undefined) {
    const ext = flats.length > 0 ? ` extends ${flats.join(", ")}` : "";
    return [...doc, `export interface ${name}${ext} {`, ...body, "}"];
  }
  const on = lowerCamel(variant.on);
  return [
    ...doc,
    `export type ${name} =`,
    `  & {`,
    ...body.map((l) => `  ${l}`),
    `  }`,
    ...flats.map((f) => `  & ${f}`),
    `  & (`,
    ...variant.cases.map(([k, r]) => `    | ({ ${on}: "${k}" } & ${g.ifaceName(r)})`),
    `  );`,
  ];
}

/**
 * `export const <name> = { "spec::type": { field: row } }` over every type of
 * spec/ (a spec's root: its id), with the fields for which `row` gives text.
 */
function perField(
  name: string,
  specs: readonly Spec[],
  row: (attr: KsyAttr) => string | null,
): string[] {
  const out = [`export const ${name} = {`];
  const visit = (key: string, ksy: KsyType) => {
    const rows: string[] = [];
    for (const attr of ksy.seq ?? []) {
      const r = row(attr);
      if (r !== null) rows.push(`    ${lowerCamel(attr.id)}: ${r},`);
    }
    if (rows.length > 0) out.push(`  "${key}": {`, ...rows, "  },");
    for (const [id, sub] of Object.entries(ksy.types ?? {})) {
      visit(`${key.split("::")[0]}::${id}`, sub);
    }
  };
  for (const s of specs) visit(s.id, s.ksy);
  out.push("} as const;");
  return out;
}

/** Every numeric `valid:` of every type of spec/. */
function validTable(specs: readonly Spec[]): string[] {
  return perField("Valid", specs, (attr) => {
    const parts = Object.entries(validOf(attr))
      // enum members in any-of (`kind::client`) are checked by Kaitai, not listed here
      .filter(([, x]) =>
        typeof x === "number" || (Array.isArray(x) && x.every((n) => typeof n === "number"))
      )
      .map(([k, x]) => `${k}: ${Array.isArray(x) ? `[${x.join(", ")}]` : x}`);
    return parts.length > 0 ? `{ ${parts.join(", ")} }` : null;
  });
}

/** The size of every fixed-size byte field of spec/. */
function sizeTable(specs: readonly Spec[]): string[] {
  return perField(
    "Sizes",
    specs,
    (a) => a.type === undefined && typeof a.size === "number" ? String(a.size) : null,
  );
}

/** The smallest and largest size a type can have, in bytes. */
function bounds(g: MessageGen, ref: Ref): [number, number] {
  let lo = 0;
  let hi = 0;
  const seq = ref.ksy.seq ?? [];
  for (const attr of seq) {
    const [l, h] = attrBounds(g, ref, attr, seq);
    lo += l;
    hi += h;
  }
  return [lo, hi];
}

/** The range of values of integer field `id` of `seq`: its `valid:` or its type's. */
function intRange(seq: readonly KsyAttr[], id: string): [number, number] {
  const attr = seq.find((a) => a.id === id);
  const size = INT_SIZE[String(attr?.type)];
  if (attr === undefined || size === undefined) return [0, Infinity];
  const v = validOf(attr);
  if (v.anyOf !== undefined) return [Math.min(...v.anyOf), Math.max(...v.anyOf)];
  if (v.eq !== undefined) return [v.eq, v.eq];
  return [typeof v.min === "number" ? v.min : 0, typeof v.max === "number" ? v.max : uintMax(size)];
}

function attrBounds(
  g: MessageGen,
  ref: Ref,
  attr: KsyAttr,
  seq: readonly KsyAttr[],
): [number, number] {
  let one: [number, number];
  const type = attr.type;
  if (attr.contents !== undefined) {
    const c = attr.contents;
    const n = typeof c === "string" ? c.length : Array.isArray(c) ? c.length : 0;
    one = [n, n];
  } else if (typeof attr.size === "number") one = [attr.size, attr.size];
  else if (typeof attr.size === "string") one = intRange(seq, attr.size);
  else if (attr["size-eos"] === true) one = [0, Infinity];
  else if (typeof type === "string" && type in INT_SIZE) one = [INT_SIZE[type]!, INT_SIZE[type]!];
  else if (typeof type === "string") one = bounds(g, g.resolve(type, ref.spec, attr.id));
  else if (typeof type === "object") {
    const all = Object.values(type.cases).map((v) => bounds(g, g.resolve(v, ref.spec, attr.id)));
    one = [Math.min(...all.map((b) => b[0])), Math.max(...all.map((b) => b[1]))];
  } else one = [0, Infinity];
  if (attr.repeat === undefined) return one;
  const n = attr.repeat === "expr" ? intRange(seq, String(attr["repeat-expr"])) : [0, Infinity];
  return [one[0] * n[0]!, one[1] * n[1]!];
}

function attrSize(g: MessageGen, ref: Ref, attr: KsyAttr): number | null {
  if (typeof attr.size === "string" || attr.repeat !== undefined) return null;
  const [lo, hi] = attrBounds(g, ref, attr, ref.ksy.seq ?? []);
  return lo === hi ? lo : null;
}

/**
 * Offsets of the fixed-size prefix of the types of {@link LAYOUT_SPECS}, and
 * the smallest and largest size of each case of a switch (`<field>Sizes`,
 * by enum value: for a frame, what a payload of each message type may be).
 */
function layoutTable(g: MessageGen): string[] {
  const out = ["export const Layout = {"];
  for (const id of LAYOUT_SPECS) {
    const spec = g.spec(id);
    const refs: Ref[] = [{ spec, id, ksy: spec.ksy }];
    for (const [t, ksy] of Object.entries(spec.ksy.types ?? {})) refs.push({ spec, id: t, ksy });
    for (const ref of refs) {
      const rows: string[] = [];
      let at = 0;
      for (const attr of ref.ksy.seq ?? []) {
        const type = attr.type;
        if (typeof type === "object") {
          const sizes = Object.entries(type.cases).map(([k, v]) => {
            const e = k.split("::");
            const value = g.enumValues(ref, e.slice(0, -1).join("::"), k).get(e[e.length - 1]!);
            const [lo, hi] = bounds(g, g.resolve(v, spec, k));
            return `${value}: [${lo}, ${hi}]`;
          });
          rows.push(`    ${lowerCamel(attr.id)}Sizes: { ${sizes.join(", ")} },`);
          break;
        }
        const s = attrSize(g, ref, attr);
        if (s === null) break;
        rows.push(`    ${lowerCamel(attr.id)}: { offset: ${at}, size: ${s} },`);
        at += s;
      }
      const key = ref.id === id ? id : `${id}::${ref.id}`;
      out.push(`  "${key}": {`, `    size: ${at},`, ...rows, "  },");
    }
  }
  out.push("} as const;");
  return out;
}

/** generated/messages.ts */
export function toMessagesTs(g: MessageGen): string {
  const lines = [
    HEADER,
    "/**",
    " * The burrow messages as spec/*.ksy defines them (SPEC.md §5): one interface",
    " * per payload type, the `Message` union selected by `msg_type` (frame.ksy),",
    " * the message-type table, every numeric `valid:` constraint and the fixed",
    " * header layouts. src/messages.ts re-exports them; generated/codec.ts",
    " * encodes and decodes them.",
    " *",
    " * @module",
    " */",
    `import type { Target } from "../src/messages.ts";`,
    "",
  ];
  for (const [name, ref] of g.ifaces) lines.push(...ifaceTs(g, name, ref), "");
  lines.push(
    "/** Every message, discriminated by `type` (SPEC.md §9.1). */",
    "export type Message =",
  );
  for (const m of g.messages) lines.push(`  | ({ type: "${m.name}" } & ${g.ifaceName(m.ref)})`);
  lines[lines.length - 1] += ";";
  lines.push(
    "",
    "/** Message type code → name (SPEC.md §9.1), every type that has a payload type. */",
  );
  lines.push(`export const MESSAGE_NAMES: Readonly<Record<number, Message["type"]>> = {`);
  for (const m of g.messages) {
    lines.push(`  0x${m.code.toString(16).padStart(2, "0")}: "${m.name}",`);
  }
  lines.push("};", "");
  lines.push(
    "/** Every numeric `valid:` of spec/*.ksy (min, max, anyOf, eq), by `spec::type`, fields camelCased. */",
  );
  lines.push(...validTable(g.specs), "");
  lines.push(
    "/** The size of every fixed-size byte field of spec/*.ksy, by `spec::type`, fields camelCased. */",
  );
  lines.push(...sizeTable(g.specs), "");
  lines.push("/** Byte offsets and sizes of the fixed header fields of frame.ksy and link.ksy. */");
  lines.push(...layoutTable(g), "");
  return lines.join("\n");
}

// ---------------------------------------------------------------------------
// generated/codec.ts

/** Field names in encoder errors: literal (`"AUTH.proof"`) or built from `field`. */
type Path = (name: string) => string;
const literalPath = (prefix: string): Path => (n) => JSON.stringify(`${prefix}.${n}`);
const dynamicPath: Path = (n) => `\`\${field}.${n}\``;

const uintMax = (size: number) => 2 ** (8 * size) - 1;

/** The text of a path expression, for inside a template literal. */
const inTemplate = (p: string) => (p.startsWith("`") ? p.slice(1, -1) : JSON.parse(p) as string);

/** `strict ? a : b`, or `a` when they are equal. */
const strictly = (a: number, b: number) => (a === b ? `${a}` : `strict ? ${a} : ${b}`);

class CodecWriter {
  readonly lines: string[] = [];
  /** Module-level code tables of discriminant enums, by name. */
  readonly tables = new Map<string, Map<string, number>>();
  readonly elements = new Set<string>();
  readonly usedSpecs = new Set<string>();
  readonly usedTypes = new Set<string>();
  #n = 0;

  constructor(readonly g: MessageGen) {}

  tmp(base: string): string {
    return `${base}${this.#n++}`;
  }

  /** Checks of `valid:` on an integer `v` (strict mode only). */
  intChecks(ind: string, attr: KsyAttr, v: string, obj: string, path: Path): string[] {
    const valid = validOf(attr);
    const out: string[] = [];
    const f = inTemplate(path(lowerCamel(attr.id)));
    for (const [k, op] of [["min", "<"], ["max", ">"]] as const) {
      const lim = valid[k];
      if (lim === undefined) continue;
      const rel = k === "min" ? ">=" : "<=";
      if (typeof lim === "number") {
        out.push(
          `${ind}if (strict && ${v} ${op} ${lim}) throw new RangeError(\`${f}: must be ${rel} ${lim}, got \${${v}}\`);`,
        );
      } else {
        const other = `${obj}.${lowerCamel(lim)}`;
        out.push(
          `${ind}if (strict && ${v} ${op} ${other}) {`,
          `${ind}  throw new RangeError(\`${f}: must be ${rel} ${
            lowerCamel(lim)
          } (\${${other}}), got \${${v}}\`);`,
          `${ind}}`,
        );
      }
    }
    if (valid.anyOf !== undefined) {
      const cond = valid.anyOf.map((x) => `${v} !== ${x}`).join(" && ");
      out.push(
        `${ind}if (strict && ${cond}) {`,
        `${ind}  throw new RangeError(\`${f}: must be ${valid.anyOf.join(" or ")}${
          attr.id.startsWith("len_") ? " bytes" : ""
        }, got \${${v}}\`);`,
        `${ind}}`,
      );
    }
    return out;
  }

  /** Writes of the fields of `ref`, read from `obj`. */
  writes(ref: Ref, obj: string, path: Path, ind: string): string[] {
    const fields = this.g.fields(ref);
    const out: string[] = [];
    const lenAt = new Map<Field, string>();
    for (const f of fields) {
      const name = lowerCamel(f.attr.id);
      const p = path(name);
      switch (f.kind) {
        case "const": {
          const v = f.attr["valid"];
          if (typeof v !== "number") {
            this.g.fail(ref.spec.file, `${f.attr.id}: contents in a message`);
          }
          const size = INT_SIZE[String(f.attr.type)]!;
          out.push(`${ind}w.${WRITE_INT[size]}(${v}, ${p});`);
          break;
        }
        case "length": {
          const at = this.tmp("at");
          lenAt.set(f, at);
          out.push(`${ind}const ${at} = w.reserve(${f.size});`);
          break;
        }
        case "count": {
          const list = fields.find((l) => l.kind === "list" && l.count === f)!;
          const arr = `${obj}.${lowerCamel(list.attr.id)}`;
          const lp = path(lowerCamel(list.attr.id));
          const lt = inTemplate(lp);
          const max = validOf(f.attr).max;
          out.push(
            `${ind}if (!Array.isArray(${arr})) throw new TypeError(\`${lt}: must be an array\`);`,
          );
          if (typeof max === "number") {
            out.push(
              `${ind}if (strict && ${arr}.length > ${max}) {`,
              `${ind}  throw new RangeError(\`${lt}: must have at most ${max} items, got \${${arr}.length}\`);`,
              `${ind}}`,
            );
          }
          out.push(`${ind}w.${WRITE_INT[f.size]}(${arr}.length, ${lp});`);
          break;
        }
        case "discriminant": {
          const e = String(f.attr.enum);
          const table = upperSnakeOf(e.split("::").pop()!);
          this.tables.set(table, f.values);
          out.push(`${ind}w.${WRITE_INT[f.size]}(code(${table}, ${obj}.${name}, ${p}), ${p});`);
          break;
        }
        case "int":
          out.push(`${ind}w.${WRITE_INT[f.size]}(${obj}.${name}, ${p});`);
          out.push(...this.intChecks(ind, f.attr, `${obj}.${name}`, obj, path));
          break;
        case "bytes":
          out.push(...this.bytesWrite(f, `${obj}.${name}`, p, lenAt, ind));
          break;
        case "mapped":
          out.push(`${ind}${f.map.write}(w, ${obj}.${name}, ${p}, strict);`);
          break;
        case "flat":
          out.push(...this.writes(f.ref, obj, path, ind));
          break;
        case "nested": {
          const inner = inTemplate(p);
          const np: Path = p.startsWith("`") ? (n) => `\`${inner}.${n}\`` : literalPath(inner);
          out.push(
            `${ind}if (${obj}.${name} === null || typeof ${obj}.${name} !== "object") {`,
            `${ind}  throw new TypeError(\`${inner}: must be an object\`);`,
            `${ind}}`,
            ...this.writes(f.ref, `${obj}.${name}`, np, ind),
          );
          break;
        }
        case "list": {
          const fn = this.element(f.ref);
          const i = this.tmp("i");
          const arr = `${obj}.${name}`;
          const ip = `\`${inTemplate(p)}[\${${i}}]\``;
          out.push(
            `${ind}for (let ${i} = 0; ${i} < ${arr}.length; ${i}++) ${fn}(w, ${arr}[${i}]!, strict, ${ip});`,
          );
          break;
        }
        case "variant": {
          const on = lowerCamel(f.on);
          out.push(`${ind}switch (${obj}.${on}) {`);
          for (const [k, r] of f.cases) {
            out.push(
              `${ind}  case "${k}": {`,
              ...this.writes(r, obj, path, `${ind}    `),
              `${ind}    break;`,
              `${ind}  }`,
            );
          }
          out.push(`${ind}}`);
          break;
        }
      }
    }
    return out;
  }

  bytesWrite(
    f: Extract<Field, { kind: "bytes" }>,
    v: string,
    p: string,
    lenAt: Map<Field, string>,
    ind: string,
  ): string[] {
    if (f.len === null) {
      if (f.text === "ipv4" || f.text === "ipv6") {
        const [parse, fam] = f.text === "ipv4" ? ["parseIPv4", "IPv4"] : ["parseIPv6", "IPv6"];
        return [`${ind}w.bytes(ipBytes(${parse}, ${v}, "${fam}", ${p}), ${p});`];
      }
      if (f.text !== null) this.g.fail(f.attr.id, `-text ${f.text} needs a length field`);
      return [`${ind}w.bytes(${v}, ${p}, ${f.fixed});`];
    }
    if (f.len.kind !== "length") this.g.fail(f.attr.id, "size is not a length field");
    const size = f.len.size;
    const at = lenAt.get(f.len)!;
    const valid = validOf(f.len.attr);
    const min = typeof valid.min === "number" ? valid.min : 0;
    const max = typeof valid.max === "number" ? valid.max : uintMax(size);
    const range = `${strictly(min, 0)}, ${strictly(max, uintMax(size))}`;
    const n = this.tmp("n");
    const out: string[] = [];
    if (f.text === "name") out.push(`${ind}if (strict) checkName(${v}, ${min}, ${max}, ${p});`);
    if (f.text === "utf8" || f.text === "name") {
      out.push(`${ind}const ${n} = w.utf8(${v}, ${range}, ${p});`);
    } else if (f.text === null) out.push(`${ind}const ${n} = w.sized(${v}, ${range}, ${p});`);
    else this.g.fail(f.attr.id, `-text ${f.text} with a length field`);
    if (valid.anyOf !== undefined) {
      out.push(
        ...this.intChecks(ind, { ...f.len.attr, valid: { "any-of": valid.anyOf } }, n, "", () => p),
      );
    }
    out.push(`${ind}w.fill(${at}, ${size}, ${n});`);
    return out;
  }

  /** The name of the writer of one element of a list of `ref` (emitted once). */
  element(ref: Ref): string {
    const name = `write${this.g.ifaceName(ref)}`;
    if (this.elements.has(name)) return name;
    this.elements.add(name);
    const t = this.g.ifaceName(ref);
    this.usedTypes.add(t);
    const body = this.writes(ref, "obj", dynamicPath, "  ");
    this.lines.push(
      `function ${name}(w: Writer, obj: ${t}, strict: boolean, field: string): void {`,
      '  if (obj === null || typeof obj !== "object") throw new TypeError(`${field}: must be an object`);',
      ...body,
      "}",
      "",
    );
    return name;
  }

  /** Object-literal entries of the fields of `ref` read from Kaitai object `p`. */
  entries(ref: Ref, p: string): string[] {
    const out: string[] = [];
    for (const f of this.g.fields(ref)) {
      const name = lowerCamel(f.attr.id);
      const v = `${p}.${name}`;
      switch (f.kind) {
        case "int":
          out.push(`${name}: ${v}`);
          break;
        case "bytes": {
          const valid = f.len === null ? {} : validOf(f.len.attr);
          const read = {
            utf8: `utf8(${v}, "${name}")`,
            name: `nameText(${v}, "${name}", ${typeof valid.min === "number" ? valid.min : 0}, ${
              typeof valid.max === "number" ? valid.max : "Infinity"
            })`,
            ipv4: `formatIPv4(${v})`,
            ipv6: `formatIPv6(${v})`,
          };
          out.push(`${name}: ${f.text === null ? `${v}.slice()` : read[f.text]}`);
          break;
        }
        case "mapped":
          out.push(`${name}: ${f.map.read}(${v})`);
          break;
        case "flat":
          out.push(...this.entries(f.ref, v));
          break;
        case "nested":
          if (this.g.fields(f.ref).some((x) => x.kind === "variant")) {
            this.g.fail(
              ref.spec.file,
              `${f.attr.id}: a nested type with a switch is not supported`,
            );
          }
          out.push(`${name}: { ${this.entries(f.ref, v).join(", ")} }`);
          break;
        case "list":
          out.push(`${name}: ${v}.map(${this.reader(f.ref)})`);
          break;
        default:
          break;
      }
    }
    return out;
  }

  /** `return {…}` of `ref` read from `p`; with a variant, one return per case. */
  returns(ref: Ref, p: string, head: string[], ind: string): string[] {
    this.usedSpecs.add(ref.spec.id);
    const variant = this.g.fields(ref).find((f) => f.kind === "variant");
    const common = [...head, ...this.entries(ref, p)];
    if (variant === undefined) return [`${ind}return { ${common.join(", ")} };`];
    const out = [`${ind}const body = ${p}.${lowerCamel(variant.attr.id)};`];
    for (const [k, r] of variant.cases) {
      this.usedSpecs.add(r.spec.id);
      const e = [...common, `${lowerCamel(variant.on)}: "${k}"`, ...this.entries(r, "body")];
      out.push(`${ind}if (body instanceof ${this.g.kaitaiClass(r)}) return { ${e.join(", ")} };`);
    }
    out.push(
      `${ind}throw new Error(\`${lowerCamel(variant.on)} \${${p}.${
        lowerCamel(variant.on)
      }} has no ${lowerCamel(variant.attr.id)}\`);`,
    );
    return out;
  }

  /** The name of the reader of one element of a list of `ref` (emitted once). */
  reader(ref: Ref): string {
    const name = `read${this.g.ifaceName(ref)}`;
    if (this.elements.has(name)) return name;
    this.elements.add(name);
    this.usedTypes.add(this.g.ifaceName(ref));
    const body = this.returns(ref, "p", [], "  ");
    this.lines.push(
      `function ${name}(p: ${this.g.kaitaiClass(ref)}): ${this.g.ifaceName(ref)} {`,
      ...body,
      "}",
      "",
    );
    return name;
  }
}

function upperSnakeOf(id: string): string {
  return id.toUpperCase();
}

/** generated/codec.ts */
export function toCodecTs(g: MessageGen): string {
  const c = new CodecWriter(g);
  const enc = [
    "/**",
    " * Writes the payload of `msg` (SPEC.md §5) after a frame header: every field",
    " * in .ksy order, each length written after the data it counts. `strict`",
    " * checks every `valid:` and `-text` rule of spec/; without it only what the",
    " * byte layout needs (for tests that send well-formed, invalid frames).",
    " * Throws RangeError / TypeError naming the field (see src/encode.ts).",
    " */",
    "export function encodePayload(w: Writer, msg: Message, strict: boolean): void {",
    "  switch (msg.type) {",
  ];
  for (const m of g.messages) {
    enc.push(
      `    case "${m.name}": {`,
      ...c.writes(m.ref, "msg", literalPath(m.name), "      "),
      "      return;",
      "    }",
    );
  }
  enc.push(
    "    default: {",
    "      const never: never = msg;",
    "      throw new TypeError(`encode: unknown message type ${JSON.stringify((never as { type: unknown }).type)}`);",
    "    }",
    "  }",
    "}",
    "",
  );
  const dec = [
    "/**",
    " * The message of type code `type` read by its generated Kaitai payload type",
    " * from `io`, mapped to its interface (text checked as its `-text` says), or",
    " * undefined for a type without a payload type. Throws what the parser or a",
    " * text check throws; src/decode.ts turns that into a ProtocolError.",
    " */",
    "export function decodeFields(type: number, io: KaitaiStream): Message | undefined {",
    "  switch (type) {",
  ];
  for (const m of g.messages) {
    dec.push(
      `    case 0x${m.code.toString(16).padStart(2, "0")}: {`,
      `      const p = new ${g.kaitaiClass(m.ref)}(io);`,
      ...c.returns(m.ref, "p", [`type: "${m.name}"`], "      "),
      "    }",
    );
  }
  dec.push("    default:", "      return undefined;", "  }", "}", "");
  const tables: string[] = [];
  for (const [name, values] of c.tables) {
    tables.push(`const ${name}: Readonly<Record<string, number>> = {`);
    for (const [k, v] of values) tables.push(`  ${k}: ${v},`);
    tables.push("};", "");
  }
  const types = [...c.usedTypes].sort();
  const specs = [...c.usedSpecs].sort().map((s) =>
    `import { ${upperCamel(s)} } from "./${upperCamel(s)}.js";`
  );
  return [
    HEADER,
    "/**",
    " * Encoders and decoders of every message of generated/messages.ts, made from",
    " * spec/*.ksy by scripts/gen.ts; src/encode.ts and src/decode.ts wrap them.",
    " *",
    " * @module",
    " */",
    ...specs,
    `import type { KaitaiStream } from "./Frame.js";`,
    `import type { Message${types.map((t) => `, ${t}`).join("")} } from "./messages.ts";`,
    `import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../src/ip.ts";`,
    `import { addrTarget, nameText, utf8 } from "../src/kaitai.ts";`,
    `import { checkName, ipBytes, writeAddr, type Writer } from "../src/writer.ts";`,
    "",
    "/** The code of enum key `v`; TypeError naming `field` for a key the enum lacks. */",
    "function code(table: Readonly<Record<string, number>>, v: unknown, field: string): number {",
    '  if (typeof v === "string" && Object.hasOwn(table, v)) return table[v]!;',
    "  throw new TypeError(`${field}: unknown value ${JSON.stringify(v)}`);",
    "}",
    "",
    ...tables,
    ...enc,
    ...c.lines,
    ...dec,
  ].join("\n");
}
