import { test } from "node:test";
import assert from "node:assert/strict";
import {
  batchSink,
  createLogger,
  type Fields,
  format,
  formatJson,
  type Level,
} from "../src/log.ts";

const TS = /^ts=\S+ /;
const strip = (line: string) => line.replace(TS, "");

/** Resolves after the current turn's `setImmediate` callbacks ran. */
const nextTurn = () => new Promise<void>((r) => setTimeout(r, 0));

test("a child logger's line equals format() of the merged fields, also when a field is overridden", () => {
  const lines: string[] = [];
  const root = createLogger({ level: "debug", sink: (l) => lines.push(l) });
  const child = root.with({ remote: "127.0.0.1:5", client: "a b", n: 3, gone: undefined });
  const cases: Array<Fields | undefined> = [
    undefined,
    { stream: 7 },
    { client: "override" }, // keeps the parent's place, as {...a, ...b} does
    { stream: 8, remote: "::1", extra: null, flag: true },
    {},
  ];
  for (const [i, f] of cases.entries()) {
    child.info(`m${i}`, f);
    const want = format("info", `m${i}`, { ...childFields(), ...f });
    assert.equal(strip(lines.at(-1)!), strip(want), `case ${i}`);
  }
  // The cached pairs are per child: a sibling with other fields renders its own.
  const sib = root.with({ remote: "10.0.0.1:9" });
  sib.warn("x");
  assert.equal(strip(lines.at(-1)!), strip(format("warn", "x", { remote: "10.0.0.1:9" })));
  function childFields(): Fields {
    return { remote: "127.0.0.1:5", client: "a b", n: 3, gone: undefined };
  }
});

test("a grandchild's line equals format() of every level's fields merged, in logfmt and JSON", () => {
  for (const fmt of ["logfmt", "json"] as const) {
    const lines: string[] = [];
    const root = createLogger({
      sink: (l) => lines.push(l),
      fields: { role: "server" },
      format: fmt,
    });
    const conn = root.with({ remote: "127.0.0.1:5" });
    const a = conn.with({ client: "a", client_id: 1 });
    const b = conn.with({ role: "other", client: "b" }); // sets the root's key again
    /** The last line without its timestamp: logfmt text, or JSON's keys and values in order. */
    const last = () => fmt === "json" ? withoutTs(lines.at(-1)!) : strip(lines.at(-1)!);
    const want = (msg: string, f: Fields) =>
      fmt === "json" ? withoutTs(formatJson("info", msg, f)) : strip(format("info", msg, f));
    a.info("x", { up: 1 });
    assert.deepEqual(
      last(),
      want("x", { role: "server", remote: "127.0.0.1:5", client: "a", client_id: 1, up: 1 }),
    );
    b.info("y");
    // the key keeps its first place, with the newer value
    assert.deepEqual(last(), want("y", { role: "other", remote: "127.0.0.1:5", client: "b" }));
    a.info("z", { remote: "::1" }); // a line's field sets a grandparent's key again
    assert.deepEqual(
      last(),
      want("z", { role: "server", remote: "::1", client: "a", client_id: 1 }),
    );
    conn.info("w"); // a parent is unchanged by its children
    assert.deepEqual(last(), want("w", { role: "server", remote: "127.0.0.1:5" }));
  }
  function withoutTs(line: string): Array<[string, unknown]> {
    return Object.entries(JSON.parse(line) as Record<string, unknown>).filter(([k]) => k !== "ts");
  }
});

test("batchSink writes the lines of one turn together, in order", async () => {
  const writes: string[] = [];
  const sink = batchSink((t) => writes.push(t));
  sink("a", "info");
  sink("b", "debug");
  sink("c", "info");
  assert.deepEqual(writes, [], "nothing before the turn ends");
  await nextTurn();
  assert.deepEqual(writes, ["a\nb\nc"]);
  sink("d", "info");
  await nextTurn();
  assert.deepEqual(writes, ["a\nb\nc", "d"]);
  await nextTurn();
  assert.equal(writes.length, 2, "no empty write");
});

test("batchSink writes a warn or error line at once, after the lines waiting before it", async () => {
  for (const urgent of ["warn", "error"] as Level[]) {
    const writes: string[] = [];
    const sink = batchSink((t) => writes.push(t));
    sink("a", "info");
    sink("b", urgent);
    assert.deepEqual(writes, ["a\nb"], urgent);
    sink("c", urgent);
    assert.deepEqual(writes, ["a\nb", "c"]);
    sink("d", "info");
    await nextTurn();
    assert.deepEqual(writes, ["a\nb", "c", "d"]);
  }
  const writes: string[] = [];
  const errorsOnly = batchSink((t) => writes.push(t), "error");
  errorsOnly("w", "warn");
  assert.deepEqual(writes, [], "below the urgent level: batched");
  errorsOnly("e", "error");
  assert.deepEqual(writes, ["w\ne"]);
});

test("createLogger passes each line's level to the sink and filters below the minimum", () => {
  const got: Array<[string, Level]> = [];
  const log = createLogger({ level: "info", sink: (l, level) => got.push([strip(l), level]) });
  log.debug("no");
  log.info("yes", { k: "v" });
  log.with({ a: 1 }).error("bad");
  assert.deepEqual(got, [
    ['level=info msg="yes" k=v', "info"],
    ['level=error msg="bad" a=1', "error"],
  ]);
  // enabled() says what the filter does, for the logger and its children alike.
  for (const l of [log, log.with({ a: 1 })]) {
    assert.deepEqual(
      (["debug", "info", "warn", "error"] as const).map((level) => l.enabled(level)),
      [false, true, true, true],
    );
  }
  assert.equal(createLogger({ level: "debug", sink: () => {} }).enabled("debug"), true);
});

test("the JSON format is unchanged by the cached logfmt pairs", () => {
  const lines: string[] = [];
  const log = createLogger({ sink: (l) => lines.push(l), format: "json" }).with({ a: "x" });
  log.info("one", { a: "y", b: 2 });
  log.info("two");
  const [one, two] = lines.map((l) => JSON.parse(l));
  assert.equal(one.a, "y");
  assert.equal(one.b, 2);
  assert.equal(two.a, "x");
  assert.equal(two.msg, "two");
});
