/**
 * Preloaded into a Bun process of burrow by bench/bun_heap.ts (`BUN_OPTIONS=--preload=…`):
 * on SIGUSR2 it collects fully and writes the heap's objects, counted by what
 * they are, to `$BURROW_HEAP_OUT/<pid>-<n>.json`: each object of a V8-format
 * heap snapshot (`Bun.generateHeapSnapshot("v8")`) grouped by its name and
 * type and the names of its properties and closure variables (a class, an
 * object literal's shape, a closure's scope), with the count and bytes of
 * each group.
 *
 * @module
 */
import fs from "node:fs";
import path from "node:path";

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      edge_fields: string[];
      node_types: [string[]];
      edge_types: [string[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface BunGlobal {
  gc(full: boolean): void;
  generateHeapSnapshot(format: "v8"): string;
}

/** Edges to these say nothing of what an object is. */
const NOISE = new Set(["Structure", "SymbolTable", "GlobalObject", "FunctionExecutable"]);

/** Objects grouped by name, type and named edges: group → [count, bytes]. */
export function groups(s: Snapshot): Record<string, [number, number]> {
  const nf = s.snapshot.meta.node_fields.length;
  const ef = s.snapshot.meta.edge_fields.length;
  const types = s.snapshot.meta.node_types[0];
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const out: Record<string, [number, number]> = {};
  let e = 0;
  for (let i = 0; i < s.nodes.length; i += nf) {
    const names: string[] = [];
    for (let j = 0; j < s.nodes[i + 4]!; j++, e += ef) {
      const to = s.strings[s.nodes[s.edges[e + 2]! + 1]!]!;
      const kind = edgeTypes[s.edges[e]!]; // context (a closure variable), property, internal, …
      if (NOISE.has(to) || kind === "element") continue;
      const named = kind === "context" || kind === "property";
      names.push(`${named ? s.strings[s.edges[e + 1]!] : ""}>${to}`);
    }
    const key = `${s.strings[s.nodes[i + 1]!]}|${types[s.nodes[i]!]} ${names.sort().join(",")}`;
    const g = out[key.slice(0, 300)] ??= [0, 0];
    g[0]++;
    g[1] += s.nodes[i + 3]!;
  }
  return out;
}

const dir = process.env.BURROW_HEAP_OUT;
if (dir) {
  let n = 0;
  process.on("SIGUSR2", () => {
    const bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
    bun.gc(true);
    bun.gc(true);
    const s = JSON.parse(bun.generateHeapSnapshot("v8")) as Snapshot;
    const role = process.argv.includes("server") ? "server" : "agent";
    const file = path.join(dir, `${process.pid}-${n++}.json`);
    fs.writeFileSync(file + ".tmp", JSON.stringify({ role, groups: groups(s) }));
    fs.renameSync(file + ".tmp", file);
  });
}
