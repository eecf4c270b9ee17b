import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_FILE_LINES, MAX_FUNCTION_LINES, offenders } from "../scripts/size.ts";

/** `n` lines of statements, each ending in a newline. */
const body = (n: number, indent = "") =>
  Array.from({ length: n }, (_, i) => `${indent}x += ${i};\n`).join("");

/** A function of exactly `n` lines, header and closing brace included. */
const fn = (name: string, n: number) => `function ${name}() {\n${body(n - 2, "  ")}}\n`;

test("size: a file of exactly the limit passes; one line more is named with its count", () => {
  const at = `let x = 0;\n${body(MAX_FILE_LINES - 1)}`;
  assert.deepEqual(offenders("src/at.ts", at), []);
  assert.deepEqual(offenders("src/over.ts", `${at}x++;\n`), [
    `src/over.ts: ${MAX_FILE_LINES + 1} lines (at most ${MAX_FILE_LINES})`,
  ]);
});

test("size: a function of the limit passes; one line more is named with its line", () => {
  const text = `let x = 0;\n${fn("short", MAX_FUNCTION_LINES)}${
    fn("long", MAX_FUNCTION_LINES + 1)
  }`;
  const at = 2 + MAX_FUNCTION_LINES;
  assert.deepEqual(offenders("src/f.ts", text), [
    `src/f.ts:${at}: function long is ${
      MAX_FUNCTION_LINES + 1
    } lines (at most ${MAX_FUNCTION_LINES})`,
  ]);
});

test("size: methods, arrows and function expressions count too, each on its own", () => {
  const long = body(MAX_FUNCTION_LINES, "    ");
  const text = [
    "let x = 0;",
    `class C {\n  m() {\n${long}  }\n}`,
    `const a = () => {\n${long}};`,
    `const e = [function () {\n${long}}];`,
    `function outer() {\n  return () => 1;\n}`,
  ].join("\n");
  const found = offenders("src/k.ts", text);
  assert.equal(found.length, 3, found.join("\n"));
  assert.match(found[0]!, /^src\/k\.ts:3: function m is 82 lines/);
  assert.match(found[1]!, /^src\/k\.ts:\d+: function \(anonymous\) is 82 lines/);
  assert.match(found[2]!, /^src\/k\.ts:\d+: function \(anonymous\) is 82 lines/);
});
