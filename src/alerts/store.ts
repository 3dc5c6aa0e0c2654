/**
 * The evaluator's reads and writes: rules, hosts, latest values, open alerts, silences, groups
 * and the notifications it queues. Every write of a cycle is a few set-based statements.
 */
import type { Sql } from "postgres";
import type { Rule, RuleKind, Severity } from "./rules.ts";
import type { HostView, LatestView } from "./conditions.ts";
import type { OpenAlert, Transition } from "./state.ts";
import type { GroupState } from "./grouping.ts";

type Row = Record<string, any>;

export function ruleFromRow(r: Row): Rule {
  return {
    id: Number(r.id), name: r.name, kind: r.kind as RuleKind, enabled: r.enabled, severity: r.severity as Severity,
    scopeTags: r.scope_tags, labels: r.labels ?? {}, params: r.params ?? {}, forSeconds: r.for_seconds,
    channelIds: (r.channel_ids as Array<string | number>).map(Number), groupBy: r.group_by,
    groupWaitSeconds: r.group_wait_seconds, groupIntervalSeconds: r.group_interval_seconds,
    repeatIntervalSeconds: r.repeat_interval_seconds, builtin: r.builtin,
  };
}

/** Changes when a rule is added, deleted, enabled, disabled or saved (updated_at): rules are reloaded only then. */
export async function rulesVersion(sql: Sql): Promise<string> {
  const [r] = await sql`select count(*)::int || ':' || coalesce(md5(string_agg(id || ':' || enabled || ':' || updated_at, ',' order by id)), '') as v from alert_rules`;
  return r!.v as string;
}

/** Every rule, enabled or not (an alert of a disabled rule resolves; of a deleted one, is gone). */
export async function loadRules(sql: Sql): Promise<Rule[]> {
  return (await sql`select * from alert_rules order by id`).map(ruleFromRow);
}

export async function loadHosts(sql: Sql): Promise<HostView[]> {
  const rows = await sql`select id, hostname, tags, extract(epoch from last_seen) * 1000 as seen from agents where revoked_at is null`;
  return rows.map((r) => ({ id: Number(r.id), hostname: r.hostname, tags: r.tags, lastSeen: r.seen === null ? null : Number(r.seen) }));
}

/** What this node's ingest holds in memory (src/store/postgres/agent-state.ts). */
export interface LocalLatest {
  latestOf(agentId: number): LatestView | undefined;
  lastSeenOf(agentId: number): number | undefined;
  agentIds(): Iterable<number>;
}

/** The names of a row whose set is unknown: none, so nothing of it is evaluated. */
const NO_NAMES = { key: "", names: [] as string[] };

/**
 * The latest value of every series: this node's in-memory values for the agents it serves,
 * and, for agents on other nodes, metric_latest read incrementally (rows whose sample time is
 * newer than the newest read so far). The sample time is the agent's clock: a row whose time
 * went backwards (an agent's clock set back) is not newer, so every `fullEvery`-th refresh
 * reads the whole table again, bounding how late such a row is seen (6 cycles: 60 s).
 * Rows come with their name set's id (metric_latest_rows, migration 560); each set's names are
 * read once and kept, so a refresh moves and parses values only, not every host's names
 * (2,000 hosts x 100 series: 200,000 strings every 10 s before).
 */
export class LatestCache {
  private readonly rows = new Map<number, LatestView>();
  /** names by metric_name_sets id; one key string per set, so hosts that report the same series share it */
  private readonly sets = new Map<number, { key: string; names: string[] }>();
  private since = 0;
  private refreshes = 0;

  /** `maxSets`: name sets kept at most; past it the memory starts over. */
  constructor(private readonly sql: Sql, private readonly local?: LocalLatest, private readonly fullEvery = 6, private readonly maxSets = 10_000) {}

