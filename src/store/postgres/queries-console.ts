/**
 * Read queries for the web console over the ingest tables (001_ingest.sql) that the shared
 * src/store/postgres/queries.ts does not cover: the sortable, searchable, scoped fleet table,
 * host detail, logs with a severity filter, inventory, activation tokens. Plain functions
 * taking `sql`; every filter is a parameter. Metric ranges come from queries.ts seriesRange. Metric names follow the agent's collectors
 * (agent/collect: cpu.usage_pct, mem.used_pct, disk.used_pct{mount="/"}).
 */
import type { Sql } from "postgres";

export const FLEET_METRICS = {
  cpu: "cpu.usage_pct",
  mem: "mem.used_pct",
  disk: 'disk.used_pct{mount="/"}',
} as const;

/** A host is online when it was seen within this many seconds. */
export const ONLINE_WINDOW_S = 90;

export interface FleetRow {
  id: number;
  hostname: string;
  os: string;
  arch: string;
  agent_version: string;
  tags: string[];
  transport: string | null;
  last_seen: Date | null;
  revoked_at: Date | null;
  online: boolean;
  cpu: number | null;
  mem: number | null;
  disk: number | null;
}

export const FLEET_SORTS = ["hostname", "status", "last_seen", "cpu", "mem", "disk", "version", "transport", "os"] as const;
export type FleetSort = (typeof FLEET_SORTS)[number];

export interface FleetQuery {
  search?: string;
  sort?: FleetSort;
  desc?: boolean;
  /** null: every host; otherwise only hosts with one of these tags */
  scopeTags: string[] | null;
  /** a page of the sorted list; no limit means every host */
  offset?: number;
  limit?: number;
}

