/**
 * Backup destinations, jobs and runs in PostgreSQL (migration 510). Secrets (destination
 * credentials, the repository password, a database dump's password, a recovery key until it is
 * shown) are sealed with the server's SecretBox; the functions that return rows for display never
 * return them, only whether one is set.
 */
import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import type { SecretBox } from "../auth/secret-box.ts";
import type { HostScope } from "../auth/host-scope.ts";
import { inScope } from "../store/postgres/queries-console.ts";

export class BackupRequestError extends Error {}

export const DESTINATION_TYPES = ["local", "sftp", "webdav", "ftp", "smb", "s3", "gcs", "b2", "r2", "wasabi", "azure"] as const;
export type DestinationType = (typeof DESTINATION_TYPES)[number];
/** The fields of a destination's configuration that are secrets (agent/backup/destinations.ts). */
export const SECRET_FIELDS = ["password", "privateKey", "passphrase", "secretAccessKey", "sessionToken", "accountKey", "sasToken"] as const;

export interface DestinationRow {
  id: number;
  name: string;
  type: DestinationType;
  /** without secrets */
  config: Record<string, unknown>;
  /** the secret fields that hold a value (never the value) */
  secretsSet: string[];
  created_by: string;
  updated_at: Date;
}

const num = (v: unknown) => Number(v);

function destRow(box: SecretBox, r: any): DestinationRow {
  let secretsSet: string[] = [];
  if (r.secrets_sealed) {
    try {
      secretsSet = Object.keys(JSON.parse(box.open(r.secrets_sealed)));
    } catch {
      secretsSet = [];
    }
  }
  return { id: num(r.id), name: r.name, type: r.type, config: r.config ?? {}, secretsSet, created_by: r.created_by, updated_at: r.updated_at };
}

export async function listDestinations(sql: Sql, box: SecretBox): Promise<DestinationRow[]> {
  const rows = await sql`select * from backup_destinations order by name`;
  return rows.map((r) => destRow(box, r));
}

export async function getDestination(sql: Sql, box: SecretBox, id: number): Promise<DestinationRow | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [r] = await sql`select * from backup_destinations where id = ${id}`;
  return r ? destRow(box, r) : undefined;
}

/** The whole configuration with its secrets: only for the signed command. */
export async function destinationConfigWithSecrets(sql: Sql, box: SecretBox, id: number): Promise<Record<string, unknown> & { type: DestinationType }> {
  const [r] = await sql`select type, config, secrets_sealed from backup_destinations where id = ${id}`;
  if (!r) throw new BackupRequestError("no such destination");
  const secrets = r.secrets_sealed ? (JSON.parse(box.open(r.secrets_sealed)) as Record<string, string>) : {};
  return { ...(r.config as Record<string, unknown>), ...secrets, type: r.type };
}

const NAME = /^[\p{L}\p{N} _.:@-]{1,80}$/u;

/** Checks a configuration (without secrets) for its type; returns it cleaned. */
export function checkDestinationConfig(type: string, config: unknown): Record<string, unknown> {
  if (!(DESTINATION_TYPES as readonly string[]).includes(type)) throw new BackupRequestError(`type must be one of ${DESTINATION_TYPES.join(", ")}`);
  if (!config || typeof config !== "object" || Array.isArray(config)) throw new BackupRequestError("settings must be a JSON object");
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config as Record<string, unknown>)) {
    if (!/^[A-Za-z][A-Za-z0-9]{0,40}$/.test(k) || k === "type") throw new BackupRequestError(`bad setting name ${JSON.stringify(k).slice(0, 50)}`);
    if ((SECRET_FIELDS as readonly string[]).includes(k)) throw new BackupRequestError(`${k} is a secret: give it in its own field, not in the settings`);
    if (!(typeof v === "string" || typeof v === "number" || typeof v === "boolean")) throw new BackupRequestError(`setting ${k} must be a string, number or boolean`);
    if (typeof v === "string" && v.length > 20_000) throw new BackupRequestError(`setting ${k} is too long`);
    out[k] = v;
  }
  const need: Record<DestinationType, string[]> = {
    local: ["path"], sftp: ["host", "username", "root"], webdav: ["url"], ftp: ["host", "username", "root"], smb: ["host", "share", "username"], s3: ["endpoint", "bucket", "accessKeyId"],
    gcs: ["bucket", "accessKeyId"], b2: ["region", "bucket", "accessKeyId"], r2: ["accountId", "bucket", "accessKeyId"], wasabi: ["region", "bucket", "accessKeyId"], azure: ["account", "container"],
  };
  for (const k of need[type as DestinationType]) if (out[k] === undefined || out[k] === "") throw new BackupRequestError(`a ${type} destination needs ${k}`);
  if (type === "local" && !(typeof out.path === "string" && out.path.startsWith("/"))) throw new BackupRequestError("path must be an absolute path on the host");
  return out;
}

