/**
 * The fleet inventory's questions, parsed from what a user types. Pure: text in, a typed query
 * or a problem sentence out (the route answers 400 with it). Four kinds:
 *   package  `nginx`, `nginx >= 1.22`, `openssl < 3.0.11`, `linux-image-*` (a trailing or inner `*`)
 *   port     `443`, `443/tcp`, `53/udp`, `127.0.0.1:5432`, `[::]:22/tcp`
 *   user     `postgres`
 *   updates  hosts with pending security updates; an optional package name narrows to hosts
 *            where that package is among the security updates
 */
import { OPERATORS, type Operator } from "./version.ts";

export const KINDS = ["package", "port", "user", "updates"] as const;
export type Kind = (typeof KINDS)[number];

export const MAX_QUERY = 200;
const MAX_NAME = 128;

export type InventoryQuery =
  | { kind: "package"; name: string; glob: boolean; op?: Operator; version?: string }
  | { kind: "port"; port: number; proto?: "tcp" | "udp"; address?: string }
  | { kind: "user"; name: string }
  | { kind: "updates"; name?: string };

export type Parsed = { ok: true; query: InventoryQuery } | { ok: false; problem: string };

const NAME = /^[A-Za-z0-9_][A-Za-z0-9+._@*-]*$/;
const VERSION = /^[A-Za-z0-9.+~:^_-]+$/;
const USER = /^[A-Za-z0-9_.][A-Za-z0-9_.$-]*$/;

function bad(problem: string): Parsed {
  return { ok: false, problem };
}

function checkText(q: string): string | null {
  if (q.includes("\u0000")) return "The query contains a NUL character, which is not allowed.";
  if (q.length > MAX_QUERY) return `The query is ${q.length} characters long; at most ${MAX_QUERY}.`;
  return null;
}

function packageName(name: string, what = "package name"): string | null {
  if (name.length > MAX_NAME) return `The ${what} is ${name.length} characters long; at most ${MAX_NAME}.`;
  if (!NAME.test(name)) return `${JSON.stringify(name)} is not a ${what}: use letters, digits and + . _ - @ (and * as a wildcard).`;
  return null;
}

export function parsePackage(q: string): Parsed {
  const m = /^([^\s<>=!~^]+)\s*(?:([<>=!~^]+)\s*(.*))?$/.exec(q);
  if (!m) return bad(`${JSON.stringify(q)} is not a package query: write a name, optionally followed by an operator and a version (nginx >= 1.22).`);
  const [, name, op, version] = m;
  const nameProblem = packageName(name!);
  if (nameProblem) return bad(nameProblem);
  const glob = name!.includes("*");
  if (op === undefined) return { ok: true, query: { kind: "package", name: name!, glob } };
  const norm = op === "==" ? "=" : op;
  if (!(OPERATORS as readonly string[]).includes(norm)) return bad(`Unknown operator ${JSON.stringify(op)}: use one of =, !=, <, <=, > or >=.`);
  const v = (version ?? "").trim();
  if (!v) return bad(`The operator ${op} needs a version after it (nginx ${op} 1.22).`);
  if (v.length > MAX_NAME) return bad(`The version is ${v.length} characters long; at most ${MAX_NAME}.`);
  if (!VERSION.test(v)) return bad(`${JSON.stringify(v)} is not a version: use letters, digits and . + ~ : ^ _ - (no spaces).`);
  return { ok: true, query: { kind: "package", name: name!, glob, op: norm as Operator, version: v } };
}

export function parsePort(q: string): Parsed {
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|\*)):)?(\d{1,5})(?:\/([A-Za-z0-9]+))?$/.exec(q.replace(/\s+/g, ""));
  const alt = /^(tcp|udp)\s+(\d{1,5})$/i.exec(q);
  if (!m && !alt) return bad(`${JSON.stringify(q)} is not a port query: write a port (443), with a protocol (53/udp) or an address (127.0.0.1:5432, [::]:22/tcp).`);
  const portText = alt ? alt[2]! : m![3]!;
  const proto = (alt ? alt[1]! : m![4] ?? "").toLowerCase();
  const port = Number(portText);
  if (port < 1 || port > 65535) return bad(`Port ${portText} is out of range: ports are 1-65535.`);
  if (proto && proto !== "tcp" && proto !== "udp") return bad(`Unknown protocol ${JSON.stringify(proto)}: use tcp or udp.`);
  const address = alt ? undefined : m![1] ?? (m![2] === "*" ? undefined : m![2]);
  return { ok: true, query: { kind: "port", port, ...(proto ? { proto: proto as "tcp" | "udp" } : {}), ...(address ? { address } : {}) } };
}

export function parseUser(q: string): Parsed {
  if (q.length > 64) return bad(`The user name is ${q.length} characters long; at most 64.`);
  if (!USER.test(q)) return bad(`${JSON.stringify(q)} is not a user name: use letters, digits and _ . - $.`);
  return { ok: true, query: { kind: "user", name: q } };
}

/** `kind` from the form's select, `q` the typed text (already trimmed of NULs by nobody: checked here). */
export function parseInventoryQuery(kind: string, raw: string): Parsed {
  if (!(KINDS as readonly string[]).includes(kind)) return bad(`Unknown search kind ${JSON.stringify(kind.slice(0, 40))}: use package, port, user or updates.`);
  const problem = checkText(raw);
  if (problem) return bad(problem);
  const q = raw.trim();
  if (kind === "updates") {
    if (!q) return { ok: true, query: { kind: "updates" } };
    const p = packageName(q);
    return p ? bad(p) : { ok: true, query: { kind: "updates", name: q } };
  }
  if (!q) return bad(kind === "package" ? "Enter a package name, optionally with a version constraint (nginx >= 1.22)." : kind === "port" ? "Enter a port (443, 53/udp)." : "Enter a user name.");
  if (kind === "package") return parsePackage(q);
  if (kind === "port") return parsePort(q);
  return parseUser(q);
}