  async refresh(): Promise<Map<number, LatestView>> {
    if (this.refreshes++ % this.fullEvery === 0) {
      this.since = 0;
      this.rows.clear(); // agents gone from the table (revoked, purged) go from the cache too
      this.sets.clear(); // and sets read again (a restored database may number them otherwise)
    }
    // Which rows changed first, without their values: an agent this node took frames from has
    // its values in memory, as new as the row or newer (this node wrote the row), and parsing
    // them again from text cost the event loop 43-56 ms a refresh for 2,000 hosts x 100 series
    // (PostgreSQL's array output, postgres.js's array parser); now 3-6 ms (docs/architecture.md).
    const changed = await this.sql`
      select agent_id, extract(epoch from ts) * 1000 as t from metric_latest_rows
      where ts > to_timestamp(${this.since / 1000}) order by ts`;
    const read: number[] = [];
    for (const r of changed) {
      const id = Number(r.agent_id);
      const t = Number(r.t);
      if (t > this.since) this.since = t - 1; // ts is stored in microseconds; keep the boundary row
      const l = this.local?.latestOf(id);
      if (l && l.ts >= t) this.rows.delete(id); // memory is as new: the row is not needed
      else read.push(id);
    }
    const rows = read.length
      ? await this.sql`
          select agent_id, extract(epoch from ts) * 1000 as t, names_set, vals from metric_latest_rows
          where agent_id = any(${read}::int8[])`
      : [];
    const wanted = new Set(rows.map((r) => r.names_set as number | null).filter((id): id is number => id !== null));
    let missing = [...wanted].filter((id) => !this.sets.has(id));
    if (this.sets.size + missing.length > this.maxSets) {
      // past the bound the memory starts over, so every set these rows name is read again
      this.sets.clear();
      missing = [...wanted];
    }
    if (missing.length) {
      for (const r of await this.sql`select id, names from metric_name_sets where id = any(${missing}::int4[])`) {
        const names = r.names as string[];
        this.sets.set(r.id as number, { key: names.join("\n"), names });
      }
    }
    for (const r of rows) {
      // a row without a set (none registered yet) has no names: nothing to evaluate
      const k = r.names_set === null ? NO_NAMES : (this.sets.get(r.names_set as number) ?? NO_NAMES);
      this.rows.set(Number(r.agent_id), { ts: Number(r.t), key: k.key, names: k.names, values: r.vals as number[] });
    }
    const out = new Map(this.rows);
    if (this.local) {
      for (const id of this.local.agentIds()) {
        const l = this.local.latestOf(id);
        const db = out.get(id);
        if (l && (!db || l.ts >= db.ts)) out.set(id, l);
      }
    }
    return out;
  }

  /** The newer of the database's last_seen and this node's own (not yet flushed) one. */
  overlaySeen(hosts: HostView[]): void {
    if (!this.local) return;
    for (const h of hosts) {
      const s = this.local.lastSeenOf(h.id);
      if (s !== undefined && (h.lastSeen === null || s > h.lastSeen)) h.lastSeen = s;
    }
  }
}

export async function loadOpenAlerts(sql: Sql): Promise<OpenAlert[]> {
  const rows = await sql`
    select id, rule_id, fingerprint, agent_id, subject, state, value, summary,
      extract(epoch from started_at) * 1000 as started, extract(epoch from fired_at) * 1000 as fired,
      extract(epoch from acknowledged_at) * 1000 as acked
    from alert_instances where state <> 'resolved'`;
  return rows.map((r) => ({
    id: Number(r.id), ruleId: Number(r.rule_id), fingerprint: r.fingerprint, agentId: r.agent_id === null ? null : Number(r.agent_id),
    subject: r.subject, state: r.state, value: r.value, summary: r.summary, startedAt: Number(r.started),
    firedAt: r.fired === null ? null : Number(r.fired), acknowledgedAt: r.acked === null ? null : Number(r.acked),
  }));
}

/**
 * The newest instance of each of these fingerprints when it is resolved: alerts whose firing a
 * group told and whose resolution the previous leader had not told yet (it waits in memory for
 * the group's interval), so a new leader tells it.
 */
