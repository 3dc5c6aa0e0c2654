/**
 * The conditions that need the database: security (score drop, critical CIS violations, file
 * changes on critical paths, failed sign-ins) and log patterns. One bounded query per rule and
 * cycle, over a time window or the open violations; the rule's tag scope applies in memory.
 */
import type { Sql } from "postgres";
import { inTagScope, type Rule } from "./rules.ts";
import type { HostView, Observation } from "./conditions.ts";

export async function observeFromDatabase(sql: Sql, rule: Rule, hosts: Map<number, HostView>, now: number): Promise<Observation[]> {
  const p = rule.params;
  const since = new Date(now - (p.window_seconds ?? 0) * 1000);
  const out: Observation[] = [];
  const host = (id: unknown) => {
    const h = hosts.get(Number(id));
    return h && inTagScope(rule.scopeTags, h.tags) ? h : undefined;
  };
  switch (rule.kind) {
    case "security_score_drop": {
      const rows = await sql`
        select w.agent_id, w.peak, l.score from
          (select agent_id, max(score) as peak from security_scores where ts >= ${since} group by agent_id) w
          join lateral (select score from security_scores s where s.agent_id = w.agent_id order by ts desc limit 1) l on true
        where w.peak - l.score >= ${p.drop!}`;
      for (const r of rows) {
        const h = host(r.agent_id);
        if (h) out.push({ fingerprint: `${rule.id}:${h.id}`, agentId: h.id, subject: h.hostname, value: r.score, summary: `${h.hostname}: security score fell from ${r.peak} to ${r.score}` });
      }
      break;
    }
    case "cis_critical": {
      const rows = await sql`
        select id, agent_id, control_id, severity from cis_violations
        where resolved_at is null and severity >= ${p.min_severity!} order by id`;
      for (const r of rows) {
        const h = host(r.agent_id);
        if (h) out.push({ fingerprint: `${rule.id}:${h.id}:${r.control_id}`, agentId: h.id, subject: `${h.hostname} ${r.control_id}`, value: r.severity, summary: `${h.hostname}: CIS control ${r.control_id} fails (severity ${r.severity})` });
      }
      break;
    }
    case "fim_critical_path": {
      const prefixes = (p.paths ?? []).map((x) => x.replace(/[\\%_]/g, "\\$&") + "%");
      const rows = await sql`
        select agent_id, count(*)::int as n, min(path) as path from security_events
        where ts >= ${since} and type like 'fim.%' and type <> 'fim.status' and path like any(${prefixes}::text[])
        group by agent_id`;
      for (const r of rows) {
        const h = host(r.agent_id);
        if (h) out.push({ fingerprint: `${rule.id}:${h.id}`, agentId: h.id, subject: h.hostname, value: r.n, summary: `${h.hostname}: ${r.n} change(s) on critical paths (${r.path}${r.n > 1 ? ", ..." : ""})` });
      }
      break;
    }
    case "failed_signins": {
      // the sign-in throttle counts failures per typed account name (src/auth/throttle.ts)
      const rows = await sql`
        select substr(key, 6) as account, failures from signin_throttle
        where key like 'acct:%' and last_failure_at >= ${since} and failures >= ${p.min_count!} order by key`;
      for (const r of rows) out.push({ fingerprint: `${rule.id}:account:${r.account}`, agentId: null, subject: `account ${r.account}`, value: r.failures, summary: `${r.failures} failed sign-ins for account "${r.account}"` });
      break;
    }
    case "log_pattern": {
      const rows = await sql`
        select agent_id, count(*)::int as n from logs
        where ts >= ${since} and message ~* ${p.pattern!} group by agent_id having count(*) >= ${p.min_count!}`;
      for (const r of rows) {
        const h = host(r.agent_id);
        if (h) out.push({ fingerprint: `${rule.id}:${h.id}`, agentId: h.id, subject: h.hostname, value: r.n, summary: `${h.hostname}: ${r.n} log line(s) match /${p.pattern}/` });
      }
      break;
    }
    default:
      throw new Error(`rule kind ${rule.kind} is not observed from the database`);
  }
  return out;
}

export const DATABASE_KINDS = new Set(["security_score_drop", "cis_critical", "fim_critical_path", "failed_signins", "log_pattern"]);
