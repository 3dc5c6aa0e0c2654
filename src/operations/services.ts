/**
 * Service operations on managed hosts: list units, one unit's status with its journal, and
 * start/stop/restart/reload/enable/disable, on one host or on every host of a tag. Each becomes
 * a command signed with the server's command key (src/security/issue.ts), delivered down the
 * agent's own connection to its Control process (agent/control/services/), recorded in
 * service_operations and audited as `service_operation` with host, unit, op and result. Hosts
 * come in as ScopedHosts (found within the requester's scope): nothing here widens a scope.
 */
import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { commandHost, type CommandDeps, type Requester } from "../security/issue.ts";
import { inScope, listHosts, type ScopedHost } from "../store/postgres/queries-console.ts";
import { readCommandOutput, type OutputLine } from "../cluster/command-output.ts";
import type { HostScope } from "../auth/host-scope.ts";
import { isDangerousOp, isServiceOp, normalizeUnit, type ServiceOp } from "../ingest/frame/service-commands.ts";

export { isDangerousOp, isServiceOp, normalizeUnit, SERVICE_OPS, type ServiceOp } from "../ingest/frame/service-commands.ts";

/** At most this many hosts in one group run, and this many commands in flight at once. */
export const MAX_GROUP_HOSTS = 500;
const GROUP_CONCURRENCY = 8;

export interface ServiceAuditEvent {
  action: string;
  target: string;
  success: boolean;
  details: Record<string, unknown>;
}

export interface ServiceOpsDeps extends Pick<CommandDeps, "sql" | "commandKey" | "dispatch" | "now"> {
  /** Writes the `service_operation` audit record (the console adds IP and user agent). */
  audit(e: ServiceAuditEvent): Promise<void> | void;
}

export type ServiceKind = "list" | "status" | ServiceOp;

export interface ServiceOutcome {
  operation: number;
  host: { id: number; hostname: string };
  unit: string;
  op: ServiceKind;
  ok: boolean;
  error: string | null;
  result: Record<string, unknown>;
}

export class ServiceRequestError extends Error {}

const ACTION: Record<ServiceKind, string> = {
  list: "service.list", status: "service.status",
  start: "service.action", stop: "service.action", restart: "service.action", reload: "service.action", enable: "service.action", disable: "service.action",
};

/** Records one operation before anything is sent: 'queued' (a group run's later hosts) or 'sent'. */
async function record(sql: Sql, who: Requester, host: ScopedHost, op: ServiceKind, unit: string, runId: string, status: "queued" | "sent", commandId: string | null): Promise<number> {
  const requestedBy = `${who.type}:${who.id} ${who.name}`;
  const [row] = await sql<{ id: number }[]>`insert into service_operations (run_id, agent_id, unit, op, requested_by, status, command_id)
    values (${runId}, ${host.id}, ${unit}, ${op}, ${requestedBy}, ${status}, ${commandId}) returning id`;
  return Number(row!.id);
}

/**
 * One command to one host: recorded (or its queued row taken), signed, delivered, recorded again,
 * audited. The command id is on the row from the moment it is sent, so its output
 * (command_output) can be read while it runs.
 */
async function run(deps: ServiceOpsDeps, who: Requester, host: ScopedHost, op: ServiceKind, unit: string, runId: string, extra: Record<string, unknown> = {}, o: { skipOffline?: boolean; rowId?: number; commandId?: string } = {}): Promise<ServiceOutcome> {
  const { sql } = deps;
  const args: Record<string, unknown> = op === "list" ? {} : op === "status" ? { unit, ...extra } : { unit, op };
  const offline = o.skipOffline && host.last_seen && !host.online;
  let commandId: string | null = offline ? null : o.commandId ?? randomUUID();
  let rowId = o.rowId;
  if (rowId === undefined) rowId = await record(sql, who, host, op, unit, runId, "sent", commandId);
  else if (commandId) await sql`update service_operations set status = 'sent', command_id = ${commandId} where id = ${rowId}`;
  let r: Record<string, unknown>;
  if (offline) {
    // a group run does not wait out the delivery timeout for agents that went silent (one never
    // seen may just have connected without shipping data yet: it is tried)
    r = { ok: false, error: `the agent is offline (last seen ${new Date(host.last_seen!).toISOString()}); nothing was sent` };
  } else {
    // the command's own audit record is the service_operation one written below
    const { cmd, result } = await commandHost({ ...deps, audit: () => {} }, who, host, ACTION[op], args, commandId!);
    commandId = cmd.id;
    r = (result && typeof result === "object" ? result : { ok: false, error: "the agent gave no result" }) as Record<string, unknown>;
  }
  const ok = r.ok === true;
  const error = ok ? null : String(r.error ?? "failed");
  await sql`update service_operations set command_id = ${commandId}, status = ${ok ? "ok" : "failed"}, error = ${error}, finished_at = now(),
    result = ${sql.json(summary(op, r) as any)} where id = ${rowId}`;
  await deps.audit({
    action: `service.${op}`,
    target: `agent:${host.id}`,
    success: ok,
    details: { host: host.hostname, agentId: host.id, unit, op, result: ok ? "ok" : "failed", command: commandId, run: runId, ...(error ? { error } : {}) },
  });
  return { operation: rowId, host: { id: host.id, hostname: host.hostname }, unit, op, ok, error, result: r };
}

