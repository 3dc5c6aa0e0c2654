/** Rows for alert tests: hosts, their latest values, rules and channels, written directly. */
import type { Sql } from "postgres";
import { randomBytes } from "node:crypto";
import type { RuleInput } from "../../src/alerts/rules.ts";

export async function addHost(sql: Sql, hostname: string, tags: string[] = [], lastSeenMs: number | null = Date.now()): Promise<number> {
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen)
    values (${hostname}, ${randomBytes(32)}, ${tags}, ${lastSeenMs === null ? null : new Date(lastSeenMs)}) returning id`;
  return Number(a!.id);
}

export async function setSeen(sql: Sql, ids: number[], ms: number): Promise<void> {
  await sql`update agents set last_seen = ${new Date(ms)} where id = any(${ids}::int8[])`;
}

export async function setLatest(sql: Sql, agentId: number, ms: number, values: Record<string, number>): Promise<void> {
  const names = Object.keys(values);
  // an insert into the view replaces the agent's row (migration 560)
  await sql`insert into metric_latest (agent_id, ts, names, vals) values (${agentId}, ${new Date(ms)}, ${names}, ${names.map((n) => values[n]!)}::float8[])`;
}

export function rule(over: Partial<RuleInput> & Pick<RuleInput, "name" | "kind" | "params">): RuleInput {
  return {
    enabled: true, severity: "warning", scopeTags: [], labels: {}, forSeconds: 0, channelIds: [], groupBy: [],
    groupWaitSeconds: 0, groupIntervalSeconds: 300, repeatIntervalSeconds: 3600, ...over,
  };
}

export async function addRule(sql: Sql, r: RuleInput): Promise<number> {
  const [x] = await sql`insert into alert_rules (name, kind, enabled, severity, scope_tags, labels, params, for_seconds, channel_ids,
      group_by, group_wait_seconds, group_interval_seconds, repeat_interval_seconds, created_by)
    values (${r.name}, ${r.kind}, ${r.enabled}, ${r.severity}, ${r.scopeTags}, ${sql.json(r.labels)}, ${sql.json(r.params as any)}, ${r.forSeconds},
      ${r.channelIds}::int8[], ${r.groupBy}, ${r.groupWaitSeconds}, ${r.groupIntervalSeconds}, ${r.repeatIntervalSeconds}, 'test') returning id`;
  return Number(x!.id);
}

export async function disableStarterRules(sql: Sql): Promise<void> {
  await sql`update alert_rules set enabled = false where builtin`;
}

export async function transitionsOf(sql: Sql, fingerprint: string): Promise<string[]> {
  const rows = await sql`select t.from_state, t.to_state from alert_transitions t join alert_instances i on i.id = t.instance_id
    where i.fingerprint = ${fingerprint} order by t.id`;
  return rows.map((r) => `${r.from_state ?? "-"}>${r.to_state}`);
}

export async function queued(sql: Sql): Promise<Array<{ id: number; channel_id: number; payload: any; status: string }>> {
  return (await sql`select id, channel_id, payload, status from alert_notifications order by id`).map((r) => ({ ...r, id: Number(r.id), channel_id: Number(r.channel_id) })) as any;
}
