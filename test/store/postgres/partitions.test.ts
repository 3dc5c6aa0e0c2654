import { afterAll, beforeAll, expect, test } from "bun:test";
import { dropExpired, ensurePartitions, listPartitions } from "../../../src/store/postgres/partitions.ts";
import { migrate } from "../../../src/store/postgres/migrate.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(2);
});
afterAll(async () => {
  await db?.drop();
});

const DAY = 86_400_000;
const now = Date.UTC(2026, 10, 28, 15);

test("partitions cover retention and two days ahead; rows parked in the default partition move in", async () => {
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (1, 1, ${new Date(now)}, 6, 's', 'early')`;
  const created = await ensurePartitions(db.sql, { table: "logs", column: "ts", retentionDays: 3 }, now);
  expect(created).toEqual(["logs_p20261125", "logs_p20261126", "logs_p20261127", "logs_p20261128", "logs_p20261129", "logs_p20261130"]);
  const [d] = await db.sql`select count(*)::int as n from logs_default`;
  expect(d!.n).toBe(0);
  const [p] = await db.sql`select message from logs_p20261128`;
  expect(p!.message).toBe("early");
  expect(await ensurePartitions(db.sql, { table: "logs", column: "ts", retentionDays: 3 }, now)).toEqual([]);
});

test("retention drops whole partitions and purges old rows from the default partition", async () => {
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (1, 1, ${new Date(now - 30 * DAY)}, 6, 's', 'ancient')`;
  const dropped = await dropExpired(db.sql, { table: "logs", column: "ts", retentionDays: 2 }, now + DAY);
  expect(dropped).toEqual(["logs_p20261125", "logs_p20261126"]); // ends at or before Nov 27 00:00 = Nov 29 - 2 days
  expect(await listPartitions(db.sql, "logs")).toContain("logs_p20261127");
  expect(await listPartitions(db.sql, "logs")).toContain("logs_p20261128");
  const [d] = await db.sql`select count(*)::int as n from logs_default`;
  expect(d!.n).toBe(0);
});

test("a new partition keeps its table's column storage: metric_blocks' compacted rows stay out of line uncompressed (migration 565)", async () => {
  const created = await ensurePartitions(db.sql, { table: "metric_blocks", column: "t0", retentionDays: 1 }, now);
  expect(created.length).toBeGreaterThan(0);
  const storage = await db.sql`select c.relname::text as t, a.attstorage::text as s from pg_attribute a join pg_class c on c.oid = a.attrelid
    where a.attname = 'block' and c.relname = any(${created})`;
  expect(storage.map((r) => `${r.t} ${r.s}`)).toEqual(created.map((t) => `${t} e`));
});

test("migrations are idempotent", async () => {
  expect(await migrate(db.sql)).toEqual([]);
});
