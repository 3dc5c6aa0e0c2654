/**
 * Audit retention: the only way rows leave audit_log. The purge runs in one transaction that
 * sets `servermind.audit_purge` for itself (the append-only trigger allows DELETE only then),
 * moves the chain anchor to the oldest kept row, and is then audited itself.
 */
import type { Sql } from "postgres";
import { audit } from "./audit.ts";

export async function purgeAudit(sql: Sql, retentionDays: number, now = new Date()): Promise<number> {
  const cutoff = new Date(now.getTime() - retentionDays * 86400_000);
  const deleted = await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${0x5e7a0d17})`;
    await tx`select set_config('servermind.audit_purge', 'on', true)`;
    const [last] = await tx`select max(id) as id from audit_log where ts < ${cutoff}`;
    if (!last || last.id === null) return 0;
    const [next] = await tx`select id, prev_hash from audit_log where id > ${last.id} order by id limit 1`;
    const [{ prev_hash }] = await tx`select hash as prev_hash from audit_log where id = ${last.id}`;
    const res = await tx`delete from audit_log where id <= ${last.id}`;
    await tx`update audit_anchor set first_id = ${next ? next.id : Number(last.id) + 1}, prev_hash = ${next ? next.prev_hash : prev_hash} where id = 1`;
    return res.count;
  });
  if (deleted === 0) return 0;
  await audit(sql, {
    actor: { type: "system", name: "retention" },
    category: "config_change",
    action: "audit.purge",
    target: "audit_log",
    success: true,
    details: { deleted, retentionDays, before: cutoff.toISOString() },
  });
  return deleted;
}

/** Runs the purge every `everyMs` with the retention read at each run; returns a stop function. */
export function scheduleAuditPurge(sql: Sql, retentionDays: () => Promise<number>, everyMs = 3600_000): () => void {
  let running = false;
  const run = async () => {
    if (running) return;
    running = true;
    try {
      await purgeAudit(sql, await retentionDays());
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
