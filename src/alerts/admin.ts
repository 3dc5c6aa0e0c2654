/**
 * The console's administration of alerting (no host data): rules, silences and maintenance
 * windows, and the record of notifications and their delivery attempts. Validation of rules
 * is rules.ts's; of channels, channels.ts's.
 */
import type { Sql } from "postgres";
import { ruleFromRow } from "./store.ts";
import type { Rule, RuleInput } from "./rules.ts";

export async function listRules(sql: Sql): Promise<Rule[]> {
  return (await sql`select * from alert_rules order by builtin desc, name`).map(ruleFromRow);
}

export async function getRule(sql: Sql, id: number): Promise<Rule | undefined> {
  const [r] = await sql`select * from alert_rules where id = ${id}`;
  return r && ruleFromRow(r);
}

/** Creates a rule; undefined when the name is taken. */
export async function createRule(sql: Sql, r: RuleInput, by: string): Promise<number | undefined> {
  const [x] = await sql`
    insert into alert_rules (name, kind, enabled, severity, scope_tags, labels, params, for_seconds, channel_ids, group_by,
      group_wait_seconds, group_interval_seconds, repeat_interval_seconds, created_by)
    values (${r.name}, ${r.kind}, ${r.enabled}, ${r.severity}, ${r.scopeTags}, ${sql.json(r.labels)}, ${sql.json(r.params as any)},
      ${r.forSeconds}, ${r.channelIds}::int8[], ${r.groupBy}, ${r.groupWaitSeconds}, ${r.groupIntervalSeconds}, ${r.repeatIntervalSeconds}, ${by})
    on conflict (name) do nothing returning id`;
  return x ? Number(x.id) : undefined;
}

/** Updates a rule; false when it does not exist or the new name is another rule's. */
export async function updateRule(sql: Sql, id: number, r: RuleInput): Promise<boolean> {
  try {
    const res = await sql`
      update alert_rules set name = ${r.name}, kind = ${r.kind}, enabled = ${r.enabled}, severity = ${r.severity}, scope_tags = ${r.scopeTags},
        labels = ${sql.json(r.labels)}, params = ${sql.json(r.params as any)}, for_seconds = ${r.forSeconds}, channel_ids = ${r.channelIds}::int8[],
        group_by = ${r.groupBy}, group_wait_seconds = ${r.groupWaitSeconds}, group_interval_seconds = ${r.groupIntervalSeconds},
        repeat_interval_seconds = ${r.repeatIntervalSeconds}, updated_at = now()
      where id = ${id}`;
    return res.count === 1;
  } catch (e) {
    if ((e as { code?: string }).code === "23505") return false;
    throw e;
  }
}

/** Deletes a rule with its alerts and their history; returns its name. */
export async function deleteRule(sql: Sql, id: number): Promise<string | undefined> {
  const [r] = await sql`delete from alert_rules where id = ${id} returning name`;
  return r?.name;
}

export async function unknownChannelIds(sql: Sql, ids: number[]): Promise<number[]> {
  if (!ids.length) return [];
  const rows = await sql`select id from notification_channels where id = any(${ids}::int8[])`;
  const known = new Set(rows.map((r) => Number(r.id)));
  return ids.filter((i) => !known.has(i));
}

export interface SilenceRow {
  id: number;
  kind: "silence" | "maintenance";
  tags: string[];
  rule_id: number | null;
  rule_name: string | null;
  starts_at: Date;
  ends_at: Date;
  comment: string;
  created_by: string;
  expired_at: Date | null;
  active: boolean;
}

export interface SilenceInput {
  kind: "silence" | "maintenance";
  tags: string[];
  ruleId: number | null;
  startsAt: Date;
  endsAt: Date;
  comment: string;
}

