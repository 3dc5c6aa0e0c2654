/**
 * The shipper against a real PostgreSQL and a real clickhouse-server: exactly-once as queries
 * see it (also when a chunk is shipped twice), transactions that commit out of xid order, and
 * ClickHouse going away between steps.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TransactionSql } from "postgres";
import { requireComponent } from "../../support/ci.ts";
import { hasClickhouseServer, startTestClickhouse, type TestClickhouse } from "../../support/clickhouse.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { createClickhouse, type Clickhouse } from "../../../src/store/clickhouse/client.ts";
import { dropExpiredPartitions, ensureSchema } from "../../../src/store/clickhouse/schema.ts";
import { ensureShipIndexes, Shipper } from "../../../src/store/clickhouse/shipper.ts";
import { createPgClient } from "../../../src/store/postgres/client.ts";
import { rollupStep } from "../../../src/store/postgres/rollups.ts";

// These tests also stop and start ClickHouse (outages), so they run their own server.
const run = requireComponent(hasClickhouseServer, "clickhouse-server (Debian package)");

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** One committed-looking batch written the way the ingest writer writes it: metrics (2 blocks x 2 series x 3 stamps) or 4 log lines. */
async function writeBatch(tx: TransactionSql, agent: number, batch: number, kind: 1 | 2): Promise<void> {
  await tx`insert into ingest_batches (agent_id, batch_id, kind) values (${agent}, ${batch}, ${kind})`;
  const t0 = new Date(T0 + batch * 60_000);
  if (kind === 1) {
    for (const g of [0, 1]) {
      await tx`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals)
        values (${agent}, ${batch}, ${t0}, ${new Date(t0.getTime() + 20_000)}, ${[0, 10_000, 20_000]}::int4[],
                ${[g * 2 + 1, g * 2 + 2]}::int4[], ${[batch, batch + 0.5, g === 1 ? NaN : 1, 2, 3, 4]}::float8[])`;
    }
  } else {
    for (let i = 0; i < 4; i++) {
      // two identical lines: both must arrive, and each only once
      const msg = i < 2 ? "same line\twith tab" : `line ${i} 'quoted' \\ back`;
      await tx`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${agent}, ${batch}, ${t0}, ${6}, ${"sshd"}, ${msg})`;
    }
  }
}

async function chCounts(ch: Clickhouse): Promise<{ samples: number; lines: number; rawSamples: number; rawLines: number }> {
  const [s] = await ch.rows<{ c: string }>(`select count() as c from (select agent_id, series_id, ts, batch_id from ${ch.database}.metric_samples group by agent_id, series_id, ts, batch_id)`);
  const [l] = await ch.rows<{ c: string }>(`select count() as c from (select agent_id, ts, batch_id, n from ${ch.database}.logs group by agent_id, ts, batch_id, n)`);
  const [rs] = await ch.rows<{ c: string }>(`select count() as c from ${ch.database}.metric_samples`);
  const [rl] = await ch.rows<{ c: string }>(`select count() as c from ${ch.database}.logs`);
  return { samples: Number(s!.c), lines: Number(l!.c), rawSamples: Number(rs!.c), rawLines: Number(rl!.c) };
}

