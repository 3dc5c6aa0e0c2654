/**
 * The server's scheduled self-backup (src/selfbackup/schedule.ts) on the test PostgreSQL and a
 * local repository: runs are audited, keep-last forgets and prunes, a failing run is audited
 * and logged without the password, and bad settings fail at start naming the variable.
 */
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase } from "../support/db.ts";
import { loadConfig } from "../../src/config.ts";
import { generateAuditKeys, useAuditKeys } from "../../src/audit/keys.ts";
import { LocalDestination } from "../../agent/backup/local.ts";
import { Repository } from "../../agent/backup/repository.ts";
import { listSnapshots } from "../../agent/backup/snapshots.ts";
import { verify } from "../../agent/backup/verify.ts";
import { loadScheduleConfig, startSelfBackupSchedule } from "../../src/selfbackup/schedule.ts";
import { SELF_HOST } from "../../src/selfbackup/selfbackup.ts";

test("settings: off without a destination; a destination needs a password; a bad interval names its variable", () => {
  expect(loadScheduleConfig({})).toBeUndefined();
  expect(() => loadScheduleConfig({ SERVERMIND_SELF_BACKUP_DEST: "/backups/sm" })).toThrow("SERVERMIND_SELF_BACKUP_PASSWORD_FILE");
  expect(() => loadScheduleConfig({ SERVERMIND_SELF_BACKUP_DEST: "/backups/sm", SERVERMIND_SELF_BACKUP_PASSWORD: "pw", SERVERMIND_SELF_BACKUP_INTERVAL_MINUTES: "0" })).toThrow("SERVERMIND_SELF_BACKUP_INTERVAL_MINUTES");
  expect(loadScheduleConfig({ SERVERMIND_SELF_BACKUP_DEST: "/backups/sm", SERVERMIND_SELF_BACKUP_PASSWORD: "pw", SERVERMIND_SELF_BACKUP_KEEP_LAST: "7" })).toEqual({
    dest: { type: "local", path: "/backups/sm" }, intervalMs: 1440 * 60_000, keepLast: 7,
  });
});

test("scheduled runs back up the database and data directory, are audited, keep the newest N; a failing run is audited and logged without secrets", async () => {
  const db = await testDatabase(3);
  const dir = mkdtempSync(join(tmpdir(), "servermind-selfbackup-schedule-"));
  const dataDir = join(dir, "data");
  const repoDir = join(dir, "repo");
  mkdirSync(join(dataDir, "secrets"), { recursive: true });
  writeFileSync(join(dataDir, "secrets", "audit-hmac.key"), "c2VjcmV0\n", { mode: 0o600 });
  writeFileSync(join(dataDir, "pg.secret"), "not backed up\n", { mode: 0o600 });
  useAuditKeys(generateAuditKeys());
  const lines: string[] = [];
  try {
    await Repository.init(new LocalDestination(repoDir), "Tiger-right-secret");
    const config = loadConfig({ SERVERMIND_DATA: dataDir, DATABASE_URL: db.url });
    const schedule = startSelfBackupSchedule({
      config, sql: db.sql, env: { SERVERMIND_SELF_BACKUP_PASSWORD: "Tiger-right-secret" }, log: (l) => lines.push(l),
      schedule: { dest: { type: "local", path: repoDir }, intervalMs: 3_600_000, keepLast: 1 },
    });
    await schedule.runNow();
    await schedule.runNow();
    await schedule.stop();
    const repo = await Repository.open(new LocalDestination(repoDir), "Tiger-right-secret");
    const snaps = await listSnapshots(repo);
    expect(snaps.map((s) => s.host)).toEqual([SELF_HOST]); // keep-last 1: the first run was forgotten
    const names = snaps[0]!.entries.map((e) => e.path.slice(snaps[0]!.paths[0]!.length));
    expect(names).toContain("/files/secrets/audit-hmac.key");
    expect(names).toContain("/db/manifest.json");
    expect(names).not.toContain("/files/pg.secret");
    expect((await verify(repo)).ok).toBe(true);
    const runs = await db.sql`select target, success from audit_log where action = 'selfbackup.run' order by id`;
    expect(runs.map((r) => r.success)).toEqual([true, true]);
    expect(runs[1]!.target).toBe(`snapshot ${snaps[0]!.id}`);
    expect(lines.some((l) => /forgot 1 snapshots, pruned \d+ chunks/.test(l))).toBe(true);

    // a wrong password: the run fails, is audited as failed, and the log names no secret
    const failing = startSelfBackupSchedule({
      config, sql: db.sql, env: { SERVERMIND_SELF_BACKUP_PASSWORD: "Zebra-wrong-secret" }, log: (l) => lines.push(l),
      schedule: { dest: { type: "local", path: repoDir }, intervalMs: 3_600_000, keepLast: 0 },
    });
    await failing.runNow();
    await failing.stop();
    const [failed] = await db.sql`select success, details from audit_log where action = 'selfbackup.run' order by id desc limit 1`;
    expect(failed!.success).toBe(false);
    expect(JSON.stringify(failed!.details)).toContain("wrong password");
    expect(lines.at(-1)).toContain("self-backup to");
    expect(lines.join("\n")).not.toContain("Zebra-wrong-secret");
    expect(lines.join("\n")).not.toContain("Tiger-right-secret");
  } finally {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