export interface DestinationInput {
  id?: number;
  name: string;
  type: string;
  config: unknown;
  /** new secret values; a field left out (or "") keeps the stored one; `clear` removes fields */
  secrets: Record<string, string>;
  clear?: string[];
}

export async function saveDestination(sql: Sql, box: SecretBox, by: string, d: DestinationInput): Promise<number> {
  const name = d.name.trim();
  if (!NAME.test(name)) throw new BackupRequestError("name: 1-80 letters, digits, spaces and _.:@-");
  const config = checkDestinationConfig(d.type, d.config);
  let secrets: Record<string, string> = {};
  if (d.id) {
    const [old] = await sql`select secrets_sealed from backup_destinations where id = ${d.id}`;
    if (!old) throw new BackupRequestError("no such destination");
    if (old.secrets_sealed) secrets = JSON.parse(box.open(old.secrets_sealed));
  }
  for (const f of SECRET_FIELDS) {
    const v = d.secrets[f];
    if (typeof v === "string" && v !== "") secrets[f] = v;
    if (d.clear?.includes(f)) delete secrets[f];
  }
  const sealed = Object.keys(secrets).length ? box.seal(JSON.stringify(secrets)) : "";
  try {
    if (d.id) {
      await sql`update backup_destinations set name = ${name}, type = ${d.type}, config = ${sql.json(config as any)}, secrets_sealed = ${sealed}, updated_at = now() where id = ${d.id}`;
      return d.id;
    }
    const [r] = await sql`insert into backup_destinations (name, type, config, secrets_sealed, created_by) values (${name}, ${d.type}, ${sql.json(config as any)}, ${sealed}, ${by}) returning id`;
    return num(r!.id);
  } catch (e) {
    if ((e as { code?: string }).code === "23505") throw new BackupRequestError(`a destination named ${name} exists`);
    throw e;
  }
}

export async function deleteDestination(sql: Sql, id: number): Promise<boolean> {
  const [used] = await sql`select count(*)::int as n from backup_jobs where destination_id = ${id}`;
  if (used!.n > 0) throw new BackupRequestError(`${used!.n} job(s) use this destination; delete or change them first`);
  const r = await sql`delete from backup_destinations where id = ${id} returning 1`;
  return r.length > 0;
}

export type Schedule = { kind: "manual" } | { kind: "interval"; minutes: number } | { kind: "daily"; at: string };

export interface DumpSettings {
  kind: "postgres" | "mysql";
  host: string;
  port: number | null;
  user: string;
  database: string;
}

export interface JobRow {
  id: number;
  name: string;
  enabled: boolean;
  agent_id: number | null;
  hostname: string | null;
  host_tag: string | null;
  paths: string[];
  excludes: string[];
  dump: DumpSettings | null;
  dumpPasswordSet: boolean;
  schedule: Schedule;
  keep: { last: number; daily: number; weekly: number; monthly: number };
  destination_id: number;
  destination: string;
  initialized_agents: number[];
  next_run_at: Date | null;
  /** the tags of the job's host (a one-host job) */
  hostTags: string[];
}

function jobRow(r: any): JobRow {
  return {
    id: num(r.id), name: r.name, enabled: r.enabled, agent_id: r.agent_id === null ? null : num(r.agent_id), hostname: r.hostname ?? null, host_tag: r.host_tag,
    paths: r.paths, excludes: r.excludes, dump: r.dump, dumpPasswordSet: !!r.dump_password_sealed, schedule: r.schedule,
    keep: { last: r.keep_last, daily: r.keep_daily, weekly: r.keep_weekly, monthly: r.keep_monthly },
    destination_id: num(r.destination_id), destination: r.destination, initialized_agents: (r.initialized_agents ?? []).map(num), next_run_at: r.next_run_at,
    hostTags: r.host_tags ?? [],
  };
}