function like(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** `and a.tags && <scope>` for a query over `agents a`; nothing when every host is in scope (null). */
export function inScope(sql: Sql, scopeTags: string[] | null | undefined) {
  return scopeTags ? sql`and a.tags && ${scopeTags}::text[]` : sql``;
}

function fleetWhere(sql: Sql, q: Pick<FleetQuery, "search" | "scopeTags">) {
  return sql`where true
    ${q.search ? sql`and (a.hostname ilike ${like(q.search)} or ${q.search} = any(a.tags) or a.os ilike ${like(q.search)})` : sql``}
    ${inScope(sql, q.scopeTags)}`;
}

export async function fleetOverview(sql: Sql, q: FleetQuery): Promise<FleetRow[]> {
  const order = {
    hostname: sql`a.hostname`,
    status: sql`coalesce(a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}), false)`,
    last_seen: sql`a.last_seen`,
    cpu: sql`cpu`,
    mem: sql`mem`,
    disk: sql`disk`,
    version: sql`a.agent_version`,
    transport: sql`a.transport`,
    os: sql`a.os`,
  }[q.sort ?? "hostname"];
  const rows = await sql<FleetRow[]>`
    select a.id, a.hostname, a.os, a.arch, a.agent_version, a.tags, a.transport, a.last_seen, a.revoked_at,
      coalesce(a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}), false) as online,
      l.vals[array_position(l.names, ${FLEET_METRICS.cpu})] as cpu,
      l.vals[array_position(l.names, ${FLEET_METRICS.mem})] as mem,
      l.vals[array_position(l.names, ${FLEET_METRICS.disk})] as disk
    from agents a left join metric_latest l on l.agent_id = a.id
    ${fleetWhere(sql, q)}
    order by ${order} ${q.desc ? sql`desc nulls last` : sql`asc nulls last`}, a.hostname, a.id
    ${q.limit === undefined ? sql`` : sql`limit ${q.limit}`} offset ${q.offset ?? 0}`;
  for (const r of rows) {
    r.id = Number(r.id);
    // postgres.js reads a NULL element of float8[] as NaN: both mean "no value"
    for (const k of ["cpu", "mem", "disk"] as const) if (r[k] !== null && Number.isNaN(r[k])) r[k] = null;
  }
  return rows;
}

export interface FleetSummary {
  total: number;
  online: number;
  revoked: number;
}

/** Counts over the whole filtered fleet, for the header of a paged table. */
export async function fleetSummary(sql: Sql, q: Pick<FleetQuery, "search" | "scopeTags">): Promise<FleetSummary> {
  const [r] = await sql`
    select count(*)::int as total,
      count(*) filter (where a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}))::int as online,
      count(*) filter (where a.revoked_at is not null)::int as revoked
    from agents a ${fleetWhere(sql, q)}`;
  return { total: r!.total, online: r!.online, revoked: r!.revoked };
}

export interface AgentDetail {
  id: number;
  hostname: string;
  os: string;
  arch: string;
  agent_version: string;
  tags: string[];
  enrolled_at: Date;
  revoked_at: Date | null;
  last_seen: Date | null;
  transport: string | null;
  status: Record<string, unknown>;
  online: boolean;
}

export async function agentDetail(sql: Sql, id: number, scopeTags: string[] | null): Promise<AgentDetail | undefined> {
  const [a] = await sql<AgentDetail[]>`
    select id, hostname, os, arch, agent_version, tags, enrolled_at, revoked_at, last_seen, transport, status,
      coalesce(revoked_at is null and last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}), false) as online
    from agents a where id = ${id} ${inScope(sql, scopeTags)}`;
  return a ? { ...a, id: Number(a.id) } : undefined;
}

export async function seriesNames(sql: Sql, agentId: number): Promise<string[]> {
  const rows = await sql`select name from metric_series where agent_id = ${agentId} order by name limit 5000`;
  return rows.map((r) => r.name as string);
}

export interface LogRow {
  ts: Date;
  severity: number;
  source: string;
  message: string;
}

export async function hostLogs(sql: Sql, agentId: number, opts: { search?: string; since: Date; minSeverity?: number; limit: number }): Promise<LogRow[]> {
  return sql<LogRow[]>`
    select ts, severity, source, message from logs
    where agent_id = ${agentId} and ts >= ${opts.since}
      ${opts.search ? sql`and message ilike ${like(opts.search)}` : sql``}
      ${opts.minSeverity !== undefined ? sql`and severity <= ${opts.minSeverity}` : sql``}
    order by ts desc limit ${opts.limit}`;
}

export async function inventory(sql: Sql, agentId: number): Promise<{ collected_at: Date; data: unknown } | undefined> {
  const [r] = await sql`select collected_at, data from inventory_current where agent_id = ${agentId}`;
  return r ? { collected_at: r.collected_at, data: r.data } : undefined;
}

export interface TokenRow {
  id: number;
  label: string;
  created_by: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  used_by_agent: number | null;
  used_by_hostname: string | null;
  revoked_at: Date | null;
}

export async function listActivationTokens(sql: Sql): Promise<TokenRow[]> {
  const rows = await sql<TokenRow[]>`
    select t.id, t.label, t.created_by, t.created_at, t.expires_at, t.used_at, t.used_by_agent, a.hostname as used_by_hostname, t.revoked_at
    from activation_tokens t left join agents a on a.id = t.used_by_agent
    order by t.created_at desc limit 200`;
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

export async function revokeActivationToken(sql: Sql, id: number): Promise<boolean> {
  const r = await sql`update activation_tokens set revoked_at = now() where id = ${id} and revoked_at is null and used_at is null`;
  return r.count === 1;
}

export async function revokeAgent(sql: Sql, id: number): Promise<boolean> {
  const r = await sql`update agents set revoked_at = now() where id = ${id} and revoked_at is null`;
  return r.count === 1;
}

/** Host tags, set in the console; roles scope hosts by them ("group:<name>" for host groups). */
export async function setAgentTags(sql: Sql, id: number, tags: string[]): Promise<void> {
  await sql`update agents set tags = ${tags}::text[] where id = ${id}`;
}
