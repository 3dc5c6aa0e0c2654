/**
 * Backing up ServerMind itself (issue 15): its database (a logical dump, ./pgdump.ts), and the
 * data directory's keys, certificates and secret files, into a backup repository
 * (agent/backup, docs/backup-format.md) — and rebuilding a fresh data directory from it.
 *
 * A run stages everything under `<data>/.selfbackup-staging-<random>` (mode 0700, removed
 * afterwards; its own name, so a CLI run beside the server's scheduled one cannot clobber it):
 *   manifest.json     what this backup is (format, ServerMind version, time, database kind)
 *   files/…           the data directory, less PostgreSQL's own files (pg/, pg.secret, pg.log…)
 *   external/<name>   TLS certificate, key and license kept outside the data directory, if any
 *   db/…              the database dump
 * and backs that folder up as one snapshot of host "servermind-self". Restore reverses it into
 * an empty directory: files (mode 0600, directories 0700), a new embedded PostgreSQL (or the
 * empty DATABASE_URL database) loaded from the dump, console sessions cleared, the restore
 * audited into the restored chain.
 */
import type { Sql } from "postgres";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { backup } from "../../agent/backup/backup.ts";
import { restore } from "../../agent/backup/restore.ts";
import type { Repository } from "../../agent/backup/repository.ts";
import type { Snapshot } from "../../agent/backup/snapshot.ts";
import { listSnapshots, loadSnapshot } from "../../agent/backup/snapshots.ts";
import { audit, type AuditEvent } from "../audit/audit.ts";
import { loadAuditKeys, useAuditKeys } from "../audit/keys.ts";
import { createPgClient } from "../store/postgres/client.ts";
import { dumpDatabase, loadDatabase } from "./pgdump.ts";
import { SelfBackupError } from "./error.ts";

/** The host name of every self-backup snapshot (a repository may hold other hosts' backups too). */
export const SELF_HOST = "servermind-self";
const STAGING = ".selfbackup-staging";
const RESTORING = ".selfbackup-restore";

/** Data-directory entries that are not backed up: PostgreSQL's own files (the dump replaces them), the one-time setup code, our own scratch. */
export function isExcluded(name: string): boolean {
  return name === "pg" || name.startsWith("pg.") || name === "setup-code" || name.startsWith(STAGING) || name === RESTORING;
}

export interface BackupManifest {
  format: "servermind-selfbackup";
  version: 1;
  serverVersion: string;
  time: string;
  database: "embedded" | "external";
  /** files kept outside the data directory, by role (tls-cert, tls-key, license): their original paths */
  external: Record<string, string>;
}

export interface SelfBackupSource {
  dataDir: string;
  /** the database owner's connection (reads every table) */
  sql: Sql;
  database: "embedded" | "external";
  /** files outside the data directory to include: role -> path (SERVERMIND_TLS_CERT/KEY, SERVERMIND_LICENSE_FILE) */
  external?: Record<string, string>;
}

export interface SelfBackupResult {
  snapshot: Snapshot;
  tables: number;
  rows: number;
  files: number;
  ms: number;
}

function serverVersion(): string {
  try {
    return String((JSON.parse(readFileSync(join(import.meta.dir, "../../package.json"), "utf8")) as { version: string }).version);
  } catch {
    return "unknown"; // a compiled server carries no package.json
  }
}

