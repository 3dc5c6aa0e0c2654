/**
 * Compliance posture: CIS scan results arrive as `cis.scan` security events (kind 4); this module
 * folds them into the latest verdict per host and control, opens, refreshes and resolves
 * violations, and answers the posture dashboard (pass rates per control across the fleet,
 * violations with who acknowledged or resolved them, export). Parameterized SQL only.
 * Console reads and actions take a HostScope or a ScopedHost/ScopedViolation (found within one);
 * recordScan/consumeScanEvents are the ingest side (data an agent sent about itself).
 */
import type { Sql, TransactionSql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import { findHost, inScope, type ScopedHost } from "../store/postgres/queries-console.ts";

export type Verdict = "pass" | "fail" | "notapplicable" | "error";

export interface ScanResultRow {
  id: string;
  status: Verdict;
  severity: number;
  category: string;
  observed?: string;
}

export interface ScanData {
  platform?: string | null;
  os?: string;
  results: ScanResultRow[];
}

const VERDICTS = new Set(["pass", "fail", "notapplicable", "error"]);
const MAX_RESULTS = 2000;

/** Stores one scan; returns how many violations were opened and resolved. */
export async function recordScan(sql: Sql, agentId: number, scannedAt: Date, scan: ScanData): Promise<{ opened: number; resolved: number }> {
  // one verdict per control, the last one reported: a scan naming a control twice would make
  // the upserts below touch one row twice, which PostgreSQL refuses (21000) for the whole scan
  const byControl = new Map<string, ScanResultRow>();
  for (const r of Array.isArray(scan.results) ? scan.results : []) if (r && typeof r.id === "string" && VERDICTS.has(r.status)) byControl.set(r.id, r);
  const rows = [...byControl.values()].slice(0, MAX_RESULTS);
  const count = (s: Verdict) => rows.filter((r) => r.status === s).length;
  return sql.begin(async (tx) => {
    await tx`insert into cis_scans (agent_id, scanned_at, platform, os, passed, failed, not_applicable, errors)
      values (${agentId}, ${scannedAt}, ${scan.platform ?? null}, ${scan.os ?? ""}, ${count("pass")}, ${count("fail")}, ${count("notapplicable")}, ${count("error")})`;
    return applyResults(tx, agentId, scannedAt, rows);
  });
}

/**
 * The verdicts Control re-checked right after it applied or rolled back a remediation (its
 * answer's `verdicts`): the host's CIS results and violations follow at once instead of at the
 * next scan. Only controls the host already has results for change (a scan gave them their
 * severity and category); it is no scan, so cis_scans gets no row.
 */
export async function recordVerdicts(sql: Sql, host: ScopedHost, verdicts: Record<string, unknown>, at: Date, note: string): Promise<number> {
  const ids = Object.keys(verdicts).filter((id) => VERDICTS.has(String(verdicts[id]))).slice(0, MAX_RESULTS);
  if (!ids.length) return 0;
  const known = await sql`select control_id, severity, category from cis_results where agent_id = ${host.id} and control_id = any(${ids}::text[])`;
  const rows: ScanResultRow[] = known.map((r) => ({
    id: String(r.control_id), status: verdicts[String(r.control_id)] as Verdict, severity: Number(r.severity), category: String(r.category), observed: note,
  }));
  if (!rows.length) return 0;
  await sql.begin((tx) => applyResults(tx, host.id, at, rows));
  return rows.length;
}

async function applyResults(tx: TransactionSql, agentId: number, scannedAt: Date, rows: ScanResultRow[]): Promise<{ opened: number; resolved: number }> {
  if (!rows.length) return { opened: 0, resolved: 0 };
  const ids = rows.map((r) => r.id);
  const statuses = rows.map((r) => r.status);
  const severities = rows.map((r) => Math.max(0, Math.min(10, Math.round(Number(r.severity) || 0))));
  const categories = rows.map((r) => String(r.category ?? ""));
  const observed = rows.map((r) => String(r.observed ?? "").slice(0, 1000));
  // Older scans arriving late never overwrite newer verdicts.
  await tx`insert into cis_results (agent_id, control_id, status, severity, category, observed, scanned_at)
    select ${agentId}, u.id, u.status, u.sev, u.cat, u.obs, ${scannedAt}
    from unnest(${ids}::text[], ${statuses}::text[], ${severities}::int2[], ${categories}::text[], ${observed}::text[]) as u(id, status, sev, cat, obs)
    on conflict (agent_id, control_id) do update set status = excluded.status, severity = excluded.severity, category = excluded.category,
      observed = excluded.observed, scanned_at = excluded.scanned_at
    where cis_results.scanned_at <= excluded.scanned_at`;
  const failing = rows.filter((r) => r.status === "fail");
  const opened = await tx`insert into cis_violations (agent_id, control_id, severity, observed, first_seen, last_seen)
    select ${agentId}, u.id, u.sev, u.obs, ${scannedAt}, ${scannedAt}
    from unnest(${failing.map((r) => r.id)}::text[], ${failing.map((r) => Math.max(0, Math.min(10, Math.round(Number(r.severity) || 0))))}::int2[], ${failing.map((r) => String(r.observed ?? "").slice(0, 1000))}::text[]) as u(id, sev, obs)
    on conflict (agent_id, control_id) where resolved_at is null
    do update set last_seen = greatest(cis_violations.last_seen, excluded.last_seen), observed = excluded.observed
    returning (xmax = 0) as inserted`;
  const passing = rows.filter((r) => r.status === "pass" || r.status === "notapplicable").map((r) => r.id);
  // Who resolved it: the last applied remediation of that control since it opened, else the scan.
  const resolved = await tx`update cis_violations v set resolved_at = ${scannedAt}, resolved_by = coalesce((
      select 'remediation by ' || c.requested_by from security_commands c
      where c.agent_id = v.agent_id and c.action = 'cis.remediate' and c.status <> 'failed' and c.args->>'dryRun' = 'false'
        and c.args->'controls' ? v.control_id and c.issued_at >= v.first_seen and c.issued_at <= ${scannedAt}
      order by c.issued_at desc limit 1), 'scan')
    where v.agent_id = ${agentId} and v.resolved_at is null and v.control_id = any(${passing}::text[]) and v.first_seen <= ${scannedAt}
    returning v.id`;
  return { opened: opened.filter((r) => r.inserted).length, resolved: resolved.length };
}

/**
 * Reads `cis.scan` events that arrived since the last call (per agent, by batch id) and records
 * them. Call it on an interval or after ingest commits; it is idempotent.
 */
export async function consumeScanEvents(sql: Sql, limit = 500): Promise<number> {
  const rows = await sql`
    select e.agent_id, e.batch_id, e.ts, e.data
    from security_events e
    left join security_consumer_offsets o on o.consumer = 'posture' and o.agent_id = e.agent_id
    where e.type = 'cis.scan' and e.batch_id > coalesce(o.batch_id, 0)
    order by e.agent_id, e.batch_id, e.ts
    limit ${limit}`;
  for (const r of rows) {
    await recordScan(sql, Number(r.agent_id), new Date(r.ts), (r.data ?? { results: [] }) as ScanData);
    await sql`insert into security_consumer_offsets (consumer, agent_id, batch_id) values ('posture', ${r.agent_id}, ${r.batch_id})
      on conflict (consumer, agent_id) do update set batch_id = greatest(security_consumer_offsets.batch_id, excluded.batch_id)`;
  }
  return rows.length;
}

declare const scopedViolation: unique symbol;
/** A violation whose host lies in a HostScope (only findViolation makes one). */
export interface ScopedViolation {
  id: number;
  host: ScopedHost;
  readonly [scopedViolation]: true;
}

/** A violation by id, with its host, or undefined when it does not exist or its host is out of scope. */
export async function findViolation(sql: Sql, scope: HostScope, id: number): Promise<ScopedViolation | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [v] = await sql`select agent_id from cis_violations where id = ${id}`;
  const host = v ? await findHost(sql, scope, Number(v.agent_id)) : undefined;
  return host ? ({ id, host } as ScopedViolation) : undefined;
}

