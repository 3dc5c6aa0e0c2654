/**
 * The console's range reads on ClickHouse, through the same RangeStore contract suite as
 * PostgreSQL, on data that went through the real ingest path and the shipper; then both tiers
 * side by side on the same data, and the router's choices.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClickhouse, type Clickhouse } from "../../../src/store/clickhouse/client.ts";
import { createClickhouseQueries } from "../../../src/store/clickhouse/queries.ts";
import { ensureSchema } from "../../../src/store/clickhouse/schema.ts";
import { ensureShipIndexes, Shipper } from "../../../src/store/clickhouse/shipper.ts";
import { createPgQueries, resolveSeries } from "../../../src/store/postgres/queries.ts";
import { createQueryRouter } from "../../../src/store/query-router.ts";
import { requireComponent } from "../../support/ci.ts";
import { hasClickhouse, startTestClickhouse, type TestClickhouse } from "../../support/clickhouse.ts";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll } from "../../support/sim-agent.ts";
import { BASE, buildDataSet, expectRangeEqual, ingestDataSet, NAMES, rangeStoreCases, type DataSet } from "../../contract/range-store.case.ts";

const run = requireComponent(hasClickhouse, "clickhouse-server (Debian package)");

let server: TestServer;
let chServer: TestClickhouse;
let ch: Clickhouse;
let data: DataSet;
let agentId: number;

if (run) {
  beforeAll(async () => {
    server = await startTestServer();
    chServer = await startTestClickhouse();
    ch = createClickhouse({ url: `${chServer.url}/${chServer.database}` });
    await ensureSchema(ch);
    await ensureShipIndexes(server.db.sql);
    const a = await enroll(server.url, await server.token(), "range-ch");
    agentId = a.id;
    data = buildDataSet(a);
    await ingestDataSet(server.url, data);
    const shipper = new Shipper({ sql: server.db.sql, ch });
    while ((await shipper.step()).batches > 0);
    // Ship everything a second time (a lost cursor update): the reads must not see the copies.
    await server.db.sql`update clickhouse_cursor set xid = '0', agent_id = 0, batch_id = 0`;
    while ((await shipper.step()).batches > 0);
  }, 90_000);

  afterAll(async () => {
    await ch?.close();
    await chServer?.close();
    await server?.close();
  }, 30_000);

  rangeStoreCases("clickhouse (every row shipped twice)", () => ({
    store: createClickhouseQueries(ch),
    data,
    agentId,
    resolve: (names) => resolveSeries(server.db.sql, agentId, names),
  }));

  describe("both tiers on the same data", () => {
    test("range and log reads agree", async () => {
      const pg = createPgQueries(server.db.sql);
      const chq = createClickhouseQueries(ch);
      for (const maxPoints of [1000, 333, 10, 1]) {
        const q = { agentId, names: NAMES, from: BASE - 5_000, to: BASE + 2_000_000, maxPoints };
        const series = await resolveSeries(server.db.sql, agentId, q.names);
        expectRangeEqual(await chq.range(q, series), await pg.range(q, series));
      }
      for (const text of ["", "root", "SAME", "zzz"]) {
        const q = { agentId, from: BASE, to: BASE + 2_000_000, text, limit: 1000 };
        expect(await chq.logs(q)).toEqual(await pg.logs(q));
      }
    });

    test("the router sends long ranges to ClickHouse, short ones to PostgreSQL, and falls back when ClickHouse fails", async () => {
      let lag = 0;
      const now = BASE + 2_000_000;
      const router = createQueryRouter({
        sql: server.db.sql,
        postgres: createPgQueries(server.db.sql),
        clickhouse: createClickhouseQueries(ch),
        lagSeconds: () => lag,
        minRangeMs: 600_000,
        now: () => now,
      });
      const long = { agentId, names: NAMES.slice(0, 2), from: BASE, to: now };
      const short = { agentId, names: NAMES.slice(0, 2), from: now - 300_000, to: now };
      const a = await router.range(long);
      expect(a.tier).toBe("clickhouse");
      expect(a.result.series[0]!.points.length).toBeGreaterThan(0);
      expect((await router.range(short)).tier).toBe("postgres");
      lag = 120;
      expect((await router.range(long)).tier).toBe("postgres");
      lag = 0;
      await chServer.stop();
      try {
        const b = await router.range(long);
        expect(b.tier).toBe("postgres");
        expect(b.reason).toContain("ClickHouse read failed");
        expectRangeEqual(b.result, a.result);
        expect((await router.logs({ agentId, from: BASE, to: now })).tier).toBe("postgres");
      } finally {
        await chServer.start();
      }
    }, 60_000);
  });
}
