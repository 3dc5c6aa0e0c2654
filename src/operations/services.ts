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
import { listHosts, type ScopedHost } from "../store/postgres/queries-console.ts";
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

/** One command to one host: recorded, signed, delivered, recorded again, audited. */
async function run(deps: ServiceOpsDeps, who: Requester, host: ScopedHost, op: ServiceKind, unit: string, runId: string, extra: Record<string, unknown> = {}, o: { skipOffline?: boolean } = {}): Promise<ServiceOutcome> {
  const { sql } = deps;
  const requestedBy = `${who.type}:${who.id} ${who.name}`;
  const [row] = await sql<{ id: number }[]>`insert into service_operations (run_id, agent_id, unit, op, requested_by)
    values (${runId}, ${host.id}, ${unit}, ${op}, ${requestedBy}) returning id`;
  const args: Record<string, unknown> = op === "list" ? {} : op === "status" ? { unit, ...extra } : { unit, op };
  let commandId: string | null = null;
  let r: Record<string, unknown>;
  if (o.skipOffline && host.last_seen && !host.online) {
    // a group run does not wait out the delivery timeout for agents that went silent (one never
    // seen may just have connected without shipping data yet: it is tried)
    r = { ok: false, error: `the agent is offline (last seen ${new Date(host.last_seen).toISOString()}); nothing was sent` };
  } else {
    // the command's own audit record is the service_operation one written below
    const { cmd, result } = await commandHost({ ...deps, audit: () => {} }, who, host, ACTION[op], args);
    commandId = cmd.id;
    r = (result && typeof result === "object" ? result : { ok: false, error: "the agent gave no result" }) as Record<string, unknown>;
  }
  const ok = r.ok === true;
  const error = ok ? null : String(r.error ?? "failed");
  await sql`update service_operations set command_id = ${commandId}, status = ${ok ? "ok" : "failed"}, error = ${error}, finished_at = now(),
    result = ${sql.json(summary(op, r) as any)} where id = ${row!.id}`;
  await deps.audit({
    action: `service.${op}`,
    target: `agent:${host.id}`,
    success: ok,
    details: { host: host.hostname, agentId: host.id, unit, op, result: ok ? "ok" : "failed", command: commandId, run: runId, ...(error ? { error } : {}) },
  });
  return { operation: Number(row!.id), host: { id: host.id, hostname: host.hostname }, unit, op, ok, error, result: r };
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
  if (!isServiceOp(op)) throw new ServiceRequestError("op must be one of start, stop, restart, reload, enable, disable");
  const u = checkedUnit(unit);
  if (!hosts.length) throw new ServiceRequestError("no host in this group is within your scope");
  if (hosts.length > MAX_GROUP_HOSTS) throw new ServiceRequestError(`a group run reaches at most ${MAX_GROUP_HOSTS} hosts; this group has ${hosts.length}`);
  const runId = randomUUID();
  const outcomes: ServiceOutcome[] = new Array(hosts.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < hosts.length; i = next++) outcomes[i] = await run(deps, who, hosts[i]!, op, u, runId, {}, { skipOffline: true });
  };
  await Promise.all(Array.from({ length: Math.min(GROUP_CONCURRENCY, hosts.length) }, worker));
  return { run: runId, outcomes };
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