export async function acknowledgeViolation(sql: Sql, v: ScopedViolation, by: string, note: string): Promise<boolean> {
  const r = await sql`update cis_violations set acknowledged_at = now(), acknowledged_by = ${by}, ack_note = ${note.slice(0, 2000)}
    where id = ${v.id} and agent_id = ${v.host.id} and acknowledged_at is null returning id`;
  return r.length === 1;
}

/** One violation as the list shows it (with its hostname). */
export async function violationRow(sql: Sql, v: ScopedViolation) {
  const [row] = await sql`select v.*, a.hostname from cis_violations v join agents a on a.id = v.agent_id where v.id = ${v.id} and v.agent_id = ${v.host.id}`;
  return row;
}

export interface ControlPassRate {
  control_id: string;
  category: string;
  severity: number;
  hosts: number;
  passed: number;
  failed: number;
  pass_rate: number | null;
}

export async function controlPassRates(sql: Sql, scope: HostScope): Promise<ControlPassRate[]> {
  const rows = await sql`
    select r.control_id, max(r.category) as category, max(r.severity)::int as severity,
      count(*) filter (where r.status in ('pass', 'fail'))::int as hosts,
      count(*) filter (where r.status = 'pass')::int as passed,
      count(*) filter (where r.status = 'fail')::int as failed
    from cis_results r join agents a on a.id = r.agent_id and a.revoked_at is null ${inScope(sql, scope)}
    group by r.control_id order by r.control_id`;
  return rows.map((r) => ({ ...(r as any), pass_rate: r.hosts ? r.passed / r.hosts : null }));
}