/** What is kept of a result in the table: not the whole unit list. */
function summary(op: ServiceKind, r: Record<string, unknown>): Record<string, unknown> {
  if (op === "list") return { ok: r.ok, manager: r.manager ?? null, units: Array.isArray(r.units) ? r.units.length : 0, error: r.error ?? null };
  if (op === "status") {
    const s = (r.status ?? {}) as Record<string, unknown>;
    return { ok: r.ok, manager: r.manager ?? null, active: s.active ?? null, sub: s.sub ?? null, enabled: s.enabled ?? null, error: r.error ?? null };
  }
  return { ok: r.ok, manager: r.manager ?? null, exitCode: r.exitCode ?? null, timedOut: r.timedOut ?? false, output: String(r.output ?? "").slice(0, 4000), after: r.after ?? null, error: r.error ?? null };
}

function checkedUnit(unit: unknown): string {
  const u = normalizeUnit(unit);
  if (!u) throw new ServiceRequestError("unit must be a unit name of letters, digits and :_.@- (not starting with -), e.g. nginx.service");
  return u;
}

export function listServices(deps: ServiceOpsDeps, who: Requester, host: ScopedHost) {
  return run(deps, who, host, "list", "*", randomUUID());
}

export function serviceStatus(deps: ServiceOpsDeps, who: Requester, host: ScopedHost, unit: unknown, lines = 20) {
  return run(deps, who, host, "status", checkedUnit(unit), randomUUID(), { lines: Math.max(0, Math.min(200, Math.floor(lines) || 0)) });
}

export function serviceAction(deps: ServiceOpsDeps, who: Requester, host: ScopedHost, unit: unknown, op: unknown) {
  if (!isServiceOp(op)) throw new ServiceRequestError("op must be one of start, stop, restart, reload, enable, disable");
  return run(deps, who, host, op, checkedUnit(unit), randomUUID());
}

/**
 * Starts an op on one host and answers as soon as it is recorded and sent: `operation` is the
 * row to follow (its output and result, operationProgress); `done` settles with the outcome.
 */
export async function startServiceAction(deps: ServiceOpsDeps, who: Requester, host: ScopedHost, unit: unknown, op: unknown): Promise<{ operation: number; done: Promise<ServiceOutcome> }> {
  if (!isServiceOp(op)) throw new ServiceRequestError("op must be one of start, stop, restart, reload, enable, disable");
  const u = checkedUnit(unit);
  const runId = randomUUID();
  const commandId = randomUUID();
  const rowId = await record(deps.sql, who, host, op, u, runId, "sent", commandId);
  const done = run(deps, who, host, op, u, runId, {}, { rowId, commandId });
  done.catch(() => {});
  return { operation: rowId, done };
}

/** The live hosts of a group (a tag, or "*" for every host) within the scope. */
export async function groupHosts(sql: Sql, scope: HostScope, group: string): Promise<ScopedHost[]> {
  const g = group.trim();
  if (!g) return [];
  const hosts = await listHosts(sql, scope);
  return hosts.filter((h) => g === "*" || (h.tags ?? []).includes(g));
}

/**
 * One op on every given host, a few at a time; one outcome per host, in host order. Hosts seen
 * before but not within the online window fail at once ("offline", nothing sent) instead of each
 * holding a worker for the delivery timeout.
 */
export async function runOnHosts(deps: ServiceOpsDeps, who: Requester, hosts: ScopedHost[], unit: unknown, op: unknown): Promise<{ run: string; outcomes: ServiceOutcome[] }> {
  const started = await startOnHosts(deps, who, hosts, unit, op);
  return { run: started.run, outcomes: await started.done };
}

/**
 * A group run that answers once every host's row is recorded ('queued'): the console shows the
 * per-host table at once and fills it in as results arrive (runProgress); `done` settles with
 * one outcome per host, in host order.
 */
