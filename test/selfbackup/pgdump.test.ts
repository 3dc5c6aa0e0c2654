/**
 * The self-backup's logical dump (src/selfbackup/pgdump.ts) on the test PostgreSQL: a migrated
 * database with rows, daily partitions, identity sequences and audit records is dumped while a
 * writer keeps inserting, loaded into an empty database, and compared table by table.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase } from "../support/db.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { dumpDatabase, loadDatabase } from "../../src/selfbackup/pgdump.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { audit } from "../../src/audit/audit.ts";
import { generateAuditKeys, useAuditKeys } from "../../src/audit/keys.ts";
import { verifyAuditChain } from "../../src/audit/verify.ts";
import { createRole } from "../../src/auth/roles.ts";

test("a dump taken under writes loads into an empty database with every table's rows, partitions and sequences", async () => {
  const src = await testDatabase(4);
  const dir = mkdtempSync(join(tmpdir(), "servermind-pgdump-"));
  const name = `restored_${process.pid}_${Date.now().toString(36)}`;
  const admin = createPgClient(new URL("/postgres", src.url).toString(), 1);
  let dst: ReturnType<typeof createPgClient> | undefined;
  try {
    useAuditKeys(generateAuditKeys());
    for (const t of timeSeriesTables(7, 7)) await ensurePartitions(src.sql, t);
    // a table of some megabytes: COPY's output outruns the file writes (regression: the dump hung on it)
    await src.sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals)
      select 1, g, now() - g * interval '1 second', now() - g * interval '1 second', '{0}', array[g % 50], array[g / 7.0] from generate_series(1, 20000) g`;
    await createRole(src.sql, "dump-role", "with a \"quote\" and a \\ backslash\nand a newline", ["audit.view"], ["group:web"]);
    for (let i = 0; i < 20; i++) await audit(src.sql, { actor: { type: "system", name: "test" }, category: "config_change", action: "dump.test", target: `t${i}`, success: true, details: { i, text: "tab\there" } });

    // a writer inserts audit records during the dump; the dump is one snapshot, so its chain is whole
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 500; i++) await audit(src.sql, { actor: { type: "system", name: "writer" }, category: "config_change", action: "dump.writer", success: true });
    })();
    const manifest = await dumpDatabase(src.sql, dir);
    writing = false;
    await writer;
    expect(manifest.migrations.length).toBeGreaterThan(10);
    expect(manifest.partitions.length).toBeGreaterThan(7);

    await admin.unsafe(`create database ${name}`);
    dst = createPgClient(new URL(`/${name}`, src.url).toString(), 2);
    const loaded = await loadDatabase(dst, dir);
    expect(loaded.tables).toBe(manifest.tables.length);

    for (const t of manifest.tables) {
      const n = (await dst.unsafe(`select count(*)::int as n from "${t.name}"`))[0]!.n;
      expect(`${t.name}: ${n}`).toBe(`${t.name}: ${t.rows}`);
    }
    const [role] = await dst`select description, permissions, scope_tags from console_roles where name = 'dump-role'`;
    expect(role).toEqual({ description: "with a \"quote\" and a \\ backslash\nand a newline", permissions: ["audit.view"], scope_tags: ["group:web"] });
    const partitions = (await dst`select c.relname from pg_class c where c.relispartition and c.relkind in ('r', 'p') order by 1`).map((r) => r.relname);
    expect(partitions).toEqual(manifest.partitions.map((p) => p.name).sort());
    const report = await verifyAuditChain(dst);
    expect(report.ok).toBe(true);
    expect(report.checked).toBe(manifest.tables.find((t) => t.name === "audit_log")!.rows);
    // identity sequences continue after the loaded rows: a new record appends to the chain
    await audit(dst, { actor: { type: "system", name: "test" }, category: "config_change", action: "after.restore", success: true });
    expect((await verifyAuditChain(dst)).ok).toBe(true);
    // a second load into the now filled database is refused
    await expect(loadDatabase(dst, dir)).rejects.toThrow("already has tables");
  } finally {
    await dst?.end({ timeout: 5 });
    await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
    await admin.end();
    await src.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