/** One self-backup run into `repo`. */
export async function runSelfBackup(repo: Repository, src: SelfBackupSource): Promise<SelfBackupResult> {
  const started = performance.now();
  const dataDir = resolve(src.dataDir);
  const staging = join(dataDir, `${STAGING}-${randomBytes(6).toString("hex")}`);
  mkdirSync(staging, { mode: 0o700 });
  try {
    let files = 0;
    mkdirSync(join(staging, "files"), { mode: 0o700 });
    for (const name of readdirSync(dataDir)) {
      if (isExcluded(name)) continue;
      cpSync(join(dataDir, name), join(staging, "files", name), { recursive: true, preserveTimestamps: true });
      files += countFiles(join(staging, "files", name));
    }
    const external: Record<string, string> = {};
    for (const [role, path] of Object.entries(src.external ?? {})) {
      if (!path || resolve(path).startsWith(`${dataDir}/`)) continue; // inside the data directory: already in files/
      mkdirSync(join(staging, "external"), { recursive: true, mode: 0o700 });
      cpSync(path, join(staging, "external", role));
      chmodSync(join(staging, "external", role), 0o600);
      external[role] = resolve(path);
      files++;
    }
    const dump = await dumpDatabase(src.sql, join(staging, "db"));
    const manifest: BackupManifest = {
      format: "servermind-selfbackup", version: 1, serverVersion: serverVersion(), time: new Date().toISOString(),
      database: src.database, external,
    };
    writeFileSync(join(staging, "manifest.json"), JSON.stringify(manifest, null, 1), { mode: 0o600 });
    const snapshot = await backup(repo, [staging], { host: SELF_HOST });
    return { snapshot, tables: dump.tables.length, rows: dump.tables.reduce((n, t) => n + t.rows, 0), files, ms: Math.round(performance.now() - started) };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function countFiles(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.isFile() ? 1 : 0;
  return readdirSync(path).reduce((n, name) => n + countFiles(join(path, name)), 0);
}

/** The self-backup snapshots in the repository, oldest first. */
export async function listSelfSnapshots(repo: Repository): Promise<Snapshot[]> {
  return (await listSnapshots(repo)).filter((s) => s.host === SELF_HOST);
}

async function pickSnapshot(repo: Repository, ref: string): Promise<Snapshot> {
  if (ref !== "latest") return await loadSnapshot(repo, ref);
  const last = (await listSelfSnapshots(repo)).at(-1);
  if (!last) throw new SelfBackupError("not_found", "the repository has no ServerMind self-backup");
  return last;
}

export interface RestoreTarget {
  /** the new, empty data directory */
  dataDir: string;
  /** an empty external database to load into; without it an embedded PostgreSQL is created under dataDir/pg */
  databaseUrl?: string;
  /** who restores, for the audit record */
  actor?: AuditEvent["actor"];
  log?: (line: string) => void;
}

export interface SelfRestoreResult {
  snapshot: Snapshot;
  manifest: BackupManifest;
  files: number;
  tables: number;
  rows: number;
  /** where files that lived outside the data directory were put, by role */
  external: Record<string, string>;
  ms: number;
}

/**
 * Rebuilds a data directory from a self-backup snapshot (`latest` or an id). Every chunk is
 * authenticated on the way (agent/backup/restore.ts): a damaged repository fails the restore
 * before anything is loaded.
 */
export async function restoreSelfBackup(repo: Repository, ref: string, target: RestoreTarget): Promise<SelfRestoreResult> {
  const started = performance.now();
  const log = target.log ?? (() => {});
  const dataDir = resolve(target.dataDir);
  if (existsSync(dataDir) && readdirSync(dataDir).length) throw new SelfBackupError("not_empty", `${dataDir} is not empty; restore into a new directory`);
  if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true, mode: 0o700 }); // an existing empty directory keeps its mode
  const snapshot = await pickSnapshot(repo, ref);
  if (snapshot.host !== SELF_HOST || snapshot.paths.length !== 1) throw new SelfBackupError("bad_format", `snapshot ${snapshot.id} is not a ServerMind self-backup`);
  const scratch = join(dataDir, RESTORING);
  try {
    log(`restoring snapshot ${snapshot.id} of ${snapshot.time}`);
    await restore(repo, snapshot.id, scratch);
    const root = join(scratch, snapshot.paths[0]!);
    const manifest = JSON.parse(readFileSync(join(root, "manifest.json"), "utf8")) as BackupManifest;
    if (manifest.format !== "servermind-selfbackup" || manifest.version !== 1) throw new SelfBackupError("bad_format", "not a ServerMind self-backup this version reads");

    let files = 0;
    for (const name of readdirSync(join(root, "files"))) {
      cpSync(join(root, "files", name), join(dataDir, name), { recursive: true, preserveTimestamps: true });
      files += tighten(join(dataDir, name));
    }
    const external: Record<string, string> = {};
    for (const role of Object.keys(manifest.external)) {
      mkdirSync(join(dataDir, "restored-external"), { recursive: true, mode: 0o700 });
      const to = join(dataDir, "restored-external", `${role}-${basename(manifest.external[role]!)}`);
      cpSync(join(root, "external", role), to);
      chmodSync(to, 0o600);
      external[role] = to;
      files++;
      log(`${role} was kept outside the data directory at ${manifest.external[role]}; restored to ${to}`);
    }

    let embedded: { stop(): Promise<void> } | undefined;
    let url = target.databaseUrl;
    if (!url) {
      const { startEmbeddedPg } = await import("../store/postgres/embedded.ts");
      const pg = await startEmbeddedPg({ dataDir: join(dataDir, "pg") });
      embedded = pg;
      url = pg.url;
      log(`new embedded PostgreSQL in ${join(dataDir, "pg")}`);
    }
    const sql = createPgClient(url, 2);
    try {
      const loaded = await loadDatabase(sql, join(root, "db"));
      log(`database loaded: ${loaded.tables} tables, ${loaded.rows} rows`);
      // sessions are not carried over: every browser signs in again on the restored server
      const ended = await sql`delete from console_sessions`;
      useAuditKeys(loadAuditKeys(dataDir), dataDir);
      await audit(sql, {
        actor: target.actor ?? { type: "system", name: "selfbackup" }, userAgent: "servermind-selfbackup", category: "config_change",
        action: "selfbackup.restore", target: `snapshot ${snapshot.id}`, success: true,
        details: { snapshot_time: snapshot.time, tables: loaded.tables, rows: loaded.rows, files, sessions_ended: ended.count },
      });
      return { snapshot, manifest, files, tables: loaded.tables, rows: loaded.rows, external, ms: Math.round(performance.now() - started) };
    } finally {
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Files 0600, directories 0700 (secrets and keys only readable by the server's user); returns the files seen. */
function tighten(path: string): number {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return 0;
  if (st.isDirectory()) {
    chmodSync(path, 0o700);
    return readdirSync(path).reduce((n, name) => n + tighten(join(path, name)), 0);
  }
  chmodSync(path, 0o600);
  return 1;
}
