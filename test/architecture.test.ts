/**
 * The dependency rules of ../shared/STYLE.md, checked on the source: the agent imports only
 * the wire format from src/; the wire format imports nothing of ours; stores never import
 * ingest handlers or the console; nothing but the composition root imports the console;
 * and there are no import cycles.
 */
import { expect, test } from "bun:test";
import { Glob } from "bun";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const files = [...new Glob("{src,agent}/**/*.ts").scanSync(root)].sort();
const importRe = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function imports(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(importRe)) {
    const spec = m[1] ?? m[2]!;
    if (spec.startsWith(".")) out.push(relative(root, resolve(root, dirname(file), spec)));
  }
  return out;
}

const graph = new Map(files.map((f) => [f, imports(f)]));
const violations = (pred: (from: string, to: string) => boolean) =>
  [...graph].flatMap(([from, tos]) => tos.filter((to) => pred(from, to)).map((to) => `${from} -> ${to}`));

test("the import graph is read (guards the rules below against an empty scan)", () => {
  expect(files.length).toBeGreaterThan(20);
  expect(graph.get("src/store/postgres/writer.ts")).toContain("src/store/postgres/copy-binary.ts");
  expect(graph.get("src/main.ts")).toContain("src/server.ts");
});

test("the agent imports nothing from src/ but the wire format", () => {
  expect(violations((f, t) => f.startsWith("agent/") && t.startsWith("src/") && !t.startsWith("src/ingest/frame/"))).toEqual([]);
});

test("the wire format imports nothing of ours outside itself", () => {
  expect(violations((f, t) => f.startsWith("src/ingest/frame/") && !t.startsWith("src/ingest/frame/"))).toEqual([]);
});

test("stores import neither ingest handlers nor the console", () => {
  expect(violations((f, t) => f.startsWith("src/store/") && ((t.startsWith("src/ingest/") && !t.startsWith("src/ingest/frame/")) || t.startsWith("src/web/")))).toEqual([]);
});

test("only the composition root imports the console", () => {
  const roots = new Set(["src/main.ts", "src/server.ts", "src/app.ts"]);
  expect(violations((f, t) => t.startsWith("src/web/") && !f.startsWith("src/web/") && !roots.has(f))).toEqual([]);
});

test("no import cycles", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const t of graph.get(f) ?? []) if (graph.has(t)) visit(t, [...path, f]);
    state.set(f, "done");
  };
  for (const f of files) visit(f, []);
  expect(cycles).toEqual([]);
});
