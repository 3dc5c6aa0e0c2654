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
  // the recovery key never stays on the command's row (another node may have stored it there)
  const { recoveryKey: _, ...kept } = result;
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
    const ok = r.ok === true;
    const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? Math.round(v) : null);
    const recovery = typeof r.recoveryKey === "string" ? deps.box.seal(r.recoveryKey) : null;
    await sql`update backup_runs set status = ${ok ? "ok" : "failed"}, finished_at = now(), snapshot = ${typeof r.snapshot === "string" ? r.snapshot : null},
      files = ${n(r.files)}, bytes_read = ${n(r.bytes)}, new_bytes = ${n(r.newBytes)}, stored_bytes = ${n(r.storedBytes)}, repo_bytes = ${n(r.repoBytes)},
      duration_ms = ${n(r.ms) ?? sql`(extract(epoch from now() - started_at) * 1000)::bigint`}, error = ${ok ? null : String(r.error ?? "failed").slice(0, 4000)},
      details = ${sql.json({ retention: r.retention ?? null, newChunks: n(r.newChunks) } as any)}, recovery_key_sealed = ${recovery} where id = ${run}`;
    if (ok && init) await sql`update backup_jobs set initialized_agents = array_append(initialized_agents, ${host.id}::bigint) where id = ${job.id} and not (${host.id}::bigint = any(initialized_agents))`;
    await deps.audit({
      action: "backup.run", target: `agent:${host.id}`, success: ok,
      details: { job: job.id, jobName: job.name, host: host.hostname, agentId: host.id, run, trigger, command: commandId, snapshot: r.snapshot ?? null,
        bytes: n(r.bytes), newBytes: n(r.newBytes), ...(init && ok ? { repositoryCreated: true } : {}), ...(ok ? {} : { error: String(r.error ?? "failed").slice(0, 500) }) },
    });
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
    const ok = r.ok === true;
    const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? Math.round(v) : null);
    await sql`update backup_runs set status = ${ok ? "ok" : "failed"}, finished_at = now(), files = ${n(r.files)}, bytes_read = ${n(r.bytes)},
      duration_ms = ${n(r.ms) ?? sql`(extract(epoch from now() - started_at) * 1000)::bigint`}, error = ${ok ? null : String(r.error ?? "failed").slice(0, 4000)} where id = ${run}`;
    await deps.audit({
      action: "backup.restore", target: `agent:${q.target.id}`, success: ok,
      details: { job: q.job.id, jobName: q.job.name, host: q.target.hostname, agentId: q.target.id, run, command: commandId, ...details, files: n(r.files), bytes: n(r.bytes), ...(ok ? {} : { error: String(r.error ?? "failed").slice(0, 500) }) },
    });
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