export async function startOnHosts(deps: ServiceOpsDeps, who: Requester, hosts: ScopedHost[], unit: unknown, op: unknown): Promise<{ run: string; done: Promise<ServiceOutcome[]> }> {
  if (!isServiceOp(op)) throw new ServiceRequestError("op must be one of start, stop, restart, reload, enable, disable");
  const u = checkedUnit(unit);
  if (!hosts.length) throw new ServiceRequestError("no host in this group is within your scope");
  if (hosts.length > MAX_GROUP_HOSTS) throw new ServiceRequestError(`a group run reaches at most ${MAX_GROUP_HOSTS} hosts; this group has ${hosts.length}`);
  const runId = randomUUID();
  const rows: number[] = [];
  for (const h of hosts) rows.push(await record(deps.sql, who, h, op, u, runId, "queued", null));
  const outcomes: ServiceOutcome[] = new Array(hosts.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < hosts.length; i = next++) outcomes[i] = await run(deps, who, hosts[i]!, op, u, runId, {}, { skipOffline: true, rowId: rows[i]! });
  };
  const done = Promise.all(Array.from({ length: Math.min(GROUP_CONCURRENCY, hosts.length) }, worker)).then(() => outcomes);
  done.catch(() => {});
  return { run: runId, done };
}

/** Whether an op needs the typed confirmation + re-authentication: critical units, or many hosts. */
export function needsConfirmation(unit: string, op: ServiceOp, hostCount: number): boolean {
  return hostCount > 1 || isDangerousOp(unit, op);
}

export interface ServiceOperationRow {
  id: number;
  run_id: string;
  unit: string;
  op: string;
  requested_by: string;
  requested_at: Date;
  status: string;
  error: string | null;
  result: Record<string, unknown> | null;
}

/** The latest operations on a host, newest first. */
export async function recentOperations(sql: Sql, host: ScopedHost, limit = 20): Promise<ServiceOperationRow[]> {
  const rows = await sql<ServiceOperationRow[]>`select id, run_id, unit, op, requested_by, requested_at, status, error, result
    from service_operations where agent_id = ${host.id} order by id desc limit ${Math.max(1, Math.min(200, limit))}`;
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

export interface OperationProgress {
  id: number;
  run: string;
  host: { id: number; hostname: string };
  unit: string;
  op: string;
  /** queued | sent (running) | ok | failed */
  status: string;
  finished: boolean;
  error: string | null;
  result: Record<string, unknown> | null;
  requestedAt: Date;
  finishedAt: Date | null;
  /** output lines after chunk `after`, and the last chunk number read (pass it back as `after`) */
  lines: OutputLine[];
  last: number;
}

/**
 * An operation not finished this long after it was asked for never will be (the server that
 * waited for it stopped; every wait is bounded at 60 s): it is shown failed, so nothing polls it
 * for ever.
 */
export const LOST_AFTER_S = 180;

const progressRow = (r: any) => {
  const lost = (r.status === "sent" || r.status === "queued") && r.lost === true;
  return {
    id: Number(r.id), run: r.run_id as string, host: { id: Number(r.agent_id), hostname: r.hostname as string }, unit: r.unit as string, op: r.op as string,
    status: lost ? "failed" : (r.status as string), finished: lost || r.status === "ok" || r.status === "failed",
    error: lost ? `no result within ${LOST_AFTER_S} s (the server waiting for it stopped)` : (r.error as string | null), result: r.result as Record<string, unknown> | null,
    requestedAt: r.requested_at as Date, finishedAt: r.finished_at as Date | null, commandId: r.command_id as string | null,
  };
};

/** One operation with its output so far, if its host lies within the scope (else undefined). */
export async function operationProgress(sql: Sql, scope: HostScope, id: number, after = -1): Promise<OperationProgress | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [row] = await sql`select o.*, a.hostname, o.requested_at < now() - make_interval(secs => ${LOST_AFTER_S}) as lost
    from service_operations o join agents a on a.id = o.agent_id where o.id = ${id} ${inScope(sql, scope)}`;
  if (!row) return undefined;
  const { commandId, ...p } = progressRow(row);
  const out = commandId ? await readCommandOutput(sql, commandId, Number.isFinite(after) ? Math.max(-1, Math.floor(after)) : -1) : { lines: [], last: after };
  return { ...p, lines: out.lines, last: out.last };
}

/** The rows of a group run whose hosts lie within the scope, in host order (none: unknown run). */
export async function runProgress(sql: Sql, scope: HostScope, run: string): Promise<Omit<OperationProgress, "lines" | "last">[]> {
  if (!/^[0-9a-f-]{36}$/.test(run)) return [];
  const rows = await sql`select o.*, a.hostname, o.requested_at < now() - make_interval(secs => ${LOST_AFTER_S}) as lost
    from service_operations o join agents a on a.id = o.agent_id where o.run_id = ${run} ${inScope(sql, scope)} order by o.id`;
  return rows.map((r) => {
    const { commandId: _, ...p } = progressRow(r);
    return p;
  });
}