export interface ViolationFilter {
  agentId?: number;
  open?: boolean;
  limit?: number;
}

export async function listViolations(sql: Sql, scope: HostScope, f: ViolationFilter = {}) {
  const limit = Math.min(f.limit ?? 500, 5000);
  return sql`
    select v.id, v.agent_id, a.hostname, a.tags, v.control_id, v.severity, v.observed, v.first_seen, v.last_seen,
      v.acknowledged_at, v.acknowledged_by, v.ack_note, v.resolved_at, v.resolved_by
    from cis_violations v join agents a on a.id = v.agent_id
    where (${f.agentId ?? null}::bigint is null or v.agent_id = ${f.agentId ?? null})
      and (${f.open ?? null}::boolean is null or (v.resolved_at is null) = ${f.open ?? null})
      ${inScope(sql, scope)}
    order by v.resolved_at is not null, v.severity desc, v.first_seen desc
    limit ${limit}`;
}

export async function hostResults(sql: Sql, host: ScopedHost) {
  return sql`select control_id, status, severity, category, observed, scanned_at from cis_results where agent_id = ${host.id} order by control_id`;
}

const csvCell = (v: unknown) => {
  const s = v instanceof Date ? v.toISOString() : v === null || v === undefined ? "" : String(v);
  // quote everything; neutralize spreadsheet formulas
  return `"${(/^[=+\-@\t\r]/.test(s) ? "'" + s : s).replace(/"/g, '""')}"`;
};

/** Violations (all in the scope, or one host's) as CSV or JSON for auditors. */
export async function exportPosture(sql: Sql, scope: HostScope, format: "csv" | "json", f: ViolationFilter = {}): Promise<string> {
  const rows = await listViolations(sql, scope, { ...f, limit: 5000 });
  if (format === "json") return JSON.stringify({ generatedAt: new Date().toISOString(), violations: rows, controls: await controlPassRates(sql, scope) });
  const cols = ["id", "hostname", "agent_id", "control_id", "severity", "observed", "first_seen", "last_seen", "acknowledged_at", "acknowledged_by", "ack_note", "resolved_at", "resolved_by"];
  return [cols.join(","), ...rows.map((r: any) => cols.map((c) => csvCell(r[c])).join(","))].join("\n") + "\n";
}

export interface AutoRemediationSetting {
  control_id: string;
  host_group: string;
  enabled: boolean;
  set_by: string;
  set_at: Date;
}

/**
 * The auto-remediation settings whose host group lies in the scope: all of them for an all-hosts
 * scope; for a tag scope, the settings of those tags (not "*" nor other groups).
 */
export async function listAutoRemediation(sql: Sql, scope: HostScope): Promise<AutoRemediationSetting[]> {
  return sql<AutoRemediationSetting[]>`select control_id, host_group, enabled, set_by, set_at from cis_auto_remediation
    ${scope.tags === null ? sql`` : sql`where host_group = any(${[...scope.tags]}::text[])`}
    order by control_id, host_group limit 5000`;
}

/** Switches auto-remediation of a control for a host group; false (nothing stored) when the group is outside the scope. */
export async function setAutoRemediation(sql: Sql, scope: HostScope, controlId: string, hostGroup: string, enabled: boolean, by: string): Promise<boolean> {
  if (!scope.coversGroup(hostGroup)) return false;
  await sql`insert into cis_auto_remediation (control_id, host_group, enabled, set_by) values (${controlId}, ${hostGroup}, ${enabled}, ${by})
    on conflict (control_id, host_group) do update set enabled = excluded.enabled, set_by = excluded.set_by, set_at = now()`;
  return true;
}
