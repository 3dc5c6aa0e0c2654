/**
 * The console's template renderer. Templates live in `views/` (one file per page or fragment)
 * and are compiled once. Every `{{value}}` is HTML-escaped; the only way to insert markup is a
 * `SafeHtml` value, which only `render()` output and the explicit `trustedHtml()` marker make.
 *
 *   {{path.to.value}}              escaped text (SafeHtml passes through unchanged)
 *   {{#if path}} .. {{else}} .. {{/if}}     {{#unless path}} .. {{/unless}}
 *   {{#each list}} .. {{else}} empty {{/each}}   inside: {{.}}, {{@index}}, item fields, outer names
 *   {{> partials/name}}            another template with the current scope
 *   {{> partials/name path}}       the same with `path`'s value as its innermost scope
 */
import { readFileSync } from "node:fs";
import { sharePath } from "../share.ts";
import { join } from "node:path";

export class SafeHtml {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

/** Explicit marker for markup built in code (e.g. an SVG chart whose values are all numbers). */
export function trustedHtml(html: string): SafeHtml {
  return new SafeHtml(html);
}

const ESC: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };

export function escapeHtml(v: unknown): string {
  if (v instanceof SafeHtml) return v.html;
  if (v === null || v === undefined || v === false) return "";
  return String(v).replace(/[&<>"'`]/g, (c) => ESC[c]!);
}

type Node =
  | { t: "text"; s: string }
  | { t: "var"; path: string }
  | { t: "if"; path: string; neg: boolean; yes: Node[]; no: Node[] }
  | { t: "each"; path: string; body: Node[]; empty: Node[] }
  | { t: "partial"; name: string; path?: string };

const TAG = /\{\{\s*(#if|#unless|#each|\/if|\/unless|\/each|else|>)?\s*([^}]*?)\s*\}\}/g;

export function compile(src: string, name = "template"): Node[] {
  const root: Node[] = [];
  const stack: Array<{ kind: string; node: Node & { t: "if" | "each" }; into: Node[] }> = [];
  let out = root;
  let last = 0;
  for (const m of src.matchAll(TAG)) {
    if (m.index! > last) out.push({ t: "text", s: src.slice(last, m.index) });
    last = m.index! + m[0].length;
    const [, op, arg] = m;
    const expr = arg ?? "";
    switch (op) {
      case "#if":
      case "#unless": {
        const node = { t: "if" as const, path: expr, neg: op === "#unless", yes: [] as Node[], no: [] as Node[] };
        out.push(node);
        stack.push({ kind: op.slice(1), node, into: out });
        out = node.yes;
        break;
      }
      case "#each": {
        const node = { t: "each" as const, path: expr, body: [] as Node[], empty: [] as Node[] };
        out.push(node);
        stack.push({ kind: "each", node, into: out });
        out = node.body;
        break;
      }
      case "else": {
        const top = stack[stack.length - 1];
        if (!top) throw new Error(`${name}: {{else}} outside a block`);
        out = top.node.t === "if" ? top.node.no : top.node.empty;
        break;
      }
      case "/if":
      case "/unless":
      case "/each": {
        const top = stack.pop();
        if (!top || top.kind !== op.slice(1)) throw new Error(`${name}: unexpected {{${op}}}`);
        out = top.into;
        break;
      }
      case ">": {
        const [partial, path, ...extra] = expr.split(/\s+/);
        if (extra.length || (path !== undefined && !/^[A-Za-z_$][\w$]*(\.[\w$]+)*$/.test(path))) throw new Error(`${name}: bad partial {{> ${expr}}}`);
        out.push({ t: "partial", name: partial!, path });
        break;
      }
      default:
        if (!/^(\.|@index|[A-Za-z_$][\w$]*(\.[\w$]+)*)$/.test(expr)) throw new Error(`${name}: bad expression {{${expr}}}`);
        out.push({ t: "var", path: expr });
    }
  }
  if (stack.length) throw new Error(`${name}: {{#${stack[stack.length - 1]!.kind}}} is never closed`);
  if (last < src.length) out.push({ t: "text", s: src.slice(last) });
  return root;
}

type Scope = { value: unknown; index?: number; parent?: Scope };

function lookup(scope: Scope, path: string): unknown {
  if (path === ".") return scope.value;
  if (path === "@index") return scope.index;
  const [head, ...rest] = path.split(".");
  let s: Scope | undefined = scope;
  let v: unknown;
  for (; s; s = s.parent) {
    const o = s.value;
    if (o !== null && typeof o === "object" && head! in (o as object)) {
      v = (o as Record<string, unknown>)[head!];
      break;
    }
  }
  for (const k of rest) v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k];
  return v;
}

function truthy(v: unknown): boolean {
  return Array.isArray(v) ? v.length > 0 : Boolean(v);
}

export interface Renderer {
  render(name: string, data: object): SafeHtml;
}

export function createRenderer(dir: string): Renderer {
  const cache = new Map<string, Node[]>();
  const load = (name: string): Node[] => {
    let nodes = cache.get(name);
    if (!nodes) {
      if (!/^[a-z0-9/-]+$/.test(name)) throw new Error(`bad template name ${name}`);
      nodes = compile(readFileSync(join(dir, `${name}.html`), "utf8"), name);
      cache.set(name, nodes);
    }
    return nodes;
  };
  const run = (nodes: Node[], scope: Scope, out: string[]): void => {
    for (const n of nodes) {
      switch (n.t) {
        case "text":
          out.push(n.s);
          break;
        case "var":
          out.push(escapeHtml(lookup(scope, n.path)));
          break;
        case "if":
          run(truthy(lookup(scope, n.path)) !== n.neg ? n.yes : n.no, scope, out);
          break;
        case "each": {
          const list = lookup(scope, n.path);
          if (!Array.isArray(list) || list.length === 0) run(n.empty, scope, out);
          else for (let i = 0; i < list.length; i++) run(n.body, { value: list[i], index: i, parent: scope }, out);
          break;
        }
        case "partial":
          run(load(n.name), n.path === undefined ? scope : { value: lookup(scope, n.path), parent: scope }, out);
          break;
      }
    }
  };
  return {
    render(name, data) {
      const out: string[] = [];
      run(load(name), { value: data }, out);
      return new SafeHtml(out.join(""));
    },
  };
}

export const VIEWS_DIR = sharePath("views", join(import.meta.dir, "..", "..", "views"));
