/**
 * `npm test`'s size check (scripts/test.ts runs it): no file in src/ or
 * runtimes/ over 450 lines, and no function (declaration, method, arrow or
 * function expression, accessor, constructor) over 80 lines there;
 * generated/ is not read. Prints one line per offender and exits 1 if there
 * is any.
 *
 *   tsx scripts/size.ts
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

export const MAX_FILE_LINES = 450;
export const MAX_FUNCTION_LINES = 80;

const root = new URL("..", import.meta.url).pathname;

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) yield p;
  }
}

/** What is too long in one source text: one `name[:line]: …` message each. */
export function offenders(name: string, text: string): string[] {
  const out: string[] = [];
  const src = ts.createSourceFile(name, text, ts.ScriptTarget.Latest, true);
  // As `wc -l` counts: a final newline ends the last line, it starts none.
  const lines = src.getLineStarts().length - (text.endsWith("\n") ? 1 : 0);
  if (lines > MAX_FILE_LINES) out.push(`${name}: ${lines} lines (at most ${MAX_FILE_LINES})`);
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
      const end = src.getLineAndCharacterOfPosition(node.getEnd()).line;
      const n = end - start + 1;
      if (n > MAX_FUNCTION_LINES) {
        const id = node.name && ts.isIdentifier(node.name) ? node.name.text : "(anonymous)";
        out.push(
          `${name}:${start + 1}: function ${id} is ${n} lines (at most ${MAX_FUNCTION_LINES})`,
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const found: string[] = [];
  for (const dir of ["src", "runtimes"]) {
    for (const f of files(join(root, dir))) {
      found.push(...offenders(relative(root, f), readFileSync(f, "utf8")));
    }
  }
  for (const line of found) console.log(line);
  if (found.length > 0) {
    console.log(`${found.length} over the size limits: split them (README, Development)`);
    process.exit(1);
  }
}