export function validateSilence(s: SilenceInput): string[] {
  const errs: string[] = [];
  if (s.kind !== "silence" && s.kind !== "maintenance") errs.push("Choose a silence or a maintenance window.");
  if (Number.isNaN(s.startsAt.getTime()) || Number.isNaN(s.endsAt.getTime())) errs.push("Start and end must be dates and times.");
  else if (s.endsAt <= s.startsAt) errs.push("The end must be after the start.");
  else if (s.endsAt.getTime() - s.startsAt.getTime() > 90 * 86_400_000) errs.push("A silence lasts at most 90 days.");
  if (!s.comment.trim() || s.comment.length > 500) errs.push("A comment (why, up to 500 characters) is required.");
  for (const t of s.tags) if (!/^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$/.test(t)) errs.push(`Invalid tag: ${t}.`);
  return errs;
}

/** Silences that have not ended or been expired, newest first, then the last 20 ended ones. */
export async function listSilences(sql: Sql): Promise<SilenceRow[]> {
  const rows = await sql<SilenceRow[]>`
    (select s.*, r.name as rule_name, (s.expired_at is null and s.starts_at <= now() and s.ends_at > now()) as active
      from alert_silences s left join alert_rules r on r.id = s.rule_id where s.expired_at is null and s.ends_at > now())
    union all
    (select s.*, r.name as rule_name, false as active
      from alert_silences s left join alert_rules r on r.id = s.rule_id where s.expired_at is not null or s.ends_at <= now()
      order by coalesce(s.expired_at, s.ends_at) desc limit 20)`;
  for (const r of rows) {
    r.id = Number(r.id);
    r.rule_id = r.rule_id === null ? null : Number(r.rule_id);
  }
  return rows;
}

/** Creates a silence; undefined when its rule does not exist. */
export async function createSilence(sql: Sql, s: SilenceInput, by: string): Promise<number | undefined> {
  const [x] = await sql`
    insert into alert_silences (kind, tags, rule_id, starts_at, ends_at, comment, created_by)
    select ${s.kind}, ${s.tags}, ${s.ruleId}, ${s.startsAt}, ${s.endsAt}, ${s.comment}, ${by}
    where ${s.ruleId}::int8 is null or exists (select 1 from alert_rules where id = ${s.ruleId})
    returning id`;
  return x ? Number(x.id) : undefined;
}

/** A silence's tags ([]: every host), or undefined when there is no such silence. */
export async function silenceTags(sql: Sql, id: number): Promise<string[] | undefined> {
  const [r] = await sql`select tags from alert_silences where id = ${id}`;
  return r ? (r.tags as string[]) : undefined;
}

/** Ends a silence now; false when it does not exist or has ended. */
export async function expireSilence(sql: Sql, id: number): Promise<boolean> {
  const r = await sql`update alert_silences set expired_at = now() where id = ${id} and expired_at is null and ends_at > now()`;
  return r.count === 1;
}

export interface DeliveryRow {
  id: number;
  channel_name: string;
  rule_name: string | null;
  title: string;
  status: "pending" | "sent" | "failed";
  attempts: number;
  last_error: string | null;
  created_at: Date;
  sent_at: Date | null;
  next_attempt_at: Date;
}

/** The latest notifications with their channel and outcome. */
export async function listDeliveries(sql: Sql, limit = 50): Promise<DeliveryRow[]> {
  const rows = await sql<DeliveryRow[]>`
    select n.id, c.name as channel_name, r.name as rule_name, n.payload->>'title' as title, n.status, n.attempts, n.last_error,
      n.created_at, n.sent_at, n.next_attempt_at
    from alert_notifications n join notification_channels c on c.id = n.channel_id left join alert_rules r on r.id = n.rule_id
    order by n.id desc limit ${limit}`;
  for (const r of rows) r.id = Number(r.id);
  return rows;
}

/** Every attempt of one notification. */
export async function deliveryAttempts(sql: Sql, notificationId: number) {
  return sql<Array<{ attempt: number; at: Date; ok: boolean; status_code: number | null; error: string | null; duration_ms: number }>>`
    select attempt, at, ok, status_code, error, duration_ms from alert_delivery_attempts where notification_id = ${notificationId} order by attempt`;
}
