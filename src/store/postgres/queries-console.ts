/**
 * The hosts model: the console's queries over agents and their ingest tables (001_ingest.sql)
 * that the shared src/store/postgres/queries.ts does not cover: the sortable, searchable fleet
 * table, host detail, logs with a severity filter, inventory, activation tokens. Plain functions
 * taking `sql`; every filter is a parameter. Metric ranges come from queries.ts seriesRange.
 * Metric names follow the agent's collectors (agent/collect: cpu.usage_pct, mem.used_pct,
 * disk.used_pct{mount="/"}).
 *
 * Host scope: every function over host data takes a HostScope (src/auth/host-scope.ts) or a
 * ScopedHost. A ScopedHost is only returned by `findHost`/`listHosts`, which look the host up
 * within a scope, so a per-host query cannot be called for a host outside the caller's scope.
 */
import type { Sql } from "postgres";
import type { HostScope } from "../../auth/host-scope.ts";
import type { RangeStore, SeriesPoints } from "../range.ts";

/** The fleet page's columns: migration 545 stores these three of metric_latest as columns. */
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
  /** The distribution as the inventory names it ("Debian GNU/Linux 12 (bookworm)"), or null before the first inventory. */
  os_name: string | null;
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
  /** a page of the sorted list; no limit means every host */
  offset?: number;
  limit?: number;
}

