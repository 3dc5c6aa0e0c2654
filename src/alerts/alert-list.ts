/**
 * The console's view of alerts (host data): the alert list, an alert's transitions and the
 * acknowledgement, each within the caller's HostScope. An alert about a host is visible when
 * the host is in scope; an alert about no host (failed sign-ins of an account) only to a scope
 * covering every host.
 */
import type { Sql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";

export interface AlertRow {
  id: number;
  rule_id: number;
  rule_name: string;
  severity: string;
  agent_id: number | null;
  hostname: string | null;
  subject: string;
  state: "pending" | "firing" | "resolved";
  value: number | null;
  summary: string;
  started_at: Date;
  fired_at: Date | null;
  resolved_at: Date | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  ack_note: string | null;
}

export interface TransitionRow {
  instance_id: number;
  subject: string;
  rule_name: string;
  from_state: string | null;
  to_state: string;
  at: Date;
  actor: string;
  note: string;
}

function visible(sql: Sql, scope: HostScope) {
  if (scope.tags === null) return sql``;
  return sql`and i.agent_id is not null and exists (select 1 from agents a where a.id = i.agent_id and a.tags && ${[...scope.tags]}::text[])`;
}

/** Open alerts (pending and firing), or also those resolved in the last `days`. */
export async function listAlerts(sql: Sql, scope: HostScope, q: { includeResolved?: boolean; days?: number; limit?: number } = {}): Promise<AlertRow[]> {
  const rows = await sql<AlertRow[]>`
    select i.id, i.rule_id, r.name as rule_name, r.severity, i.agent_id, g.hostname, i.subject, i.state, i.value, i.summary,
      i.started_at, i.fired_at, i.resolved_at, i.acknowledged_at, i.acknowledged_by, i.ack_note
    from alert_instances i join alert_rules r on r.id = i.rule_id left join agents g on g.id = i.agent_id
    where (i.state <> 'resolved' ${q.includeResolved ? sql`or i.resolved_at > now() - make_interval(days => ${q.days ?? 7})` : sql``})
      ${visible(sql, scope)}
    order by (i.state = 'firing') desc, (i.state = 'pending') desc,
      case r.severity when 'critical' then 0 when 'warning' then 1 else 2 end, i.started_at desc, i.id desc
    limit ${q.limit ?? 500}`;
  for (const r of rows) {
    r.id = Number(r.id);
    r.rule_id = Number(r.rule_id);
    r.agent_id = r.agent_id === null ? null : Number(r.agent_id);
  }
  return rows;
}

/** One host's alerts (the host page): open ones and those resolved in the last 7 days. */
export async function hostAlerts(sql: Sql, host: ScopedHost, limit = 50): Promise<AlertRow[]> {
  const rows = await sql<AlertRow[]>`
    select i.id, i.rule_id, r.name as rule_name, r.severity, i.agent_id, null as hostname, i.subject, i.state, i.value, i.summary,
      i.started_at, i.fired_at, i.resolved_at, i.acknowledged_at, i.acknowledged_by, i.ack_note
    from alert_instances i join alert_rules r on r.id = i.rule_id
    where i.agent_id = ${host.id} and (i.state <> 'resolved' or i.resolved_at > now() - interval '7 days')
    order by (i.state <> 'resolved') desc, i.started_at desc limit ${limit}`;
  for (const r of rows) {
    r.id = Number(r.id);
    r.rule_id = Number(r.rule_id);
    r.agent_id = Number(r.agent_id);
  }
  return rows;
}

/** The latest transitions of visible alerts (the timeline), or of one host's alerts. */
export async function recentTransitions(sql: Sql, scope: HostScope, q: { agentId?: number; limit?: number } = {}): Promise<TransitionRow[]> {
  const rows = await sql<TransitionRow[]>`
    select t.instance_id, i.subject, r.name as rule_name, t.from_state, t.to_state, t.at, t.actor, t.note
    from alert_transitions t join alert_instances i on i.id = t.instance_id join alert_rules r on r.id = i.rule_id
    where true ${q.agentId === undefined ? sql`` : sql`and i.agent_id = ${q.agentId}`} ${visible(sql, scope)}
    order by t.id desc limit ${q.limit ?? 100}`;
  for (const r of rows) r.instance_id = Number(r.instance_id);
  return rows;
}

/**
 * Acknowledges an open alert within the scope: stored on the alert and as a transition.
 * Returns the alert's subject, or undefined when it is not visible, resolved or already acknowledged.
 */
export async function acknowledgeAlert(sql: Sql, scope: HostScope, id: number, by: string, note: string): Promise<string | undefined> {
  return sql.begin(async (tx) => {
    const [r] = await tx`
      update alert_instances i set acknowledged_at = now(), acknowledged_by = ${by}, ack_note = ${note}, updated_at = now()
      where i.id = ${id} and i.state <> 'resolved' and i.acknowledged_at is null ${visible(tx as unknown as Sql, scope)}
      returning i.id, i.subject, i.state`;
    if (!r) return undefined;
    await tx`insert into alert_transitions (instance_id, from_state, to_state, actor, note) values (${id}, ${r.state}, 'acknowledged', ${by}, ${note})`;
    return r.subject as string;
  });
}