const JOB_SELECT = (sql: Sql) => sql`select j.*, a.hostname, coalesce(a.tags, '{}') as host_tags, d.name as destination from backup_jobs j
  join backup_destinations d on d.id = j.destination_id left join agents a on a.id = j.agent_id`;

/**
 * Jobs, all of them for an unrestricted scope; a scoped user sees the jobs of hosts in scope and
 * the tag jobs of tags in scope (a tag job outside the scope reaches no host the user may see).
 */
export async function listJobs(sql: Sql, scope: HostScope): Promise<JobRow[]> {
  const rows = await sql`${JOB_SELECT(sql)} order by j.name`;
  return rows.map(jobRow).filter((j) => jobVisible(j, scope));
}

/** Whether a user with this scope may see the job (its host, or its tag, lies in the scope). */
export function jobVisible(j: JobRow, scope: HostScope): boolean {
  return scope.covers(j.host_tag ? [j.host_tag] : j.hostTags);
}

export async function getJob(sql: Sql, id: number): Promise<JobRow | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [r] = await sql`${JOB_SELECT(sql)} where j.id = ${id}`;
  return r ? jobRow(r) : undefined;
}

/** Whether the job reaches this host (its own host, or a host carrying its tag). */
export function jobCovers(job: JobRow, host: { id: number; tags: readonly string[] }): boolean {
  return job.agent_id !== null ? job.agent_id === host.id : host.tags.includes(job.host_tag!);
}

function checkPath(p: string, what: string): string {
  const t = p.trim();
  if (!t.startsWith("/") || t.includes("\0") || t.split("/").includes("..") || t.length > 4096) throw new BackupRequestError(`${what} ${JSON.stringify(t).slice(0, 80)} must be an absolute path without ..`);
  return t.length > 1 ? t.replace(/\/+$/, "") : t;
}

export function checkSchedule(kind: string, minutes: unknown, at: unknown): Schedule {
  if (kind === "" || kind === "manual") return { kind: "manual" };
  if (kind === "interval") {
    const m = Number(minutes);
    if (!Number.isInteger(m) || m < 5 || m > 44_640) throw new BackupRequestError("interval: every 5 to 44640 minutes");
    return { kind, minutes: m };
  }
  if (kind === "daily") {
    if (typeof at !== "string" || !/^([01]\d|2[0-3]):[0-5]\d$/.test(at)) throw new BackupRequestError("daily: a time HH:MM (UTC)");
    return { kind, at };
  }
  throw new BackupRequestError("schedule must be manual, interval or daily");
}

/** The next time a schedule is due after `from` (null: manual). */
export function nextRun(s: Schedule, from: Date): Date | null {
  if (s.kind === "interval") return new Date(from.getTime() + s.minutes * 60_000);
  if (s.kind === "daily") {
    const [h, m] = s.at.split(":").map(Number);
    const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate(), h, m));
    if (d <= from) d.setUTCDate(d.getUTCDate() + 1);
    return d;
  }
  return null;
}

export interface JobInput {
  id?: number;
  name: string;
  enabled: boolean;
  agentId: number | null;
  hostTag: string | null;
  paths: string[];
  excludes: string[];
  dump: { kind: string; host: string; port: string; user: string; database: string } | null;
  dumpPassword: string;
  schedule: Schedule;
  keep: { last: number; daily: number; weekly: number; monthly: number };
  destinationId: number;
}

