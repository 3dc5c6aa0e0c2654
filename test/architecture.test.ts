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

// ---- Access control (issue #12): routes call models, and host-data models take a scope ----

const source = (file: string) => readFileSync(join(root, file), "utf8");
const srcFiles = files.filter((f) => f.startsWith("src/"));

/**
 * Route modules hold no SQL: every route module (src/**\/routes.ts) and everything under
 * src/web/ (routes, guard, wiring) calls model functions; the models own the tables.
 * No exceptions: an entry here needs a reason written beside it.
 */
const SQL_IN_ROUTES_ALLOWED = new Set<string>([]);

test("no SQL in route modules", () => {
  const routeModules = srcFiles.filter((f) => f.endsWith("/routes.ts") || f.startsWith("src/web/"));
  expect(routeModules).toContain("src/web/security/routes.ts");
  expect(routeModules).toContain("src/web/guard.ts");
  const withSql = routeModules.filter((f) => /\bsql`|\.unsafe\(/.test(source(f)));
  expect(withSql.filter((f) => !SQL_IN_ROUTES_ALLOWED.has(f))).toEqual([]);
});

/** The host-data models: every exported function takes a HostScope, a ScopedHost or a ScopedViolation. */
const HOST_MODELS = [
  "src/store/postgres/queries-console.ts",
  "src/security/posture.ts",
  "src/security/score.ts",
  "src/security/fim.ts",
  "src/security/incidents.ts",
  "src/security/issue.ts",
  "src/security/auto-remediate.ts",
  "src/operations/services.ts",
  "src/alerts/alert-list.ts",
  "src/inventory/queries.ts",
];
/** Exported functions of those models that need no scope, and why. */
const SCOPE_EXEMPT: Record<string, string> = {
  "src/security/posture.ts recordScan": "ingest side: stores the scan an authenticated agent sent about itself",
  "src/security/posture.ts consumeScanEvents": "ingest side: folds stored scans into posture",
  "src/security/score.ts computeScore": "pure: inputs in, score out",
  "src/security/incidents.ts correlate": "pure: signals in, incidents out",
  "src/security/issue.ts issueCommand": "low-level signer under commandHost; the console only calls commandHost(ScopedHost)",
  "src/store/postgres/queries-console.ts revokeActivationToken": "activation tokens are not host data",
  "src/operations/services.ts needsConfirmation": "pure: unit, op and host count in, yes/no out",
};

/** Each exported function's name and its parameter list, read from the source. */
function exportedFunctions(text: string): Array<{ name: string; params: string }> {
  const out: Array<{ name: string; params: string }> = [];
  for (const m of text.matchAll(/export (?:async )?function (\w+)(?:<[^(]*>)?\(/g)) {
    let depth = 1;
    let i = m.index! + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) depth += text[i] === "(" ? 1 : text[i] === ")" ? -1 : 0;
    out.push({ name: m[1]!, params: text.slice(start, i - 1) });
  }
  return out;
}

test("host-data queries take a scope", () => {
  const missing: string[] = [];
  let checked = 0;
  for (const f of HOST_MODELS) {
    const fns = exportedFunctions(source(f));
    expect({ f, some: fns.length > 0 }).toEqual({ f, some: true });
    for (const fn of fns) {
      checked++;
      if (SCOPE_EXEMPT[`${f} ${fn.name}`]) continue;
      if (!/:\s*(HostScope|ScopedHost|ScopedViolation)\b/.test(fn.params)) missing.push(`${f} ${fn.name}(${fn.params.replace(/\s+/g, " ")})`);
    }
  }
  expect(checked).toBeGreaterThan(25);
  expect(missing).toEqual([]);
  // every exemption still names an existing function
  for (const k of Object.keys(SCOPE_EXEMPT)) {
    const [f, name] = k.split(" ");
    expect({ k, exists: exportedFunctions(source(f!)).some((fn) => fn.name === name) }).toEqual({ k, exists: true });
  }
});

test("only the guard builds a user's HostScope, only background jobs the system's, and nothing casts one", () => {
  const calls = (re: RegExp) => srcFiles.filter((f) => f !== "src/auth/host-scope.ts" && re.test(source(f)));
  // scopeFor(), which the guard calls per request; principalScope(), the MCP endpoint's (the
  // second entry point: AI-client tokens and the approver of their requests)
  expect(calls(/HostScope\.forPermission\(/)).toEqual(["src/mcp/scope.ts", "src/web/route.ts"]);
  expect(source("src/web/guard.ts")).toContain("req.scope = scopeFor(req, route.access)");
  // the security jobs and the backup scheduler (it starts due jobs on every host they reach)
  expect(calls(/HostScope\.system\(/).sort()).toEqual(["src/backups/scheduler.ts", "src/security/jobs.ts"]);
  const casts = srcFiles.filter((f) => /\bas (HostScope|ScopedHost|ScopedViolation)\b|<(HostScope|ScopedHost|ScopedViolation)>/.test(source(f)));
  expect(casts.filter((f) => f !== "src/store/postgres/queries-console.ts" && f !== "src/security/posture.ts")).toEqual([]);
});