export async function loadResolvedAmong(sql: Sql, fingerprints: string[]): Promise<Array<OpenAlert & { resolvedAt: number }>> {
  if (!fingerprints.length) return [];
  const rows = await sql`
    select * from (
      select distinct on (fingerprint) id, rule_id, fingerprint, agent_id, subject, state, value, summary,
        extract(epoch from started_at) * 1000 as started, extract(epoch from fired_at) * 1000 as fired,
        extract(epoch from acknowledged_at) * 1000 as acked, extract(epoch from resolved_at) * 1000 as resolved
      from alert_instances where fingerprint = any(${fingerprints}::text[]) order by fingerprint, id desc) newest
    where state = 'resolved'`;
  return rows.map((r) => ({
    id: Number(r.id), ruleId: Number(r.rule_id), fingerprint: r.fingerprint, agentId: r.agent_id === null ? null : Number(r.agent_id),
    subject: r.subject, state: "firing" as const, value: r.value, summary: r.summary, startedAt: Number(r.started),
    firedAt: r.fired === null ? null : Number(r.fired), acknowledgedAt: r.acked === null ? null : Number(r.acked),
    resolvedAt: r.resolved === null ? Date.now() : Number(r.resolved),
  }));
}

/** Acknowledgements made since the alerts were loaded (the console writes them). */
export async function loadAcknowledged(sql: Sql, ids: number[]): Promise<Map<number, number>> {
  if (!ids.length) return new Map();
  const rows = await sql`select id, extract(epoch from acknowledged_at) * 1000 as acked from alert_instances where id = any(${ids}::int8[]) and acknowledged_at is not null`;
  return new Map(rows.map((r) => [Number(r.id), Number(r.acked)]));
}

export interface ActiveSilence {
  id: number;
  kind: "silence" | "maintenance";
  tags: string[];
  ruleId: number | null;
}

export async function loadActiveSilences(sql: Sql, now: number): Promise<ActiveSilence[]> {
  const rows = await sql`
    select id, kind, tags, rule_id from alert_silences
    where expired_at is null and starts_at <= to_timestamp(${now / 1000}) and ends_at > to_timestamp(${now / 1000})`;
  return rows.map((r) => ({ id: Number(r.id), kind: r.kind, tags: r.tags, ruleId: r.rule_id === null ? null : Number(r.rule_id) }));
}

export interface CycleWrites {
  opened: Array<{ alert: OpenAlert; transitions: Transition[]; labels: Record<string, string> }>;
  updated: Array<{ alert: OpenAlert; transitions: Transition[] }>;
  resolved: Array<{ alert: OpenAlert; transitions: Transition[] }>;
  now: number;
}

/** Stores a cycle's new alerts, state changes and transitions; sets the ids of new alerts. */
export async function writeCycle(sql: Sql, w: CycleWrites): Promise<void> {
  if (!w.opened.length && !w.updated.some((u) => u.transitions.length) && !w.resolved.length) return;
  const now = w.now / 1000;
  await sql.begin(async (tx) => {
    if (w.opened.length) {
      const o = w.opened;
      const rows = await tx`
        insert into alert_instances (rule_id, agent_id, fingerprint, subject, state, value, summary, labels, started_at, fired_at)
        select v.rule_id, v.agent_id, v.fp, v.subject, v.state, v.value, v.summary, v.labels, to_timestamp(v.started), to_timestamp(v.fired)
        from unnest(${o.map((x) => x.alert.ruleId)}::int8[], ${o.map((x) => x.alert.agentId)}::int8[],
          ${o.map((x) => x.alert.fingerprint)}::text[], ${o.map((x) => x.alert.subject)}::text[], ${o.map((x) => x.alert.state)}::text[],
          ${o.map((x) => x.alert.value)}::float8[], ${o.map((x) => x.alert.summary)}::text[], ${o.map((x) => JSON.stringify(x.labels))}::jsonb[],
          ${o.map((x) => x.alert.startedAt / 1000)}::float8[], ${o.map((x) => (x.alert.firedAt === null ? null : x.alert.firedAt / 1000))}::float8[])
          as v(rule_id, agent_id, fp, subject, state, value, summary, labels, started, fired)
        returning id, fingerprint`;
      const ids = new Map(rows.map((r) => [r.fingerprint as string, Number(r.id)]));
      for (const x of o) x.alert.id = ids.get(x.alert.fingerprint);
    }
    const changed = [...w.updated.filter((u) => u.transitions.length), ...w.resolved];
    if (changed.length) {
      await tx`
        update alert_instances a set state = v.state, value = v.value, summary = v.summary, updated_at = to_timestamp(${now}),
          fired_at = case when v.state = 'firing' then to_timestamp(${now}) else a.fired_at end,
          resolved_at = case when v.state = 'resolved' then to_timestamp(${now}) else null end
        from unnest(${changed.map((c) => c.alert.id!)}::int8[], ${changed.map((c) => c.transitions.at(-1)!.to)}::text[],
          ${changed.map((c) => c.alert.value)}::float8[], ${changed.map((c) => c.alert.summary)}::text[]) as v(id, state, value, summary)
        where a.id = v.id`;
    }
    const tr = [...w.opened, ...changed].flatMap((c) => c.transitions.map((t) => ({ id: c.alert.id!, t, value: c.alert.value })));
    if (tr.length) {
      await tx`
        insert into alert_transitions (instance_id, from_state, to_state, at, value)
        select v.id, v.f, v.t, to_timestamp(${now}), v.value
        from unnest(${tr.map((x) => x.id)}::int8[], ${tr.map((x) => x.t.from)}::text[], ${tr.map((x) => x.t.to)}::text[], ${tr.map((x) => x.value)}::float8[]) as v(id, f, t, value)`;
    }
  });
}

