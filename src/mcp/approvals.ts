/**
 * The approval queue of AI-initiated operations (issue #14). An acting MCP tool (service_action,
 * write_file) never runs what it is asked: it stores the request here, with the AI client's
 * stated reason, and a person decides in the console (/ai/approvals, src/web/ai/routes.ts).
 *
 * Running an approved request (`runApproved`) needs BOTH principals: the requesting token as it
 * is NOW (live, its owner's current roles cut to the token) and the approving person must each
 * hold the operation's permission with a host scope covering the host; a file write carries
 * only the paths both may write (`intersectRules`). The command is sent in the approver's name
 * ("<approver> approving AI request N"). A group request (`service_action_group`) reaches only the
 * hosts it listed when it was made that are still in the group and within both scopes.
 * Framework-free: no Elysia, no request objects.
 */
import type { Sql } from "postgres";
import { getToken, tokenGrants } from "../auth/api-tokens.ts";
import { userGrants, type Grants } from "../auth/roles.ts";
import type { HostScope } from "../auth/host-scope.ts";
import { principalScope } from "./scope.ts";
import { findHost, type ScopedHost, inScope } from "../store/postgres/queries-console.ts";
import { groupHosts, runOnHosts, serviceAction, type ServiceOpsDeps, type ServiceOutcome } from "../operations/services.ts";
import { fileCommand, FILE_PERMISSION, userPolicy, within, type FileResult, type PolicyRule } from "../operations/files.ts";

export type ApprovalStatus = "pending" | "approved" | "rejected";

export interface Approval {
  id: number;
  tool: string;
  args: Record<string, unknown>;
  agent_id: number;
  hostname: string;
  tags: string[];
  permission: string;
  reason: string;
  token_id: number;
  user_id: number;
  username: string;
  client_name: string;
  client_version: string;
  status: ApprovalStatus;
  requested_at: Date;
  decided_by: string | null;
  decided_at: Date | null;
  outcome: string | null;
  result: Record<string, unknown> | null;
}

export interface NewApproval {
  tool: string;
  args: Record<string, unknown>;
  payload?: Buffer | null;
  hostId: number;
  permission: string;
  reason: string;
  tokenId: number;
  userId: number;
  clientName: string;
  clientVersion: string;
}

export class ApprovalError extends Error {}

const norm = (r: Approval): Approval => ({ ...r, id: Number(r.id), agent_id: Number(r.agent_id), token_id: Number(r.token_id), user_id: Number(r.user_id) });

export async function queueApproval(sql: Sql, a: NewApproval): Promise<number> {
  const [r] = await sql<{ id: number }[]>`insert into ai_approvals (tool, args, payload, agent_id, permission, reason, token_id, user_id, client_name, client_version)
    values (${a.tool}, ${sql.json(a.args as never)}, ${a.payload ?? null}, ${a.hostId}, ${a.permission}, ${a.reason}, ${a.tokenId}, ${a.userId},
      ${a.clientName.slice(0, 200)}, ${a.clientVersion.slice(0, 100)}) returning id`;
  return Number(r!.id);
}

const SELECT = (sql: Sql) => sql`select q.id, q.tool, q.args, q.agent_id, a.hostname, a.tags, q.permission, q.reason, q.token_id, q.user_id,
  coalesce(u.username, '') as username, q.client_name, q.client_version, q.status, q.requested_at, q.decided_by, q.decided_at, q.outcome, q.result
  from ai_approvals q join agents a on a.id = q.agent_id left join console_users u on u.id = q.user_id`;

/** Requests on hosts within `scope`, pending first, newest first. */
export async function listApprovals(sql: Sql, scope: HostScope, limit = 200): Promise<Approval[]> {
  const rows = await sql<Approval[]>`${SELECT(sql)} where true ${inScope(sql, scope)}
    order by q.status <> 'pending', q.id desc limit ${Math.max(1, Math.min(1000, limit))}`;
  return rows.map(norm);
}

/** One request, when its host is within `scope` (else undefined, as for a missing one). */
export async function findApproval(sql: Sql, scope: HostScope, id: number): Promise<Approval | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [r] = await sql<Approval[]>`${SELECT(sql)} where q.id = ${id} ${inScope(sql, scope)}`;
  return r ? norm(r) : undefined;
}

/**
 * Marks a pending request decided (only one decision wins: a second approve or reject finds it
 * no longer pending and gets false). Returns the queued bytes of a write, which are then cleared.
 */
export async function claimDecision(sql: Sql, id: number, status: "approved" | "rejected", by: string): Promise<{ ok: boolean; payload: Buffer | null }> {
  const rows = await sql<{ payload: Buffer | null }[]>`
    with old as (select id, payload from ai_approvals where id = ${id} and status = 'pending' for update)
    update ai_approvals q set status = ${status}, decided_by = ${by}, decided_at = now(), payload = null
    from old where q.id = old.id returning old.payload`;
  return rows.length ? { ok: true, payload: rows[0]!.payload } : { ok: false, payload: null };
}

export async function recordOutcome(sql: Sql, id: number, outcome: string, result: Record<string, unknown>): Promise<void> {
  await sql`update ai_approvals set outcome = ${outcome}, result = ${sql.json(result as never)} where id = ${id}`;
}

