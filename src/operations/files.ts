/**
 * File operations on hosts (issue #14): the path policy of roles, the signed `file.*` commands
 * and the record of every operation. Framework-free; the console routes (src/web/files/routes.ts)
 * call it with a host found within the request's scope.
 *
 * Policy: each role has allowed roots and denied paths (role_file_policies; none: no path, the
 * built-in admin role: "/"). A command carries one rule per role of the user that grants the
 * operation's permission and whose host scope covers the host; the agent allows a path when
 * some rule has it under a root and under none of its denied paths, after resolving symlinks,
 * and refuses its built-in list whatever the rules say (agent/control/files/policy.ts).
 *
 * Commands are signed like remediation (src/ingest/frame/commands.ts) and recorded in
 * security_commands, but with file contents replaced by their size and SHA-256, in the command
 * row and in its result alike: file bytes never land in the database or the audit trail.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { signCommand, type Command } from "../ingest/frame/commands.ts";
import type { CommandDeps, Requester } from "../security/issue.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";
import { unifiedDiff } from "../../agent/control/remediate/diff.ts";

export const FILE_OPS = ["list", "read", "write", "chmod", "chown", "rename", "delete", "rollback"] as const;
export type FileOp = (typeof FILE_OPS)[number];

/** The permission each operation needs (src/auth/permissions.ts). */
export const FILE_PERMISSION: Record<FileOp | "download", string> = {
  list: "files.view", read: "files.read", download: "files.download", write: "files.write", chmod: "files.write",
  chown: "files.write", rename: "files.write", rollback: "files.write", delete: "files.delete",
};

/** Largest file the console writes or uploads in one command (the agent refuses more). */
export const MAX_WRITE = 4 * 1024 * 1024;
/** Largest download streamed through the console. */
export const MAX_DOWNLOAD = 64 * 1024 * 1024;

export interface PolicyRule {
  roots: string[];
  denied: string[];
}

export const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** Absolute, normalised, no "." / ".." components, no NUL: a path the agent will accept. */
export function cleanPath(p: string | null | undefined): string | null {
  if (typeof p !== "string" || !p.startsWith("/") || p.length > 4096 || p.includes("\0")) return null;
  const parts = p.split("/").filter(Boolean);
  if (parts.some((x) => x === "." || x === "..")) return null;
  return "/" + parts.join("/");
}

/** Roots or denied paths typed one per line; invalid lines are reported. */
export function parsePathList(text: string): { paths: string[]; invalid: string[] } {
  const paths: string[] = [];
  const invalid: string[] = [];
  for (const line of text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean)) {
    const c = cleanPath(line);
    if (c) paths.includes(c) || paths.push(c);
    else invalid.push(line);
  }
  return { paths, invalid };
}

export const within = (p: string, base: string) => base === "/" || p === base || p.startsWith(base + "/");

/** A role's own policy: its row, or the default (admin: "/", any other: nothing). */
export async function rolePolicy(sql: Sql, roleId: number): Promise<PolicyRule & { explicit: boolean }> {
  const [r] = await sql<{ name: string; builtin: boolean; allowed_roots: string[] | null; denied: string[] | null }[]>`
    select r.name, r.builtin, p.allowed_roots, p.denied from console_roles r left join role_file_policies p on p.role_id = r.id where r.id = ${roleId}`;
  if (!r) return { roots: [], denied: [], explicit: false };
  if (r.allowed_roots === null) return { roots: r.builtin && r.name === "admin" ? ["/"] : [], denied: [], explicit: false };
  return { roots: r.allowed_roots, denied: r.denied ?? [], explicit: true };
}

export async function setRolePolicy(sql: Sql, roleId: number, p: PolicyRule, by: string): Promise<void> {
  await sql`insert into role_file_policies (role_id, allowed_roots, denied, updated_by) values (${roleId}, ${p.roots}, ${p.denied}, ${by})
    on conflict (role_id) do update set allowed_roots = excluded.allowed_roots, denied = excluded.denied, updated_by = excluded.updated_by, updated_at = now()`;
}

/**
 * The rules a user's command carries for `permission` on `host`: one per role of the user that
 * grants the permission and covers the host.
 */
export async function userPolicy(sql: Sql, userId: number, permission: string, host: ScopedHost): Promise<PolicyRule[]> {
  const rows = await sql<{ id: number; name: string; builtin: boolean; permissions: string[]; scope_tags: string[]; allowed_roots: string[] | null; denied: string[] | null }[]>`
    select r.id, r.name, r.builtin, r.permissions, r.scope_tags, p.allowed_roots, p.denied
    from user_roles ur join console_roles r on r.id = ur.role_id left join role_file_policies p on p.role_id = r.id
    where ur.user_id = ${userId} order by r.id`;
  const rules: PolicyRule[] = [];
  for (const r of rows) {
    // the role grants the permission and its scope (empty: every host) covers the host
    if (!r.permissions.includes(permission) || (r.scope_tags.length > 0 && !host.tags.some((t) => r.scope_tags.includes(t)))) continue;
    const roots = r.allowed_roots ?? (r.builtin && r.name === "admin" ? ["/"] : []);
    if (roots.length) rules.push({ roots, denied: r.denied ?? [] });
  }
  return rules;
}

