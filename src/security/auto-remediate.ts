/**
 * Auto-remediation: for every open violation whose control has auto-remediation switched on
 * for a group the host belongs to (agent tag, or '*'), issue one signed `cis.remediate` per host
 * (dryRun false) on behalf of the system, at most once per violation. Run it after posture
 * consumed new scans, with the system's HostScope. Every command is recorded and audited like a
 * user's.
 */
import type { HostScope } from "../auth/host-scope.ts";
import { findHost, inScope } from "../store/postgres/queries-console.ts";
import { commandHost, type CommandDeps } from "./issue.ts";

export const AUTO_REQUESTER = { type: "system" as const, id: "auto-remediation", name: "auto-remediation" };

export async function runAutoRemediation(deps: CommandDeps, scope: HostScope, maxHosts = 100): Promise<Array<{ agentId: number; controls: string[]; ok: boolean }>> {
  const sql = deps.sql;
  const rows = await sql`
    select v.agent_id, array_agg(v.control_id order by v.control_id) as controls
    from cis_violations v join agents a on a.id = v.agent_id and a.revoked_at is null ${inScope(sql, scope)}
    where v.resolved_at is null
      and exists (select 1 from cis_auto_remediation r where r.control_id = v.control_id and r.enabled
                  and (r.host_group = '*' or r.host_group = any(a.tags)))
      and not exists (select 1 from security_commands c where c.agent_id = v.agent_id and c.action = 'cis.remediate'
                  and c.requested_by = ${`system:${AUTO_REQUESTER.id} ${AUTO_REQUESTER.name}`}
                  and c.args->'controls' ? v.control_id and c.issued_at >= v.first_seen)
    group by v.agent_id order by v.agent_id limit ${maxHosts}`;
  const out = [];
  for (const r of rows) {
    const host = await findHost(sql, scope, Number(r.agent_id));
    if (!host) continue;
    const controls = r.controls as string[];
    const { result } = await commandHost(deps, AUTO_REQUESTER, host, "cis.remediate", { controls, dryRun: false });
    out.push({ agentId: host.id, controls, ok: !!(result as any)?.ok });
  }
  return out;
}
