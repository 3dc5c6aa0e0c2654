/**
 * Audit retention: the only way rows leave audit_log. The deletion itself is the database
 * function audit_purge_by_retention() (migration 410): SECURITY DEFINER, owned by the owner role,
 * so the runtime role (which has no DELETE on audit_log) can run it but cannot choose what it
 * deletes: it reads the retention from the audit settings, keeps at least 30 days, and moves the
 * chain anchor to the oldest kept row. Every purge that deleted something is audited.
 */
import type { Sql } from "postgres";
import { audit, type AuditEvent } from "./audit.ts";

export interface PurgeActor {
  actor: AuditEvent["actor"];
  ip?: string;
  userAgent?: string;
  details?: Record<string, unknown>;
}

const RETENTION: PurgeActor = { actor: { type: "system", name: "retention" } };

/** Runs the retention purge; returns the number of rows deleted. `by` is who asked (audited). */
export async function purgeAudit(sql: Sql, by: PurgeActor = RETENTION): Promise<number> {
  const [{ n }] = await sql`select audit_purge_by_retention()::bigint as n`;
  const deleted = Number(n);
  if (deleted === 0 && by === RETENTION) return 0;
  const [s] = await sql`select value->>'retentionDays' as days from console_settings where key = 'audit'`;
  await audit(sql, {
    actor: by.actor, ip: by.ip, userAgent: by.userAgent,
    category: "config_change",
    action: "audit.purge",
    target: "audit_log",
    success: true,
    details: { ...by.details, deleted, retentionDays: Math.max(30, Number(s?.days ?? 365)) },
  });
  return deleted;
}

/** Runs the purge every `everyMs`; returns a stop function. */
export function scheduleAuditPurge(sql: Sql, everyMs = 3600_000): () => void {
  let running = false;
  const run = async () => {
    if (running) return;
    running = true;
    try {
      await purgeAudit(sql);
    } catch (e) {
      console.error(`audit retention purge failed: ${e instanceof Error ? e.message : e}`);
    } finally {
      running = false;
    }
  };
  const first = setTimeout(run, 10_000);
  const timer = setInterval(run, everyMs);
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
