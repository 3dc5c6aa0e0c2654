/**
 * One audited self-backup run against the configured database: the CLI's `run` (which opens the
 * database as its owner, sharing a running server's embedded PostgreSQL) and the server's
 * schedule (which passes its owner pool) both come here. The audit record (action
 * selfbackup.run) carries the snapshot id and sizes, or the failure's message.
 */
import type { Sql } from "postgres";
import { join } from "node:path";
import type { Repository } from "../../agent/backup/repository.ts";
import { audit, type AuditEvent } from "../audit/audit.ts";
import { loadAuditKeys, useAuditKeys } from "../audit/keys.ts";
import type { Config } from "../config.ts";
import { createPgClient } from "../store/postgres/client.ts";
import { runSelfBackup, type SelfBackupResult } from "./selfbackup.ts";

export interface RunOptions {
  actor: AuditEvent["actor"];
  userAgent: string;
  /** the database owner's pool; without it one is opened (and closed) for this run */
  sql?: Sql;
  env?: Record<string, string | undefined>;
}

export async function backupNow(repo: Repository, config: Config, o: RunOptions): Promise<SelfBackupResult> {
  let sql = o.sql;
  let embedded: { stop(): Promise<void> } | undefined;
  if (!sql) {
    useAuditKeys(loadAuditKeys(config.dataDir), config.dataDir);
    let url = config.databaseUrl;
    if (!url) {
      const { startEmbeddedPg } = await import("../store/postgres/embedded.ts");
      const pg = await startEmbeddedPg({ dataDir: join(config.dataDir, "pg"), shareRunning: true });
      embedded = pg;
      url = pg.url;
    }
    sql = createPgClient(url, 2);
  }
  const env = o.env ?? process.env;
  const record = (success: boolean, details: Record<string, unknown>, target = "") =>
    audit(sql!, { actor: o.actor, userAgent: o.userAgent, category: "config_change", action: "selfbackup.run", target, success, details });
  try {
    const r = await runSelfBackup(repo, {
      dataDir: config.dataDir, sql, database: config.databaseUrl ? "external" : "embedded",
      external: { "tls-cert": config.tlsCert, "tls-key": config.tlsKey, license: env.SERVERMIND_LICENSE_FILE ?? "" },
    });
    await record(true, { repository: repo.config.id, tables: r.tables, rows: r.rows, files: r.files, ms: r.ms, new_bytes: r.snapshot.stats.newBytes, stored_bytes: r.snapshot.stats.storedBytes }, `snapshot ${r.snapshot.id}`);
    return r;
  } catch (e) {
    await record(false, { repository: repo.config.id, error: e instanceof Error ? e.message : String(e) }).catch(() => {});
    throw e;
  } finally {
    if (!o.sql) {
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    }
  }
}