/**
 * Rules allowing exactly the paths both rule sets allow: for each pair of rules, the roots of
 * one lying under a root of the other, with the denied paths of both.
 */
export function intersectRules(a: PolicyRule[], b: PolicyRule[]): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const x of a) for (const y of b) {
    const roots = [...new Set([...x.roots.filter((r) => y.roots.some((s) => within(r, s))), ...y.roots.filter((r) => x.roots.some((s) => within(r, s)))])];
    if (roots.length) out.push({ roots, denied: [...new Set([...x.denied, ...y.denied])] });
  }
  return out;
}

/** What the requesting token may do now, or why it may do nothing. */
async function requesterGrants(sql: Sql, a: Approval): Promise<Grants | string> {
  const t = await getToken(sql, a.token_id);
  if (!t || t.revoked_at) return "the requesting token has been revoked";
  if (new Date(t.expires_at).getTime() <= Date.now()) return "the requesting token has expired";
  const [owner] = await sql<{ disabled_at: Date | null }[]>`select disabled_at from console_users where id = ${t.user_id}`;
  if (!owner || owner.disabled_at) return "the token's owner is disabled or gone";
  return tokenGrants(await userGrants(sql, t.user_id), t);
}

export interface Approver {
  id: number;
  username: string;
  grants: Grants;
}

export interface RunResult {
  ok: boolean;
  outcome: string;
  result: Record<string, unknown>;
}

/**
 * Runs an approved request with what BOTH the requesting token and the approver hold. A check
 * failing here refuses the run (outcome "refused") without sending anything.
 */
export async function runApproved(deps: ServiceOpsDeps, a: Approval, approver: Approver, payload: Buffer | null): Promise<RunResult> {
  const { sql } = deps;
  const mine = principalScope(approver.grants, a.permission);
  const host: ScopedHost | undefined = await findHost(sql, mine, a.agent_id);
  if (!approver.grants.permissions.has(a.permission) || !host) return refused(`you need the ${a.permission} permission on ${a.hostname} to approve this`);
  const theirs = await requesterGrants(sql, a);
  if (typeof theirs === "string") return refused(theirs);
  if (!principalScope(theirs, a.permission).covers(host.tags)) {
    return refused(`the requesting token no longer holds ${a.permission} on ${a.hostname}`);
  }
  if (host.revoked_at) return refused("the host's agent is revoked");
  const who = { type: "user" as const, id: approver.id, name: `${approver.username} approving AI request ${a.id}` };
  if (a.tool === "service_action") {
    const r: ServiceOutcome = await serviceAction(deps, who, host, a.args.unit, a.args.op);
    return { ok: r.ok, outcome: r.ok ? "ok" : "failed", result: { operation: r.operation, unit: r.unit, op: r.op, ok: r.ok, error: r.error, exitCode: r.result.exitCode ?? null, after: r.result.after ?? null } };
  }
  if (a.tool === "service_action_group") {
    // the hosts listed in the request that are still in the group and within BOTH scopes
    const listed = new Set(Array.isArray(a.args.hosts) ? (a.args.hosts as unknown[]).map(Number) : []);
    const requester = principalScope(theirs, a.permission);
    const hosts = (await groupHosts(sql, mine, String(a.args.group ?? ""))).filter((h) => listed.has(h.id) && requester.covers(h.tags));
    if (!hosts.length) return refused(`no host of ${String(a.args.group)} listed in the request is within both your scope and the requesting token's`);
    const { run, outcomes } = await runOnHosts(deps, who, hosts, a.args.unit, a.args.op);
    const failed = outcomes.filter((o) => !o.ok).length;
    return {
      ok: failed === 0, outcome: failed === 0 ? "ok" : `failed on ${failed} of ${outcomes.length} hosts`,
      result: { run, unit: outcomes[0]!.unit, op: outcomes[0]!.op, hosts: outcomes.length, failed, results: outcomes.map((o) => ({ host: o.host, operation: o.operation, ok: o.ok, error: o.error, after: o.result.after ?? null })) },
    };
  }
  if (a.tool === "write_file") {
    if (!payload) return refused("the queued content is missing");
    const path = String(a.args.path);
    const [ra, rb] = await Promise.all([userPolicy(sql, a.user_id, FILE_PERMISSION.write, host), userPolicy(sql, approver.id, FILE_PERMISSION.write, host)]);
    const rules = intersectRules(ra, rb);
    // ifMatch: the file must still be as the AI client last read it ("absent": must not exist)
    const args = { path, content: payload.toString("base64"), sha256: (a.args.content as { sha256: string }).sha256, ifMatch: String(a.args.expected_sha256) };
    const done: { id: string; result: FileResult } = await fileCommand(deps, who, host, "write", args, rules);
    const r = done.result;
    return { ok: !!r.ok, outcome: r.ok ? "ok" : String(r.code ?? "failed"), result: { command: done.id, ok: !!r.ok, path, before: r.before ?? null, after: r.after ?? null, snapshot: r.snapshot ?? null, ...(r.ok ? {} : { error: r.error ?? "failed" }) } };
  }
  return refused(`unknown tool ${a.tool}`);
}

function refused(message: string): RunResult {
  return { ok: false, outcome: "refused", result: { error: message } };
}
