/**
 * Runs backup jobs ON managed hosts: each run, restore and destination test becomes a command
 * signed with the server's command key and delivered down the agent's own connection to its
 * Control process (agent/control/backups/). The command carries the destination's
 * configuration WITH its credentials and the repository password; those exist only inside the
 * signed command. What the server keeps of it (security_commands.args, the audit record, the run
 * row) never holds a secret. The host streams straight to the destination: the server sees
 * progress lines (command-output) and the final statistics.
 *
 * Each host of a job has its own repository: <destination>/job-<job id>/host-<agent id>.
 */
import { randomUUID, type KeyObject } from "node:crypto";
import type { Sql } from "postgres";
import type { SecretBox } from "../auth/secret-box.ts";
import { signCommand, type Command, type SignedCommand } from "../ingest/frame/commands.ts";
import type { Requester } from "../security/issue.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";
import { BackupRequestError, destinationConfigWithSecrets, type JobRow } from "./store.ts";

/** A backup or restore may run this long before the server stops waiting for its result. */
export const RUN_TIMEOUT_MS = 24 * 3600_000;
const TEST_TIMEOUT_MS = 60_000;

export interface BackupAuditEvent {
  action: string;
  target: string;
  success: boolean;
  details: Record<string, unknown>;
}

export interface BackupDeps {
  sql: Sql;
  box: SecretBox;
  commandKey: KeyObject;
  dispatch(agentId: number, command: SignedCommand, timeoutMs?: number): Promise<unknown>;
  /** Writes the `backup` audit record (the console adds IP and user agent; the scheduler acts as system). */
  audit(e: BackupAuditEvent): Promise<void> | void;
  now?: () => number;
}

/** The repository of one host of one job under the destination's own location. */
export function repositoryConfig(cfg: Record<string, unknown> & { type: string }, jobId: number, agentId: number): Record<string, unknown> {
  const sub = `job-${jobId}/host-${agentId}`;
  const join = (base: unknown) => `${String(base ?? "").replace(/\/+$/, "")}/${sub}`;
  if (cfg.type === "local") return { ...cfg, path: join(cfg.path) };
  if (cfg.type === "webdav") return { ...cfg, url: `${join(cfg.url)}/` };
  return { ...cfg, root: String(cfg.root ?? "") ? join(cfg.root) : sub };
}

/**
 * Signs, records (without secrets: `recorded` is what security_commands keeps) and delivers one
 * command; resolves with the agent's result. The command's row lets its output be stored while it
 * runs (command_output) and its answer reach whichever node waits for it.
 */