describe.if(run)("clickhouse shipper", () => {
  let db: TestDb;
  let server: TestClickhouse;
  let ch: Clickhouse;

  beforeAll(async () => {
    db = await testDatabase();
    server = await startTestClickhouse({ own: true });
    ch = createClickhouse({ url: `${server.url}/${server.database}` });
    await ensureSchema(ch);
    await ensureShipIndexes(db.sql);
  }, 60_000);

  afterAll(async () => {
    await ch?.close();
    await server?.close();
    await db?.drop();
  }, 30_000);

  test("ships every committed row once; a chunk shipped again after a lost cursor update stays invisible", async () => {
    await db.sql.begin(async (tx) => {
      await writeBatch(tx, 1, 1, 1);
      await writeBatch(tx, 1, 2, 2);
      await writeBatch(tx, 2, 1, 1);
    });
    const shipper = new Shipper({ sql: db.sql, ch, maxBatches: 2 });
    const a = await shipper.step();
    const b = await shipper.step();
    expect(a.batches + b.batches).toBe(3);
    expect((await shipper.step()).batches).toBe(0);
    // 2 metric batches x (12 values - 1 NaN) and 4 lines
    expect(await chCounts(ch)).toEqual({ samples: 22, lines: 4, rawSamples: 22, rawLines: 4 });
    const lines = await ch.rows<{ message: string }>(`select message from ${ch.database}.logs order by n`);
    expect(lines.map((l) => l.message)).toEqual(["line 2 'quoted' \\ back", "line 3 'quoted' \\ back", "same line\twith tab", "same line\twith tab"]);

    // The crash between the ClickHouse insert and the cursor update: the cursor is still behind.
    await db.sql`update clickhouse_cursor set xid = '0', agent_id = 0, batch_id = 0`;
    while ((await shipper.step()).batches > 0);
    const again = await chCounts(ch);
    expect(again.samples).toBe(22);
    expect(again.lines).toBe(4);
    expect(again.rawSamples).toBe(44); // physically there until a merge...
    await ch.exec(`optimize table ${ch.database}.metric_samples final`);
    await ch.exec(`optimize table ${ch.database}.logs final`);
    expect(await chCounts(ch)).toEqual({ samples: 22, lines: 4, rawSamples: 22, rawLines: 4 }); // ...which collapses them
  }, 30_000);

  test("a transaction that commits after a later one is not skipped", async () => {
    const shipper = new Shipper({ sql: db.sql, ch, maxBatches: 100 });
    while ((await shipper.step()).batches > 0);
    const before = await chCounts(ch);
    let releaseA!: () => void;
    const holdA = new Promise<void>((r) => (releaseA = r));
    let aWrote!: () => void;
    const aWritten = new Promise<void>((r) => (aWrote = r));
    // A takes its xid first and commits last; B and C start later and commit first.
    const a = db.sql.begin(async (tx) => {
      await writeBatch(tx, 10, 1, 1);
      aWrote();
      await holdA;
    });
    await aWritten;
    await db.sql.begin(async (tx) => writeBatch(tx, 11, 1, 1));
    await db.sql.begin(async (tx) => writeBatch(tx, 12, 1, 2));
    const xids = await db.sql<{ agent_id: string; xid: string }[]>`select agent_id, xid::text from ingest_batches where agent_id in (11, 12) order by agent_id`;
    expect(xids.length).toBe(2);
    // B and C are committed, but A (a smaller xid) is still open: nothing may pass it.
    const during = await shipper.step();
    expect(during.batches).toBe(0);
    releaseA();
    await a;
    let shipped = 0;
    for (let i = 0; i < 5; i++) shipped += (await shipper.step()).batches;
    expect(shipped).toBe(3);
    const after = await chCounts(ch);
    expect(after.samples - before.samples).toBe(22);
    expect(after.lines - before.lines).toBe(4);
    const agents = await ch.rows<{ agent_id: string }>(`select distinct agent_id from ${ch.database}.metric_samples where agent_id >= 10 order by agent_id`);
    expect(agents.map((r) => Number(r.agent_id))).toEqual([10, 11]);
  }, 30_000);

  test("many concurrent writers committing in random order: nothing skipped, nothing twice", async () => {
    const shipper = new Shipper({ sql: db.sql, ch, maxBatches: 7, cursorRows: 1 }); // several inserts per step
    while ((await shipper.step()).batches > 0);
    const before = await chCounts(ch);
    let stop = false;
    let shippedDuring = 0;
    const shipping = (async () => {
      while (!stop) {
        shippedDuring += (await shipper.step()).batches;
        await Bun.sleep(1);
      }
    })();
    const N = 60;
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        db.sql.begin(async (tx) => {
          await writeBatch(tx, 100 + (i % 5), 1000 + i, (i % 3 === 0 ? 2 : 1) as 1 | 2);
          await Bun.sleep(Math.random() * 40); // hold the transaction open a random while
        }),
      ),
    );
    stop = true;
    await shipping;
    while ((await shipper.step()).batches > 0);
    const after = await chCounts(ch);
    const logBatches = Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === 0).length;
    expect(after.samples - before.samples).toBe((N - logBatches) * 11);
    expect(after.lines - before.lines).toBe(logBatches * 4);
    expect(after.rawSamples - before.rawSamples).toBe((N - logBatches) * 11);
    expect(shippedDuring).toBeGreaterThan(0);
  }, 60_000);

  test("ClickHouse down: the step fails, nothing is marked shipped; after restart it catches up", async () => {
    const shipper = new Shipper({ sql: db.sql, ch, maxBatches: 50 });
    while ((await shipper.step()).batches > 0);
    const before = await chCounts(ch);
    const [cur0] = await db.sql`select xid::text, shipped_batches from clickhouse_cursor`;
    await server.stop();
    await db.sql.begin(async (tx) => {
      for (let i = 0; i < 5; i++) await writeBatch(tx, 200, i + 1, 1);
    });
    await expect(shipper.step()).rejects.toThrow();
    const [cur1] = await db.sql`select xid::text, shipped_batches from clickhouse_cursor`;
    expect(cur1).toEqual(cur0!);
    await server.start();
    while ((await shipper.step()).batches > 0);
    const after = await chCounts(ch);
    expect(after.samples - before.samples).toBe(5 * 11);
    await shipper.measureLag();
    expect(shipper.pendingBatches).toBe(0);
  }, 60_000);

  test("retention on 18.16 (no TTL): whole daily partitions past retention are dropped", async () => {
    const day = 86_400_000;
    const now = T0 + 100 * day;
    const rows = [now - 40 * day, now - 31 * day, now - 29 * day, now - day].map((ts, i) => ({ agent_id: 999, series_id: 1, ts, value: i, batch_id: i }));
    await ch.client.insert({ table: `${ch.database}.metric_samples`, values: rows, format: "JSONEachRow" });
    const dropped = await dropExpiredPartitions(ch, "metric_samples", 30, now);
    expect(dropped.length).toBeGreaterThanOrEqual(2);
    const left = await ch.rows<{ ts: string }>(`select ts from ${ch.database}.metric_samples where agent_id = 999 order by ts`);
    expect(left.map((r) => Number(r.ts))).toEqual([now - 29 * day, now - day]);
  });

  test("two nodes' shippers at once: one ships at a time, every batch once", async () => {
    const other = createPgClient(db.url, 4); // a second node: its own pool
    try {
      const a = new Shipper({ sql: db.sql, ch, maxBatches: 3 });
      const b = new Shipper({ sql: other, ch, maxBatches: 3 });
      while ((await a.step()).batches > 0);
      const before = await chCounts(ch);
      await db.sql.begin(async (tx) => {
        for (let i = 0; i < 30; i++) await writeBatch(tx, 300, i + 1, 1);
      });
      let standby = 0;
      let shipped = 0;
      const drive = async (s: Shipper) => {
        for (let idle = 0; idle < 3; ) {
          const r = await s.step();
          if (!r.leader) standby++;
          shipped += r.batches;
          idle = r.leader && r.batches === 0 ? idle + 1 : 0;
        }
      };
      await Promise.all([drive(a), drive(b)]);
      expect(shipped).toBe(30);
      const after = await chCounts(ch);
      expect(after.samples - before.samples).toBe(30 * 11);
      expect(after.rawSamples - before.rawSamples).toBe(30 * 11); // not even a physical copy
      console.log(`two shippers: ${standby} steps found the other node shipping`);
    } finally {
      await other.end({ timeout: 5 });
    }
  }, 30_000);

  test("hours compacted while the tier was off still reach ClickHouse, once, and count as lag until they have", async () => {
    const agent = 77;
    await db.sql.begin(async (tx) => {
      for (let b = 1; b <= 3; b++) await writeBatch(tx, agent, b, 1);
    });
    // the rollup job with compaction on (the tier off): the hour's rows become batch -1 rows
    const job = await rollupStep({ sql: db.sql, rawDays: 100_000, now: () => T0 + 3 * 3_600_000 });
    // only agent 77's hour: the earlier tests' frames are in ClickHouse under their batch ids
    // already, so compaction leaves them be (else ClickHouse would get their samples twice)
    expect(job.compacted?.hours).toBe(1);
    expect((await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agent} and batch_id <> -1`)[0]!.n).toBe(0);
    const shipper = new Shipper({ sql: db.sql, ch, maxBatches: 2 });
    await shipper.measureLag();
    expect(shipper.lagSeconds).toBeGreaterThan(3_600); // the compacted hour is days old
    const perAgent = async () => {
      const [r] = await ch.rows<{ c: string }>(`select count() as c from (select series_id, ts from ${ch.database}.metric_samples where agent_id = ${agent} group by series_id, ts, batch_id)`);
      return Number(r!.c);
    };
    for (let i = 0; i < 20 && (await shipper.stepAll()).batches > 0; i++);
    expect(await perAgent()).toBe(3 * 11); // 3 batches x (12 values - 1 NaN)
    await shipper.measureLag();
    expect(shipper.lagSeconds).toBeLessThan(3_600);
    // shipped again (a lost cursor update): invisible through the keys
    await db.sql`update clickhouse_cursor set compaction_id = 0`;
    for (let i = 0; i < 20 && (await shipper.stepAll()).batches > 0; i++);
    expect(await perAgent()).toBe(3 * 11);
  }, 30_000);
});
