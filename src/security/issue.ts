/**
 * Issuing a command to an agent: sign it with the server's command key, record it in
 * security_commands, hand it to the delivery function, record the result, audit it. Used by the
 * routes (a user asked) and by auto-remediation (the system asked).
 */
import { randomUUID, type KeyObject } from "node:crypto";
import type { Sql } from "postgres";
import { signCommand, type Command, type SignedCommand } from "../ingest/frame/commands.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";

export interface SecurityAuditEvent {
  actor: { type: "user" | "system"; id: string | number; name: string };
  category: "security_event";
  action: string;
  target: string;
  success: boolean;
  details?: Record<string, unknown>;
}

export interface CommandDeps {
  sql: Sql;
  audit(e: SecurityAuditEvent): void | Promise<void>;
  /** The server's Ed25519 command key (private half); agents hold the public half. */
  commandKey: KeyObject;
  /** Delivers a signed command to the agent and resolves with the agent's result. */
  dispatch(agentId: number, command: SignedCommand, timeoutMs?: number): Promise<unknown>;
  now?: () => number;
}

export type Requester = SecurityAuditEvent["actor"];

/** A command to a host found within the requester's scope: what the console and auto-remediation call. */
export function commandHost(deps: CommandDeps, who: Requester, host: ScopedHost, action: string, args: Record<string, unknown>, id?: string) {
  return issueCommand(deps, who, host.id, action, args, id);
}

/**
 * Signs, records, delivers and audits one command to an agent by id. The low-level step under
 * commandHost, for callers that are not acting on a user's behalf (agent and cluster tests, the
 * ping of the e2e harness); console routes never call it directly. `id` is the command's id
 * (a fresh UUID unless the caller chose one first, to find the command's output while it runs).
 */
export async function issueCommand(deps: CommandDeps, who: Requester, agentId: number, action: string, args: Record<string, unknown>, id: string = randomUUID()) {
  const now = deps.now?.() ?? Date.now();
  const cmd: Command = { v: 1, id, agentId, action, args, issuedMs: now, requestedBy: `${who.type}:${who.id} ${who.name}` };
  const signed = signCommand(cmd, deps.commandKey);
  await deps.sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at)
    values (${cmd.id}, ${agentId}, ${action}, ${deps.sql.json(args as any)}, ${cmd.requestedBy}, ${new Date(now)})`;
  let result: any;
  try {
    result = await deps.dispatch(agentId, signed);
  } catch (e) {
    result = { ok: false, error: `delivery failed: ${e instanceof Error ? e.message : e}` };
  }
  const ok = !!result?.ok;
  await deps.sql`update security_commands set status = ${ok ? "ok" : "failed"}, result = ${deps.sql.json(result ?? null)}, snapshot = ${result?.snapshot ?? null} where id = ${cmd.id}`;
  await deps.audit({
    actor: who,
    category: "security_event",
    action: action === "cis.remediate" && args.dryRun !== false ? "cis.remediate.dry-run" : action,
    target: `agent:${agentId}`,
    success: ok,
    details: { command: cmd.id, args, ...(result?.snapshot ? { snapshot: result.snapshot } : {}), ...(ok ? {} : { error: result?.error }) },
  });
  return { cmd, result };
}

export interface AppliedRemediation {
  id: string;
  issued_at: Date;
  requested_by: string;
  controls: string[];
  snapshot: string;
  rolled_back: boolean;
}

/** Remediations applied on a host that left a snapshot, newest first: what can be rolled back. */
export async function appliedRemediations(sql: Sql, host: ScopedHost, limit = 20): Promise<AppliedRemediation[]> {
  return sql<AppliedRemediation[]>`
    select c.id, c.issued_at, c.requested_by, coalesce(c.args->'controls', '[]'::jsonb) as controls, c.snapshot,
      exists (select 1 from security_commands r where r.agent_id = c.agent_id and r.action = 'cis.rollback' and r.status = 'ok'
        and r.args->>'snapshot' = c.snapshot) as rolled_back
    from security_commands c
    where c.agent_id = ${host.id} and c.action = 'cis.remediate' and c.status = 'ok' and c.snapshot is not null
    order by c.issued_at desc limit ${limit}`;
}

/** Whether a remediation on this host left this snapshot (what a rollback may name). */
export async function knownSnapshot(sql: Sql, host: ScopedHost, snapshot: string): Promise<boolean> {
  const rows = await sql`select 1 from security_commands where agent_id = ${host.id} and snapshot = ${snapshot} limit 1`;
  return rows.length > 0;
}
