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
import { postgresRangeStore } from "../../../src/store/range.ts";
import { createQueryRouter } from "../../../src/store/query-router.ts";
import { requireComponent } from "../../support/ci.ts";
import { hasClickhouseServer, startTestClickhouse, type TestClickhouse } from "../../support/clickhouse.ts";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll } from "../../support/sim-agent.ts";
import { BASE, buildDataSet, expectRangeEqual, ingestDataSet, NAMES, rangeStoreCases, type DataSet } from "../../contract/range-store.case.ts";

// These tests also stop and start ClickHouse (outages), so they run their own server.
const run = requireComponent(hasClickhouseServer, "clickhouse-server (Debian package)");

let server: TestServer;
let chServer: TestClickhouse;
let ch: Clickhouse;
let data: DataSet;
let agentId: number;

if (run) {
  beforeAll(async () => {
    server = await startTestServer();
    chServer = await startTestClickhouse({ own: true });
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

  rangeStoreCases("clickhouse (every row shipped twice)", () => ({ store: createClickhouseQueries(ch, server.db.sql), data, agentId }));

  describe("both tiers on the same data", () => {
    test("range and log reads agree", async () => {
      const pg = postgresRangeStore(server.db.sql);
      const chq = createClickhouseQueries(ch, server.db.sql);
      for (const maxPoints of [1000, 333, 10, 1]) {
        const args = [agentId, NAMES, new Date(BASE - 5_000), new Date(BASE + 2_000_000), maxPoints] as const;
        expectRangeEqual(await chq.seriesRange(...args), await pg.seriesRange(...args));
      }
      for (const text of ["", "root", "SAME", "zzz", "100%", "e_o"]) {
        const q = { agentId, from: new Date(BASE), to: new Date(BASE + 2_000_000), text, limit: 5000 };
        expect(await chq.searchLogs(q)).toEqual(await pg.searchLogs(q));
      }
    });

    test("the router sends long ranges to ClickHouse, short ones to PostgreSQL, and falls back when ClickHouse fails", async () => {
      let lag = 0;
      const now = BASE + 2_000_000;
      const router = createQueryRouter({
        postgres: postgresRangeStore(server.db.sql),
        clickhouse: createClickhouseQueries(ch, server.db.sql),
        lagSeconds: () => lag,
        minRangeMs: 600_000,
        now: () => now,
      });
      const long = [agentId, NAMES.slice(0, 2), new Date(BASE), new Date(now)] as const;
      const short = [agentId, NAMES.slice(0, 2), new Date(now - 300_000), new Date(now)] as const;
      const a = await router.seriesRange(...long);
      expect(a.tier).toBe("clickhouse");
      expect(a.result[0]!.t.length).toBeGreaterThan(0);
      expect((await router.seriesRange(...short)).tier).toBe("postgres");
      lag = 120;
      expect((await router.seriesRange(...long)).tier).toBe("postgres");
      lag = 0;
      await chServer.stop();
      try {
        const b = await router.seriesRange(...long);
        expect(b.tier).toBe("postgres");
        expect(b.reason).toContain("ClickHouse read failed");
        expectRangeEqual(b.result, a.result);
        expect((await router.searchLogs({ agentId, from: new Date(BASE), to: new Date(now) })).tier).toBe("postgres");
      } finally {
        await chServer.start();
      }
    }, 60_000);
  });
}