function like(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** `and a.tags && <scope>` for a query over `agents a`; nothing when every host is in scope. */
export function inScope(sql: Sql, scope: HostScope) {
  return scope.tags === null ? sql`` : sql`and a.tags && ${[...scope.tags]}::text[]`;
}

/**
 * The fleet's hosts with their distribution (`i.os_name`: inventory_current's generated column,
 * migration 545, PRETTY_NAME else name and version) joined, not looked up host by host: a
 * correlated lookup ran once per host before the sort, detoasting each host's inventory document.
 */
function fleetFrom(sql: Sql) {
  return sql`agents a left join inventory_current i on i.agent_id = a.id`;
}

function fleetWhere(sql: Sql, scope: HostScope, q: Pick<FleetQuery, "search">) {
  return sql`where true
    ${q.search ? sql`and (a.hostname ilike ${like(q.search)} or ${q.search} = any(a.tags) or a.os ilike ${like(q.search)} or i.os_name ilike ${like(q.search)})` : sql``}
    ${inScope(sql, scope)}`;
}

export async function fleetOverview(sql: Sql, scope: HostScope, q: FleetQuery): Promise<FleetRow[]> {
  const order = {
    hostname: sql`a.hostname`,
    status: sql`coalesce(a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}), false)`,
    last_seen: sql`a.last_seen`,
    cpu: sql`cpu`,
    mem: sql`mem`,
    disk: sql`disk`,
    version: sql`a.agent_version`,
    transport: sql`a.transport`,
    os: sql`i.os_name`,
  }[q.sort ?? "hostname"];
  const rows = await sql<FleetRow[]>`
    select a.id, a.hostname, a.os, i.os_name, a.arch, a.agent_version, a.tags, a.transport, a.last_seen, a.revoked_at,
      coalesce(a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}), false) as online,
      l.cpu, l.mem, l.disk
    from ${fleetFrom(sql)} left join metric_latest l on l.agent_id = a.id
    ${fleetWhere(sql, scope, q)}
    order by ${order} ${q.desc ? sql`desc nulls last` : sql`asc nulls last`}, a.hostname, a.id
    ${q.limit === undefined ? sql`` : sql`limit ${q.limit}`} offset ${q.offset ?? 0}`;
  for (const r of rows) {
    r.id = Number(r.id);
    // a NaN sample stored as such (not as NULL) means "no value" too
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
export async function fleetSummary(sql: Sql, scope: HostScope, q: Pick<FleetQuery, "search">): Promise<FleetSummary> {
  const [r] = await sql`
    select count(*)::int as total,
      count(*) filter (where a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}))::int as online,
      count(*) filter (where a.revoked_at is not null)::int as revoked
    from ${fleetFrom(sql)} ${fleetWhere(sql, scope, q)}`;
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

declare const scoped: unique symbol;
/** A host found within a HostScope (only findHost/listHosts make one): per-host queries take it. */
export type ScopedHost = AgentDetail & { readonly [scoped]: HostScope };

const detailColumns = (sql: Sql) => sql`a.id, a.hostname, a.os, a.arch, a.agent_version, a.tags, a.enrolled_at, a.revoked_at, a.last_seen,
  a.transport, a.status, coalesce(a.revoked_at is null and a.last_seen > now() - make_interval(secs => ${ONLINE_WINDOW_S}), false) as online`;

/** One host (revoked ones too), or undefined when it does not exist or lies outside the scope. */
export async function findHost(sql: Sql, scope: HostScope, id: number): Promise<ScopedHost | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [a] = await sql<AgentDetail[]>`select ${detailColumns(sql)} from agents a where a.id = ${id} ${inScope(sql, scope)}`;
  return a ? ({ ...a, id: Number(a.id) } as ScopedHost) : undefined;
}

/** Every live (unrevoked) host in the scope, by id. */
export async function listHosts(sql: Sql, scope: HostScope): Promise<ScopedHost[]> {
  const rows = await sql<AgentDetail[]>`select ${detailColumns(sql)} from agents a where a.revoked_at is null ${inScope(sql, scope)} order by a.id limit 100000`;
  return rows.map((a) => ({ ...a, id: Number(a.id) }) as ScopedHost);
}

export async function seriesNames(sql: Sql, host: ScopedHost): Promise<string[]> {
  const rows = await sql`select name from metric_series where agent_id = ${host.id} order by name limit 5000`;
  return rows.map((r) => r.name as string);
}

/** One host's metric series over a range, from whichever tier `store` routes to. */
export function hostSeriesRange(store: RangeStore, host: ScopedHost, names: string[], from: Date, to: Date, maxPoints?: number): Promise<SeriesPoints[]> {
  return store.seriesRange(host.id, names, from, to, maxPoints);
}

/** A host's latest value of every metric it reports (metric_latest), or undefined before its first report. */
export async function latestMetrics(sql: Sql, host: ScopedHost): Promise<{ ts: Date; values: Record<string, number | null> } | undefined> {
  const [r] = await sql`select ts, names, vals from metric_latest where agent_id = ${host.id}`;
  if (!r) return undefined;
  const values: Record<string, number | null> = {};
  (r.names as string[]).forEach((n, i) => {
    const v = (r.vals as number[])[i];
    values[n] = v === undefined || v === null || Number.isNaN(v) ? null : v;
  });
  return { ts: r.ts, values };
}

export interface LogRow {
  ts: Date;
  severity: number;
  source: string;
  message: string;
}

export async function hostLogs(sql: Sql, host: ScopedHost, opts: { search?: string; since: Date; minSeverity?: number; limit: number }): Promise<LogRow[]> {
  return sql<LogRow[]>`
    select ts, severity, source, message from logs
    where agent_id = ${host.id} and ts >= ${opts.since}
      ${opts.search ? sql`and message ilike ${like(opts.search)}` : sql``}
      ${opts.minSeverity !== undefined ? sql`and severity <= ${opts.minSeverity}` : sql``}
    order by ts desc limit ${opts.limit}`;
}

export async function inventory(sql: Sql, host: ScopedHost): Promise<{ collected_at: Date; data: unknown } | undefined> {
  const [r] = await sql`select collected_at, data from inventory_current where agent_id = ${host.id}`;
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

/** Activation tokens; the host that used one is named only when it lies in the scope. */
export async function listActivationTokens(sql: Sql, scope: HostScope): Promise<TokenRow[]> {
  const rows = await sql<TokenRow[]>`
    select t.id, t.label, t.created_by, t.created_at, t.expires_at, t.used_at,
      a.id as used_by_agent, a.hostname as used_by_hostname, t.revoked_at
    from activation_tokens t left join agents a on a.id = t.used_by_agent ${inScope(sql, scope)}
    order by t.created_at desc limit 200`;
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

export async function revokeActivationToken(sql: Sql, id: number): Promise<boolean> {
  const r = await sql`update activation_tokens set revoked_at = now() where id = ${id} and revoked_at is null and used_at is null`;
  return r.count === 1;
}

export async function revokeAgent(sql: Sql, host: ScopedHost): Promise<boolean> {
  const r = await sql`update agents set revoked_at = now() where id = ${host.id} and revoked_at is null`;
  return r.count === 1;
}

/** Host tags, set in the console; roles scope hosts by them ("group:<name>" for host groups). */
export async function setAgentTags(sql: Sql, host: ScopedHost, tags: string[]): Promise<void> {
  await sql`update agents set tags = ${tags}::text[] where id = ${host.id}`;
}
