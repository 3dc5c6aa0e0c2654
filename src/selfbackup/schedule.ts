/**
 * Scheduled self-backups inside the server (docs/operations.md, "Backing up ServerMind"):
 *   SERVERMIND_SELF_BACKUP_DEST              directory or destination JSON file; unset = off
 *   SERVERMIND_SELF_BACKUP_PASSWORD_FILE     the repository password (or _PASSWORD); required when on
 *   SERVERMIND_SELF_BACKUP_INTERVAL_MINUTES  between runs (default 1440: daily); the first run one interval after start
 *   SERVERMIND_SELF_BACKUP_KEEP_LAST         after a run, forget all but the newest N self-backups and prune (default 0: keep all)
 * The repository must exist (`npm run backup -- init`). Runs never overlap; each is audited
 * (selfbackup.run, success or failure) and a failure is logged by message only. In a cluster,
 * set it on one node.
 */
import type { Sql } from "postgres";
import { forget, prune } from "../../agent/backup/prune.ts";
import { envInt, type Config } from "../config.ts";
import { audit } from "../audit/audit.ts";
import { destinationConfig, describeDestination, openDestination, openRepository, repositoryPassword } from "./repo.ts";
import type { DestinationConfig } from "../../agent/backup/destinations.ts";
import { backupNow } from "./run.ts";
import { SELF_HOST } from "./selfbackup.ts";

type Env = Record<string, string | undefined>;

export interface ScheduleConfig {
  dest: DestinationConfig;
  intervalMs: number;
  keepLast: number;
}

/** The schedule from the environment, or undefined when SERVERMIND_SELF_BACKUP_DEST is unset; bad values throw naming the variable. */
export function loadScheduleConfig(env: Env = process.env): ScheduleConfig | undefined {
  if (!env.SERVERMIND_SELF_BACKUP_DEST) return undefined;
  repositoryPassword(env); // fail at start, not at the first run
  return {
    dest: destinationConfig(undefined, env),
    intervalMs: envInt(env, "SERVERMIND_SELF_BACKUP_INTERVAL_MINUTES", 1440, 1, 60 * 24 * 31) * 60_000,
    keepLast: envInt(env, "SERVERMIND_SELF_BACKUP_KEEP_LAST", 0, 0, 100_000),
  };
}

export interface ScheduleDeps {
  config: Config;
  /** the database owner's pool (the dump reads every table) */
  sql: Sql;
  schedule: ScheduleConfig;
  env?: Env;
  log?: (line: string) => void;
}

export interface SelfBackupSchedule {
  /** one run now (skipped when one is running); resolves when it ends, never rejects */
  runNow(): Promise<void>;
  stop(): Promise<void>;
}

export function startSelfBackupSchedule(d: ScheduleDeps): SelfBackupSchedule {
  const log = d.log ?? ((l: string) => console.log(l));
  const env = d.env ?? process.env;
  const actor = { type: "system" as const, name: "selfbackup-schedule" };
  let running: Promise<void> | undefined;
  let stopped = false;

  const once = async () => {
    const dest = openDestination(d.schedule.dest);
    try {
      const repo = await openRepository(dest, env).catch(async (e) => {
        await audit(d.sql, { actor, userAgent: "servermind-server", category: "config_change", action: "selfbackup.run", success: false, details: { error: e instanceof Error ? e.message : String(e) } }).catch(() => {});
        throw e;
      });
      const r = await backupNow(repo, d.config, { actor, userAgent: "servermind-server", sql: d.sql, env });
      log(`self-backup: snapshot ${r.snapshot.id}, ${r.tables} tables, ${r.rows} rows, ${r.snapshot.stats.newBytes} new bytes, ${r.ms} ms`);
      if (d.schedule.keepLast > 0) {
        // the policy applies to the whole repository: keep self-backups in a repository of their own
        if ((await repo.dest.list("snapshots/")).length > d.schedule.keepLast) {
          const f = await forget(repo, { last: d.schedule.keepLast });
          const p = await prune(repo);
          log(`self-backup: forgot ${f.removed.length} snapshots, pruned ${p.deleted} chunks`);
        }
      }
    } catch (e) {
      log(`self-backup to ${describeDestination(d.schedule.dest)} failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      await dest.close?.().catch(() => {});
    }
  };
  const runNow = () => {
    if (stopped) return Promise.resolve();
    running ??= once().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void runNow(), d.schedule.intervalMs);
  log(`self-backup every ${Math.round(d.schedule.intervalMs / 60_000)} min to ${describeDestination(d.schedule.dest)} (host ${SELF_HOST})`);
  return {
    runNow,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
