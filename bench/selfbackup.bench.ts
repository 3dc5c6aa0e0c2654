/**
 * How long a self-backup and a disaster-recovery restore take for a database of a given size
 * (docs/operations.md, "Backing up ServerMind and disaster recovery"):
 *   bun bench/selfbackup.bench.ts [--rows N]    (default 1 000 000 metric block rows)
 * An embedded PostgreSQL in a temporary directory, migrated, with N rows in metric_blocks (one
 * series, one sample each); a full backup to a local
 * repository, a second (incremental) run, then a restore into a fresh data directory (new
 * cluster, dump loaded). Prints one JSON line last.
 */
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { migrate } from "../src/store/postgres/migrate.ts";
import { generateAuditKeys, useAuditKeys } from "../src/audit/keys.ts";
import { LocalDestination } from "../agent/backup/local.ts";
import { Repository } from "../agent/backup/repository.ts";
import { runSelfBackup, restoreSelfBackup } from "../src/selfbackup/selfbackup.ts";
import { readdirSync, statSync } from "node:fs";

const du = (p: string): number => {
  const st = statSync(p);
  return st.isDirectory() ? readdirSync(p).reduce((n, f) => n + du(join(p, f)), 0) : st.size;
};
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const rows = arg("--rows", 1_000_000);
const root = mkdtempSync(join(tmpdir(), "servermind-selfbackup-bench-"));
chmodSync(root, 0o755); // as root, the embedded cluster runs as user postgres, which must reach it
const dataDir = join(root, "data");
mkdirSync(join(dataDir, "secrets"), { recursive: true, mode: 0o755 });
writeFileSync(join(dataDir, "secrets", "audit-hmac.key"), `${Buffer.from(generateAuditKeys().hmacKey).toString("base64")}\n`, { mode: 0o600 });
useAuditKeys(generateAuditKeys());
const pg = await startEmbeddedPg({ dataDir: join(dataDir, "pg") });
const sql = createPgClient(pg.url, 2);
try {
  await migrate(sql);
  let t = performance.now();
  await sql`
    insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals)
    select 1, g, now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval, '{0}', array[g % 500], array[random() * 100]
    from generate_series(1, ${rows}) g`;
  const fill = Math.round(performance.now() - t);
  const [{ size }] = await sql`select pg_database_size(current_database())::bigint as size`;
  const repoDir = join(root, "repo");
  const { repo } = await Repository.init(new LocalDestination(repoDir), "bench password");
  const full = await runSelfBackup(repo, { dataDir, sql, database: "embedded" });
  await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (1, 0, now(), now(), '{0}', '{1}', '{1}')`;
  const incr = await runSelfBackup(repo, { dataDir, sql, database: "embedded" });
  await sql.end({ timeout: 5 });
  await pg.stop();
  const newDir = join(root, "restored");
  mkdirSync(newDir, { mode: 0o755 });
  t = performance.now();
  const restored = await restoreSelfBackup(repo, "latest", { dataDir: newDir });
  const restoreMs = Math.round(performance.now() - t);
  console.log(JSON.stringify({
    rows, fill_ms: fill, database_bytes: Number(size), dump_bytes: full.snapshot.stats.bytes,
    backup_ms: full.ms, incremental_ms: incr.ms, incremental_new_bytes: incr.snapshot.stats.newBytes,
    repo_bytes: du(repoDir), restore_ms: restoreMs, restored_rows: restored.rows,
  }));
} finally {
  await sql.end({ timeout: 1 }).catch(() => {});
  await pg.stop().catch(() => {});
  rmSync(root, { recursive: true, force: true });
}
