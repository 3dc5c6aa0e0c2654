/** The router's choice of tier (src/store/query-router.ts); reads through both tiers are in test/store/clickhouse/queries.test.ts. */
import { afterAll, expect, test } from "bun:test";
import { createQueryRouter } from "../../src/store/query-router.ts";
import { postgresRangeStore } from "../../src/store/range.ts";
import { createClickhouse } from "../../src/store/clickhouse/client.ts";
import { createClickhouseQueries } from "../../src/store/clickhouse/queries.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";

// Real stores that are never read from here (choose() only decides): no connection is opened.
const sql = createPgClient("postgres://nobody@127.0.0.1:1/none", 1);
const ch = createClickhouse({ url: "http://127.0.0.1:1/none" });
afterAll(async () => {
  await ch.close();
  await sql.end({ timeout: 1 });
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const now = Date.UTC(2026, 10, 28);

test("without ClickHouse everything goes to PostgreSQL", () => {
  const r = createQueryRouter({ postgres: postgresRangeStore(sql), now: () => now });
  expect(r.choose(now - 90 * DAY, now, 30).tier).toBe("postgres");
});

test("long ranges, old ranges and large fleets go to ClickHouse unless it lags", () => {
  let lag = 0;
  let fleet = 10;
  const r = createQueryRouter({
    postgres: postgresRangeStore(sql),
    clickhouse: createClickhouseQueries(ch, sql),
    lagSeconds: () => lag,
    fleetSize: () => fleet,
    now: () => now,
  });
  expect(r.choose(now - HOUR, now, 30)).toEqual({ tier: "postgres", reason: "short range" });
  expect(r.choose(now - 2 * DAY, now, 30).tier).toBe("clickhouse");
  expect(r.choose(now - 40 * DAY, now - 39 * DAY, 30).tier).toBe("clickhouse"); // before PostgreSQL's retention
  fleet = 10_000;
  expect(r.choose(now - 2 * HOUR, now, 30)).toEqual({ tier: "clickhouse", reason: "large fleet" });
  expect(r.choose(now - 10 * 60_000, now, 30).tier).toBe("postgres"); // short even for a large fleet
  lag = 600;
  expect(r.choose(now - 2 * DAY, now, 30).tier).toBe("postgres"); // ClickHouse is behind...
  expect(r.choose(now - 40 * DAY, now, 30).tier).toBe("clickhouse"); // ...but only it holds this
});