export async function loadGroups(sql: Sql): Promise<GroupState[]> {
  const rows = await sql`select group_key, rule_id, extract(epoch from first_seen_at) * 1000 as first, extract(epoch from last_notified_at) * 1000 as last, last_firing from alert_groups`;
  return rows.map((r) => ({ key: r.group_key, ruleId: Number(r.rule_id), labels: {}, firstSeen: Number(r.first), lastNotified: r.last === null ? null : Number(r.last), lastFiring: r.last_firing }));
}

export async function saveGroups(sql: Sql, changed: GroupState[], dropped: string[]): Promise<void> {
  if (changed.length) {
    await sql`
      insert into alert_groups (group_key, rule_id, first_seen_at, last_notified_at, last_firing)
      select v.k, v.r, to_timestamp(v.f), to_timestamp(v.l), string_to_array(v.fps, E'\n')
      from unnest(${changed.map((g) => g.key)}::text[], ${changed.map((g) => g.ruleId)}::int8[], ${changed.map((g) => g.firstSeen / 1000)}::float8[],
        ${changed.map((g) => (g.lastNotified === null ? null : g.lastNotified / 1000))}::float8[], ${changed.map((g) => g.lastFiring.join("\n"))}::text[]) as v(k, r, f, l, fps)
      on conflict (group_key) do update set first_seen_at = excluded.first_seen_at, last_notified_at = excluded.last_notified_at, last_firing = excluded.last_firing`;
  }
  if (dropped.length) await sql`delete from alert_groups where group_key = any(${dropped}::text[])`;
}

export async function enabledChannelIds(sql: Sql): Promise<number[]> {
  return (await sql`select id from notification_channels where enabled order by id`).map((r) => Number(r.id));
}

/** Queues one notification per (group, channel); the dispatcher (dispatch.ts) sends them. */
export async function queueNotifications(sql: Sql, items: Array<{ groupKey: string; ruleId: number; channelId: number; payload: unknown }>): Promise<void> {
  if (!items.length) return;
  await sql`
    insert into alert_notifications (group_key, rule_id, channel_id, payload)
    select v.g, v.r, v.c, v.p::jsonb from unnest(${items.map((i) => i.groupKey)}::text[], ${items.map((i) => i.ruleId)}::int8[],
      ${items.map((i) => i.channelId)}::int8[], ${items.map((i) => JSON.stringify(i.payload))}::text[]) as v(g, r, c, p)
    where exists (select 1 from notification_channels n where n.id = v.c and n.enabled)`;
}
