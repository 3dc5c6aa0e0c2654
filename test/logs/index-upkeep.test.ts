/**
 * Migration 500 and the log search's index upkeep against a real PostgreSQL: the parent keeps
 * (ts, id) and a BRIN on id (no trigram index: it would slow every COPY), lines written through
 * the ingest COPY path get ids in write order, and partition upkeep builds the trigram index on
 * the partitions of past days only, once, rebuilding an invalid one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ensurePartitions, indexSealedLogPartitions } from "../../src/store/postgres/partitions.ts";
import { CopyWriter } from "../../src/store/postgres/copy-binary.ts";
import { copyInto, encodeLogs, LOGS_COPY } from "../../src/store/postgres/writer.ts";
import { testDatabase, type TestDb } from "../support/db.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(2);
}, 60_000);
afterAll(async () => {
  await db?.drop();
});

const now = Date.UTC(2026, 10, 28, 15);

test("the parent has (ts, id) and BRIN id indexes and pg_trgm is installed, but no trigram index on the parent", async () => {
  const names = (await db.sql`select indexname from pg_indexes where tablename = 'logs'`).map((r) => r.indexname);
  expect(names).toEqual(expect.arrayContaining(["logs_ts_id", "logs_id_brin"]));
  expect(names.filter((n) => n.includes("trgm"))).toEqual([]);
  expect((await db.sql`select 1 from pg_extension where extname = 'pg_trgm'`).length).toBe(1);
});

test("lines written by the ingest COPY get ids in write order", async () => {
  const w = new CopyWriter().begin();
  encodeLogs(w, 1, 1, { ts: Float64Array.of(now, now - 1000, now), severity: Uint8Array.of(6, 3, 6), sources: ["app"], sourceIndex: new Uint16Array(3), messages: ["copy one", "copy two", "copy three"] });
  await db.sql.begin((tx) => copyInto(tx, LOGS_COPY, w.end()));
  const rows = await db.sql`select id::text as id, message from logs where message like 'copy %' order by id`;
  expect(rows.map((r) => r.message)).toEqual(["copy one", "copy two", "copy three"]);
  expect(rows.every((r) => /^\d+$/.test(r.id))).toBe(true);
});

test("upkeep indexes the partitions of past days only, once, skipping empty days; an invalid index is rebuilt", async () => {
  await ensurePartitions(db.sql, { table: "logs", column: "ts", retentionDays: 3 }, now);
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
    select 1, 2, ${new Date(now - 86_400_000)}::timestamptz + g * interval '1 second', 6, 'app', 'line ' || g || case when g = 77 then ' needle' else '' end
    from generate_series(1, 2000) g`;
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (1, 3, ${new Date(now - 3 * 86_400_000)}, 6, 'app', 'three days ago')`;
  // the 25th and 27th hold lines; the 26th is empty (no index yet); the 28th is today (ingest)
  expect(await indexSealedLogPartitions(db.sql, now)).toEqual(["logs_p20261125", "logs_p20261127"]);
  const trgm = (await db.sql`select c.relname from pg_class c where c.relname like 'logs%trgm' order by 1`).map((r) => r.relname);
  expect(trgm).toEqual(["logs_p20261125_message_trgm", "logs_p20261127_message_trgm"]);
  expect(await indexSealedLogPartitions(db.sql, now)).toEqual([]);

  // the planner can use it for a substring search on that day
  const plan = await db.sql.begin(async (tx) => {
    await tx`set local enable_seqscan = off`;
    return (await tx`explain select message from logs_p20261127 where message ilike '%needle%'`).map((r) => r["QUERY PLAN"]).join("\n");
  });
  expect(plan).toContain("logs_p20261127_message_trgm");

  // a concurrent build that failed leaves an invalid index: dropped and built again
  await db.sql`update pg_index set indisvalid = false where indexrelid = 'logs_p20261125_message_trgm'::regclass`;
  expect(await indexSealedLogPartitions(db.sql, now)).toEqual(["logs_p20261125"]);
  const [v] = await db.sql`select indisvalid from pg_index where indexrelid = 'logs_p20261125_message_trgm'::regclass`;
  expect(v!.indisvalid).toBe(true);
});

test("with hourly leaves (as the server partitions logs), today's hours get the trigram index once they are over: a rare word over the last 24 h uses it", async () => {
  const own = await testDatabase(2);
  try {
    const at = Date.UTC(2026, 11, 10, 15, 30);
    const created = await ensurePartitions(own.sql, { table: "logs", column: "ts", retentionDays: 1, hourly: true }, at);
    expect(created).toContain("logs_p20261210");
    const leaves = (await own.sql`select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'logs_p20261210' order by 1`).map((r) => r.relname);
    expect(leaves.length).toBe(24);
    expect(leaves[0]).toBe("logs_p20261210_h00");
    // a day already over when created (retention filled in at first start) stays one table
    const kinds = Object.fromEntries((await own.sql`select relname, relkind from pg_class where relname in ('logs_p20261209', 'logs_p20261210', 'logs_p20261211')`).map((r) => [r.relname, r.relkind]));
    expect(kinds).toEqual({ logs_p20261209: "r", logs_p20261210: "p", logs_p20261211: "p" });
    // 14:00-15:00 is over at 15:30; 15:00-16:00 takes the ingest
    await own.sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
      select 1, 1, ${new Date(Date.UTC(2026, 11, 10, 14))}::timestamptz + g * interval '1 second', 6, 'app', 'hourly line ' || g || case when g = 99 then ' zebracorn' else '' end
      from generate_series(1, 3000) g`;
    await own.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (1, 2, ${new Date(Date.UTC(2026, 11, 10, 15, 10))}, 6, 'app', 'current hour')`;
    expect(await indexSealedLogPartitions(own.sql, at)).toEqual(["logs_p20261210_h14"]);
    expect(await indexSealedLogPartitions(own.sql, at)).toEqual([]);
    // an hour later the 15:00 leaf is sealed too
    expect(await indexSealedLogPartitions(own.sql, at + 3_600_000)).toEqual(["logs_p20261210_h15"]);
    await own.sql`analyze logs`;
    const plan = await own.sql.begin(async (tx) => {
      await tx`set local enable_seqscan = off`;
      return (await tx`explain select message from logs where ts >= ${new Date(at - 86_400_000)} and ts < ${new Date(at)} and message ilike '%zebracorn%'`).map((r) => r["QUERY PLAN"]).join("\n");
    });
    expect(plan).toContain("logs_p20261210_h14_message_trgm");
    const [hit] = await own.sql`select message from logs where ts >= ${new Date(at - 86_400_000)} and message ilike '%zebracorn%'`;
    expect(hit!.message).toBe("hourly line 99 zebracorn");
    // retention still drops whole days, with their leaves
    const { dropExpired } = await import("../../src/store/postgres/partitions.ts");
    await dropExpired(own.sql, { table: "logs", column: "ts", retentionDays: 1, hourly: true }, at + 3 * 86_400_000);
    expect((await own.sql`select count(*)::int as n from pg_class where relname like 'logs_p20261210%'`)[0]!.n).toBe(0);
  } finally {
    await own.drop();
  }
}, 60_000);