/** A role's permissions, host scope tags ([]: every host) and path policy. */
export interface RoleReach {
  permissions: readonly string[];
  tags: readonly string[];
  rule: PolicyRule;
}

/** Each role of a user that reaches some path, with where and for what (what an editor may hand on). */
export async function userReach(sql: Sql, userId: number): Promise<RoleReach[]> {
  const rows = await sql<{ id: number; permissions: string[]; scope_tags: string[] }[]>`
    select r.id, r.permissions, r.scope_tags from user_roles ur join console_roles r on r.id = ur.role_id where ur.user_id = ${userId} order by r.id`;
  const out: RoleReach[] = [];
  for (const r of rows) {
    const p = await rolePolicy(sql, r.id);
    if (p.roots.length) out.push({ permissions: r.permissions, tags: r.scope_tags, rule: { roots: p.roots, denied: p.denied } });
  }
  return out;
}

/** Every permission a file operation needs. */
export const FILE_PERMISSIONS = [...new Set(Object.values(FILE_PERMISSION))];

/** Where a root reaches beyond an editor: for this file permission on hosts of this scope tag (null: every host). */
export interface ReachBeyond {
  root: string;
  permission: string;
  tag: string | null;
}

/**
 * The roots a role (permissions, scope tags) may not be given by this editor, per file permission
 * and host scope, as a command carries rules (userPolicy): for each file permission the role grants
 * (any of them, while it grants none) and each of its scope tags (when unscoped: every host), the
 * root must lie within the rules of the editor's roles that grant that permission and reach every
 * host carrying the tag (unscoped, or scoped to it) — rootsBeyond. `reachedBefore` skips pairs
 * the role reached already (a role edit checks only where and for what it newly reaches).
 */
export function rootsBeyondReach(
  editor: readonly RoleReach[], role: { permissions: readonly string[]; tags: readonly string[] }, roots: string[],
  reachedBefore: (permission: string, tag: string | null) => boolean = () => false,
): ReachBeyond[] {
  const own = FILE_PERMISSIONS.filter((p) => role.permissions.includes(p));
  const out: ReachBeyond[] = [];
  for (const permission of own.length ? own : [null]) {
    for (const tag of role.tags.length ? role.tags : [null]) {
      if (permission && reachedBefore(permission, tag)) continue;
      const rules = editor
        .filter((r) => (permission ? r.permissions.includes(permission) : r.permissions.some((p) => FILE_PERMISSIONS.includes(p))))
        .filter((r) => r.tags.length === 0 || (tag !== null && r.tags.includes(tag)))
        .map((r) => r.rule);
      for (const root of rootsBeyond(rules, roots)) out.push({ root, permission: permission ?? "any file permission", tag });
    }
  }
  return out;
}

/** "/etc for files.read on group:db hosts, ..." */
export function describeReachBeyond(b: readonly ReachBeyond[]): string {
  return b.map((x) => `${x.root} for ${x.permission} on ${x.tag === null ? "every host" : `${x.tag} hosts`}`).join(", ");
}

export const allowedBy = (rules: PolicyRule[], path: string) => rules.some((r) => r.roots.some((root) => within(path, root)) && !r.denied.some((d) => within(path, d)));

/**
 * Roots an editor may not grant: a root is grantable when one of the editor's own rules has it
 * under a root and no denied path of that rule at or below it (else granting it would reach what
 * the editor is denied).
 */
export function rootsBeyond(editor: PolicyRule[], roots: string[]): string[] {
  return roots.filter((root) => !editor.some((r) => r.roots.some((x) => within(root, x)) && !r.denied.some((d) => within(root, d) || within(d, root))));
}

/** A command's args as stored: file contents become their size and SHA-256; the policy stays. */
function redact(v: unknown): unknown {
  if (!v || typeof v !== "object" || Array.isArray(v)) return v;
  const o = { ...(v as Record<string, unknown>) };
  if (typeof o.content === "string") {
    const bytes = Buffer.from(o.content, "base64");
    o.content = { redacted: true, bytes: bytes.length, sha256: sha256(bytes) };
  }
  return o;
}

export interface FileResult {
  ok: boolean;
  code?: string;
  error?: string;
  snapshot?: string;
  [k: string]: unknown;
}

/**
 * Signs and delivers one file command for a host in the requester's scope, records it (redacted)
 * in security_commands and, for everything but list and chunk reads past the first, in
 * file_operations. The caller audits (with the request's address).
 */