export async function saveJob(sql: Sql, box: SecretBox, by: string, j: JobInput): Promise<number> {
  const name = j.name.trim();
  if (!NAME.test(name)) throw new BackupRequestError("name: 1-80 letters, digits, spaces and _.:@-");
  if ((j.agentId === null) === (j.hostTag === null)) throw new BackupRequestError("a job backs up one host or the hosts of one tag");
  if (j.hostTag !== null && !/^[\w:.@-]{1,100}$/.test(j.hostTag)) throw new BackupRequestError("bad host tag");
  const paths = j.paths.filter((p) => p.trim()).map((p) => checkPath(p, "path")).slice(0, 100);
  const excludes = j.excludes.map((e) => e.trim()).filter((e) => e && e.length <= 1000).slice(0, 200);
  let dump: DumpSettings | null = null;
  if (j.dump && j.dump.kind) {
    if (j.dump.kind !== "postgres" && j.dump.kind !== "mysql") throw new BackupRequestError("dump must be postgres or mysql");
    if (!/^[A-Za-z0-9_.$-]{1,63}$/.test(j.dump.database)) throw new BackupRequestError("dump: a database name");
    const port = j.dump.port ? Number(j.dump.port) : null;
    if (port !== null && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new BackupRequestError("dump: bad port");
    const plain = (s: string, what: string) => {
      const t = s.trim();
      if (t.startsWith("-") || t.length > 255 || /\s/.test(t)) throw new BackupRequestError(`dump: bad ${what}`);
      return t;
    };
    dump = { kind: j.dump.kind, host: plain(j.dump.host, "host"), port, user: plain(j.dump.user, "user"), database: j.dump.database };
  }
  if (!paths.length && !dump) throw new BackupRequestError("a job backs up at least one path or a database");
  for (const k of ["last", "daily", "weekly", "monthly"] as const) {
    if (!Number.isInteger(j.keep[k]) || j.keep[k] < 0 || j.keep[k] > 10_000) throw new BackupRequestError(`keep ${k}: 0 to 10000`);
  }
  const [dest] = await sql`select 1 from backup_destinations where id = ${j.destinationId}`;
  if (!dest) throw new BackupRequestError("no such destination");
  if (j.agentId !== null) {
    const [a] = await sql`select 1 from agents where id = ${j.agentId} and revoked_at is null`;
    if (!a) throw new BackupRequestError("no such host");
  }
  const next = nextRun(j.schedule, new Date());
  try {
    if (j.id) {
      const [old] = await sql`select dump_password_sealed from backup_jobs where id = ${j.id}`;
      if (!old) throw new BackupRequestError("no such job");
      const dumpPw = j.dumpPassword ? box.seal(j.dumpPassword) : dump ? old.dump_password_sealed : "";
      await sql`update backup_jobs set name = ${name}, enabled = ${j.enabled}, agent_id = ${j.agentId}, host_tag = ${j.hostTag}, paths = ${paths}, excludes = ${excludes},
        dump = ${dump ? sql.json(dump as any) : null}, dump_password_sealed = ${dumpPw}, schedule = ${sql.json(j.schedule as any)},
        keep_last = ${j.keep.last}, keep_daily = ${j.keep.daily}, keep_weekly = ${j.keep.weekly}, keep_monthly = ${j.keep.monthly},
        destination_id = ${j.destinationId}, next_run_at = ${next}, updated_at = now() where id = ${j.id}`;
      return j.id;
    }
    // the repository password: generated here, sealed, sent only inside the signed command
    const password = box.seal(randomBytes(32).toString("base64url"));
    const [r] = await sql`insert into backup_jobs (name, enabled, agent_id, host_tag, paths, excludes, dump, dump_password_sealed, schedule,
        keep_last, keep_daily, keep_weekly, keep_monthly, destination_id, password_sealed, next_run_at, created_by)
      values (${name}, ${j.enabled}, ${j.agentId}, ${j.hostTag}, ${paths}, ${excludes}, ${dump ? sql.json(dump as any) : null}, ${j.dumpPassword ? box.seal(j.dumpPassword) : ""},
        ${sql.json(j.schedule as any)}, ${j.keep.last}, ${j.keep.daily}, ${j.keep.weekly}, ${j.keep.monthly}, ${j.destinationId}, ${password}, ${next}, ${by}) returning id`;
    return num(r!.id);
  } catch (e) {
    if ((e as { code?: string }).code === "23505") throw new BackupRequestError(`a job named ${name} exists`);
    throw e;
  }
}

export async function deleteJob(sql: Sql, id: number): Promise<boolean> {
  const [running] = await sql`select count(*)::int as n from backup_runs where job_id = ${id} and status = 'running' and started_at > now() - interval '25 hours'`;
  if (running!.n > 0) throw new BackupRequestError("the job is running; delete it when the run is over");
  const r = await sql`delete from backup_jobs where id = ${id} returning 1`;
  return r.length > 0;
}

export interface RunRow {
  id: number;
  job_id: number;
  job: string;
  agent_id: number;
  hostname: string;
  kind: "backup" | "restore";
  trigger: string;
  command_id: string | null;
  requested_by: string;
  requested_by_user: number | null;
  started_at: Date;
  finished_at: Date | null;
  status: "running" | "ok" | "failed";
  snapshot: string | null;
  files: number | null;
  bytes_read: number | null;
  new_bytes: number | null;
  stored_bytes: number | null;
  repo_bytes: number | null;
  duration_ms: number | null;
  error: string | null;
  details: Record<string, unknown>;
  hasRecoveryKey: boolean;
}

/** A run not finished this long after it started never will be (the server waiting for it stopped). */
export const LOST_AFTER_H = 25;

const big = (v: unknown) => (v === null || v === undefined ? null : Number(v));
function runRow(r: any): RunRow {
  const lost = r.status === "running" && r.lost === true;
  return {
    id: num(r.id), job_id: num(r.job_id), job: r.job, agent_id: num(r.agent_id), hostname: r.hostname, kind: r.kind, trigger: r.trigger, command_id: r.command_id,
    requested_by: r.requested_by, requested_by_user: big(r.requested_by_user), started_at: r.started_at, finished_at: r.finished_at,
    status: lost ? "failed" : r.status, snapshot: r.snapshot, files: big(r.files), bytes_read: big(r.bytes_read), new_bytes: big(r.new_bytes), stored_bytes: big(r.stored_bytes),
    repo_bytes: big(r.repo_bytes), duration_ms: big(r.duration_ms), error: lost ? `no result within ${LOST_AFTER_H} hours (the server waiting for it stopped)` : r.error,
    details: r.details ?? {}, hasRecoveryKey: !!r.recovery_key_sealed,
  };
}

const RUN_SELECT = (sql: Sql) => sql`select r.*, j.name as job, a.hostname, r.started_at < now() - make_interval(hours => ${LOST_AFTER_H}) as lost
  from backup_runs r join backup_jobs j on j.id = r.job_id join agents a on a.id = r.agent_id`;

/** Runs on hosts within the scope, newest first. */
export async function listRuns(sql: Sql, scope: HostScope, o: { job?: number; limit?: number } = {}): Promise<RunRow[]> {
  const rows = await sql`${RUN_SELECT(sql)} where true ${o.job ? sql`and r.job_id = ${o.job}` : sql``} ${inScope(sql, scope)}
    order by r.id desc limit ${Math.max(1, Math.min(500, o.limit ?? 50))}`;
  return rows.map(runRow);
}

export async function getRun(sql: Sql, scope: HostScope, id: number): Promise<RunRow | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [r] = await sql`${RUN_SELECT(sql)} where r.id = ${id} ${inScope(sql, scope)}`;
  return r ? runRow(r) : undefined;
}

/** Takes the run's recovery key out of the database (it is shown once, then it is gone). */
export async function takeRecoveryKey(sql: Sql, box: SecretBox, runId: number): Promise<string | null> {
  const [r] = await sql`with old as (select id, recovery_key_sealed from backup_runs where id = ${runId} and recovery_key_sealed is not null for update)
    update backup_runs r set recovery_key_sealed = null from old where r.id = old.id returning old.recovery_key_sealed`;
  return r ? box.open(r.recovery_key_sealed) : null;
}

/** Successful backup snapshots of a job on a host, newest first (what a restore may name). */
export async function jobSnapshots(sql: Sql, jobId: number, agentId: number, limit = 100) {
  const rows = await sql`select id, snapshot, finished_at, files, bytes_read from backup_runs
    where job_id = ${jobId} and agent_id = ${agentId} and kind = 'backup' and status = 'ok' and snapshot is not null order by id desc limit ${limit}`;
  return rows.map((r) => ({ run: num(r.id), snapshot: r.snapshot as string, finished_at: r.finished_at as Date, files: big(r.files), bytes: big(r.bytes_read) }));
}