async function send(deps: BackupDeps, who: Requester, agentId: number, action: string, args: Record<string, unknown>, recorded: Record<string, unknown>, id: string, timeoutMs: number) {
  const now = deps.now?.() ?? Date.now();
  const cmd: Command = { v: 1, id, agentId, action, args, issuedMs: now, requestedBy: `${who.type}:${who.id} ${who.name}` };
  const signed = signCommand(cmd, deps.commandKey);
  await deps.sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at)
    values (${id}, ${agentId}, ${action}, ${deps.sql.json(recorded as any)}, ${cmd.requestedBy}, ${new Date(now)})`;
  let result: Record<string, unknown>;
  try {
    const r = await deps.dispatch(agentId, signed, timeoutMs);
    result = r && typeof r === "object" ? (r as Record<string, unknown>) : { ok: false, error: "the agent gave no result" };
  } catch (e) {
    result = { ok: false, error: `delivery failed: ${e instanceof Error ? e.message : e}` };
  }
  // the recovery key never stays on the command's row (another node may have stored it there), nor a re-fetched result's
  const { recoveryKey: _, ...kept } = result;
  if (kept.result && typeof kept.result === "object") {
    const { recoveryKey: __, ...inner } = kept.result as Record<string, unknown>;
    kept.result = inner;
  }
  await deps.sql`update security_commands set status = ${result.ok === true ? "ok" : "failed"}, result = ${deps.sql.json(kept as any)} where id = ${id}`;
  return result;
}

async function secretArgs(deps: BackupDeps, job: JobRow, repoAgent: number) {
  const [row] = await deps.sql`select password_sealed, dump_password_sealed from backup_jobs where id = ${job.id}`;
  if (!row) throw new BackupRequestError("no such job");
  const destination = repositoryConfig(await destinationConfigWithSecrets(deps.sql, deps.box, job.destination_id), job.id, repoAgent);
  return { destination, password: deps.box.open(row.password_sealed), dumpPassword: row.dump_password_sealed ? deps.box.open(row.dump_password_sealed) : "" };
}

const who2text = (who: Requester) => `${who.type}:${who.id} ${who.name}`;

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? Math.round(v) : null);

interface BackupContext {
  run: number;
  job: Pick<JobRow, "id" | "name">;
  host: { id: number; hostname: string };
  trigger: string;
  init: boolean;
  commandId: string;
}

/**
 * Records a backup's result on its run, once: the waiter that sent the command and the
 * reconciler (a result fetched again after a restart) may both get it; only the first records,
 * seals a recovery key and writes the audit record. True when this call recorded it.
 */
export async function finishBackup(deps: BackupDeps, c: BackupContext, r: Record<string, unknown>): Promise<boolean> {
  const { sql } = deps;
  const ok = r.ok === true;
  const recovery = typeof r.recoveryKey === "string" ? deps.box.seal(r.recoveryKey) : null;
  const rows = await sql`update backup_runs set status = ${ok ? "ok" : "failed"}, finished_at = now(), snapshot = ${typeof r.snapshot === "string" ? r.snapshot : null},
    files = ${num(r.files)}, bytes_read = ${num(r.bytes)}, new_bytes = ${num(r.newBytes)}, stored_bytes = ${num(r.storedBytes)}, repo_bytes = ${num(r.repoBytes)},
    duration_ms = ${num(r.ms) ?? sql`(extract(epoch from now() - started_at) * 1000)::bigint`}, error = ${ok ? null : String(r.error ?? "failed").slice(0, 4000)},
    details = ${sql.json({ retention: r.retention ?? null, newChunks: num(r.newChunks), ...(r.recovered ? { recovered: r.recovered } : {}) } as any)}, recovery_key_sealed = ${recovery}
    where id = ${c.run} and status = 'running' returning 1`;
  if (!rows.length) return false;
  if (ok && c.init) await sql`update backup_jobs set initialized_agents = array_append(initialized_agents, ${c.host.id}::bigint) where id = ${c.job.id} and not (${c.host.id}::bigint = any(initialized_agents))`;
  await deps.audit({
    action: "backup.run", target: `agent:${c.host.id}`, success: ok,
    details: { job: c.job.id, jobName: c.job.name, host: c.host.hostname, agentId: c.host.id, run: c.run, trigger: c.trigger, command: c.commandId, snapshot: r.snapshot ?? null,
      bytes: num(r.bytes), newBytes: num(r.newBytes), ...(c.init && ok ? { repositoryCreated: true } : {}), ...(r.recovered ? { recovered: r.recovered } : {}), ...(ok ? {} : { error: String(r.error ?? "failed").slice(0, 500) }) },
  });
  return true;
}

interface RestoreContext {
  run: number;
  job: Pick<JobRow, "id" | "name">;
  target: { id: number; hostname: string };
  commandId: string;
  details: Record<string, unknown>;
}

/** Records a restore's result on its run, once (see finishBackup). */
export async function finishRestore(deps: BackupDeps, c: RestoreContext, r: Record<string, unknown>): Promise<boolean> {
  const { sql } = deps;
  const ok = r.ok === true;
  const rows = await sql`update backup_runs set status = ${ok ? "ok" : "failed"}, finished_at = now(), files = ${num(r.files)}, bytes_read = ${num(r.bytes)},
    duration_ms = ${num(r.ms) ?? sql`(extract(epoch from now() - started_at) * 1000)::bigint`}, error = ${ok ? null : String(r.error ?? "failed").slice(0, 4000)}
    where id = ${c.run} and status = 'running' returning 1`;
  if (!rows.length) return false;
  await deps.audit({
    action: "backup.restore", target: `agent:${c.target.id}`, success: ok,
    details: { job: c.job.id, jobName: c.job.name, host: c.target.hostname, agentId: c.target.id, run: c.run, command: c.commandId, ...c.details, files: num(r.files), bytes: num(r.bytes),
      ...(r.recovered ? { recovered: r.recovered } : {}), ...(ok ? {} : { error: String(r.error ?? "failed").slice(0, 500) }) },
  });
  return true;
}

export interface Started {
  run: number;
  done: Promise<Record<string, unknown>>;
}

/** Starts one backup of a job on one of its hosts; answers once the run is recorded and the command sent. */
export async function startBackup(deps: BackupDeps, who: Requester, job: JobRow, host: ScopedHost, trigger: "manual" | "schedule"): Promise<Started> {
  const { sql } = deps;
  const s = await secretArgs(deps, job, host.id);
  const commandId = randomUUID();
  const [row] = await sql`insert into backup_runs (job_id, agent_id, kind, trigger, command_id, requested_by, requested_by_user)
    values (${job.id}, ${host.id}, 'backup', ${trigger}, ${commandId}, ${who2text(who)}, ${who.type === "user" && typeof who.id === "number" ? who.id : null}) returning id`;
  const run = Number(row!.id);
  const init = !job.initialized_agents.includes(host.id);
  const args = {
    job: job.id, run, destination: s.destination, password: s.password, init, paths: job.paths, excludes: job.excludes,
    dump: job.dump ? { ...job.dump, port: job.dump.port ?? undefined, host: job.dump.host || undefined, user: job.dump.user || undefined, password: s.dumpPassword || undefined } : null,
    keep: job.keep,
  };
  const recorded = { job: job.id, run, destination: job.destination_id, paths: job.paths, excludes: job.excludes, dump: job.dump ? { kind: job.dump.kind, database: job.dump.database } : null, keep: job.keep, init };
  const done = (async () => {
    const r = await send(deps, who, host.id, "backup.run", args, recorded, commandId, RUN_TIMEOUT_MS);
    // the server stops before the answer came: the run stays running, its result is fetched again (reconcileRuns)
    if (r.unanswered !== true) await finishBackup(deps, { run, job, host, trigger, init, commandId }, r);
    return r;
  })();
  done.catch(() => {});
  return { run, done };
}

export interface RestoreRequest {
  job: JobRow;
  /** the host whose repository holds the snapshot */
  source: ScopedHost;
  /** the host to restore onto (the source, or another host the job reaches) */
  target: ScopedHost;
  snapshot: string;
  /** "/" restores over the original location */
  targetPath: string;
  include: string[];
}

export async function startRestore(deps: BackupDeps, who: Requester, q: RestoreRequest): Promise<Started> {
  const { sql } = deps;
  if (!/^([0-9a-f]{32}|latest)$/.test(q.snapshot)) throw new BackupRequestError("snapshot must be a snapshot id or latest");
  const s = await secretArgs(deps, q.job, q.source.id);
  const commandId = randomUUID();
  const details = { snapshot: q.snapshot, target: q.targetPath, include: q.include, source: { id: q.source.id, hostname: q.source.hostname } };
  const [row] = await sql`insert into backup_runs (job_id, agent_id, kind, trigger, command_id, requested_by, requested_by_user, snapshot, details)
    values (${q.job.id}, ${q.target.id}, 'restore', 'manual', ${commandId}, ${who2text(who)}, ${who.type === "user" && typeof who.id === "number" ? who.id : null},
      ${q.snapshot}, ${sql.json(details as any)}) returning id`;
  const run = Number(row!.id);
  const args = { job: q.job.id, run, destination: s.destination, password: s.password, snapshot: q.snapshot, target: q.targetPath, include: q.include };
  const recorded = { job: q.job.id, run, destination: q.job.destination_id, ...details };
  const done = (async () => {
    const r = await send(deps, who, q.target.id, "backup.restore", args, recorded, commandId, RUN_TIMEOUT_MS);
    if (r.unanswered !== true) await finishRestore(deps, { run, job: q.job, target: q.target, commandId, details }, r);
    return r;
  })();
  done.catch(() => {});
  return { run, done };
}

/** Reaches a destination FROM a host (write, read back, delete one object); nothing is recorded as a run. */
export async function testDestination(deps: BackupDeps, who: Requester, destinationId: number, host: ScopedHost): Promise<Record<string, unknown>> {
  const cfg = await destinationConfigWithSecrets(deps.sql, deps.box, destinationId);
  const r = await send(deps, who, host.id, "backup.test", { destination: cfg }, { destination: destinationId }, randomUUID(), TEST_TIMEOUT_MS);
  await deps.audit({ action: "backup.destination.test", target: `backup_destination:${destinationId}`, success: r.ok === true, details: { destination: destinationId, host: host.hostname, agentId: host.id, ...(r.ok === true ? {} : { error: String(r.error ?? "failed").slice(0, 500) }) } });
  return r;
}

export interface BrowseRequest {
  job: JobRow;
  /** the host whose repository holds the snapshot */
  source: ScopedHost;
  /** the host whose agent reads the repository (the host a restore would land on) */
  via: ScopedHost;
  snapshot: string;
  /** an absolute directory as backed up */
  path: string;
}

/**
 * One directory level of a snapshot, read by a host's agent from the destination (a signed
 * `backup.ls`, like a restore): the server never reads the destination itself. Not a run.
 */
export async function browseSnapshot(deps: BackupDeps, who: Requester, q: BrowseRequest): Promise<Record<string, unknown>> {
  if (!/^([0-9a-f]{32}|latest)$/.test(q.snapshot)) throw new BackupRequestError("snapshot must be a snapshot id or latest");
  if (!q.path.startsWith("/") || q.path.split("/").includes("..") || q.path.length > 4096) throw new BackupRequestError("path must be an absolute path without ..");
  const s = await secretArgs(deps, q.job, q.source.id);
  const args = { job: q.job.id, destination: s.destination, password: s.password, snapshot: q.snapshot, path: q.path };
  const recorded = { job: q.job.id, destination: q.job.destination_id, snapshot: q.snapshot, path: q.path, source: q.source.id };
  return send(deps, who, q.via.id, "backup.ls", args, recorded, randomUUID(), TEST_TIMEOUT_MS);
}

/** Runs without a waiter are asked about at most this often (each ask is one signed command). */
export const RECONCILE_EVERY_MS = 5 * 60_000;
const RECONCILE_TIMEOUT_MS = 15_000;
const asked = new Map<number, number>();

export interface ReconcileOptions {
  /** only runs started longer ago than this (a fresh run's waiter is alive; default 2 minutes) */
  olderThanMs?: number;
  /** runs to leave alone (default none: a run this process still waits for may have lost its answer with a broken stream) */
  skip?: (run: number) => boolean;
  /** ask again about one run after this long (default RECONCILE_EVERY_MS) */
  everyMs?: number;
}

/**
 * After a server restart nobody waits for the result of a run that was going on, and after a
 * broken stream the waiter waits for an answer that went down a dead connection. The host keeps
 * the result (sealed with the repository password, agent/control/backups/results.ts); this asks
 * the host for it (`backup.result`) about every run still running after `olderThanMs`, at most
 * every `everyMs` each, and records it as the waiter would have, recovery key included (shown
 * once, as always); whichever of waiter and reconciler gets it first records it. A host still
 * running it answers "running" (asked again later); one with no record of it (its agent
 * restarted mid-run) makes the run failed. Returns the runs settled.
 */
export async function reconcileRuns(deps: BackupDeps, o: ReconcileOptions = {}): Promise<number[]> {
  const { sql } = deps;
  const now = deps.now?.() ?? Date.now();
  const skip = o.skip ?? (() => false);
  const every = o.everyMs ?? RECONCILE_EVERY_MS;
  for (const [run, at] of asked) if (now - at >= every) asked.delete(run);
  // runs asked about lately are left out in SQL, so stuck runs of offline hosts cannot hide the others
  const exclude = [...asked.keys()];
  const rows = await sql`select r.id, r.job_id, r.agent_id, r.kind, r.trigger, r.command_id, r.details, j.name as job_name, j.password_sealed, a.hostname, c.args as command_args
    from backup_runs r join backup_jobs j on j.id = r.job_id join agents a on a.id = r.agent_id left join security_commands c on c.id = r.command_id
    where r.status = 'running' and r.started_at < ${new Date(now - (o.olderThanMs ?? 120_000))} and not (r.id = any(${exclude}::bigint[]))
    order by r.id limit 20`;
  const system: Requester = { type: "system", id: "backup-reconciler", name: "backup reconciler" };
  // asked at once, each bounded (an offline host answers nothing within RECONCILE_TIMEOUT_MS)
  const settled = await Promise.all(rows.filter((row) => !skip(Number(row.id))).map(async (row) => {
    const run = Number(row.id);
    asked.set(run, now);
    const job = { id: Number(row.job_id), name: String(row.job_name) };
    const host = { id: Number(row.agent_id), hostname: String(row.hostname) };
    const password = deps.box.open(row.password_sealed);
    const a = await send(deps, system, host.id, "backup.result", { job: job.id, run, password }, { job: job.id, run }, randomUUID(), RECONCILE_TIMEOUT_MS);
    if (a.ok !== true || (a.state !== "done" && a.state !== "unknown")) return null; // unreachable, or still running: later
    const recovered = a.state === "done" ? "the result was fetched again from the host after the server lost its answer" : undefined;
    const r = a.state === "done" && a.result && typeof a.result === "object" ? { ...(a.result as Record<string, unknown>), recovered }
      : { ok: false, error: "the host has no result of this run: its agent restarted while it ran, or the command never reached it" };
    const commandId = String(row.command_id ?? "");
    const won = row.kind === "restore"
      ? await finishRestore(deps, { run, job, target: host, commandId, details: row.details ?? {} }, r)
      : await finishBackup(deps, { run, job, host, trigger: String(row.trigger), init: row.command_args?.init === true, commandId }, r);
    asked.delete(run);
    if (a.state === "done") await send(deps, system, host.id, "backup.result", { job: job.id, run, password, forget: true }, { job: job.id, run, forget: true }, randomUUID(), RECONCILE_TIMEOUT_MS);
    return won ? run : null;
  }));
  return settled.filter((x): x is number => x !== null);
}