export async function fileCommand(
  deps: Pick<CommandDeps, "sql" | "commandKey" | "dispatch" | "now">,
  who: Requester,
  host: ScopedHost,
  op: FileOp,
  args: Record<string, unknown>,
  policy: PolicyRule[],
): Promise<{ id: string; result: FileResult }> {
  const { sql } = deps;
  const now = deps.now?.() ?? Date.now();
  const action = `file.${op}`;
  const full = { ...args, policy: { rules: policy } };
  const cmd: Command = { v: 1, id: randomUUID(), agentId: host.id, action, args: full, issuedMs: now, requestedBy: `${who.type}:${who.id} ${who.name}` };
  const signed = signCommand(cmd, deps.commandKey);
  await sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at)
    values (${cmd.id}, ${host.id}, ${action}, ${sql.json(redact(full) as never)}, ${cmd.requestedBy}, ${new Date(now)})`;
  let result: FileResult;
  try {
    result = ((await deps.dispatch(host.id, signed)) as FileResult) ?? { ok: false, error: "no answer" };
  } catch (e) {
    result = { ok: false, code: "unavailable", error: `delivery failed: ${e instanceof Error ? e.message : e}` };
  }
  if (!result || typeof result !== "object") result = { ok: false, error: "the agent's answer is not an object" };
  const stored = redact(result) as FileResult;
  await sql`update security_commands set status = ${result.ok ? "ok" : "failed"}, result = ${sql.json(stored as never)}, snapshot = ${typeof result.snapshot === "string" ? result.snapshot : null} where id = ${cmd.id}`;
  if (op !== "list" && !(op === "read" && Number(args.offset ?? 0) > 0)) {
    const str = (v: unknown) => (typeof v === "string" ? v : null);
    const before = op === "read" ? str(result.sha256) : str(result.before);
    const after = op === "read" ? str(result.sha256) : str(result.after);
    await sql`insert into file_operations (agent_id, command_id, actor, op, path, to_path, before_sha256, sent_sha256, after_sha256, snapshot, success, error)
      values (${host.id}, ${cmd.id}, ${cmd.requestedBy}, ${op}, ${String(args.path ?? args.snapshot ?? "")}, ${str(args.to)}, ${before}, ${str(args.sha256)}, ${after},
        ${str(result.snapshot)}, ${!!result.ok}, ${result.ok ? null : String(result.error ?? "failed")})`;
  }
  return { id: cmd.id, result };
}

export interface FileOperationRow {
  id: number;
  ts: Date;
  actor: string;
  op: string;
  path: string;
  to_path: string | null;
  before_sha256: string | null;
  after_sha256: string | null;
  snapshot: string | null;
  success: boolean;
  rolled_back: boolean;
}

/** Changes on a host that left a snapshot, newest first: what can be rolled back. */
export async function fileSnapshots(sql: Sql, host: ScopedHost, limit = 50): Promise<FileOperationRow[]> {
  return sql<FileOperationRow[]>`
    select o.id, o.ts, o.actor, o.op, o.path, o.to_path, o.before_sha256, o.after_sha256, o.snapshot, o.success,
      exists (select 1 from file_operations r where r.agent_id = o.agent_id and r.op = 'rollback' and r.success and r.path = o.snapshot) as rolled_back
    from file_operations o
    where o.agent_id = ${host.id} and o.snapshot is not null and o.op <> 'rollback'
    order by o.ts desc, o.id desc limit ${limit}`;
}

/** The snapshot's operation on this host, or undefined (what a rollback may name). */
export async function snapshotOperation(sql: Sql, host: ScopedHost, snapshot: string): Promise<FileOperationRow | undefined> {
  const [r] = await sql<FileOperationRow[]>`select id, ts, actor, op, path, to_path, before_sha256, after_sha256, snapshot, success, false as rolled_back
    from file_operations where agent_id = ${host.id} and snapshot = ${snapshot} and op <> 'rollback' limit 1`;
  return r;
}

const isText = (b: Buffer) => {
  if (b.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

/**
 * What a write would change: the unified diff (text files) and the two hashes the apply must
 * carry back: `ifMatch`, the SHA-256 of the content the preview was based on ("absent" for a new
 * file), and `sha256`, that of the new content.
 */
export function previewWrite(path: string, before: Buffer | null, after: Buffer) {
  const binary = !(before === null || isText(before)) || !isText(after);
  return {
    path,
    ifMatch: before ? sha256(before) : "absent",
    sha256: sha256(after),
    size: after.length,
    beforeSize: before?.length ?? null,
    binary,
    unchanged: before !== null && before.equals(after),
    diff: binary ? `Binary files a${path} and b${path} differ\n` : unifiedDiff(path, before?.toString("utf8") ?? null, after.toString("utf8")),
  };
}
