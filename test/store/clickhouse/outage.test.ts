/**
 * The tier end to end: agents post through the real server while the shipper runs; ClickHouse
 * is killed mid-ingest and started again. Acks keep coming during the outage (the tier never
 * blocks them) and, once caught up, every committed sample and line is in ClickHouse exactly once.
 */
import { expect, test } from "bun:test";
import { startClickhouseTier } from "../../../src/store/clickhouse/tier.ts";
import { Counter } from "../../../src/metrics/registry.ts";
import { requireComponent } from "../../support/ci.ts";
import { hasClickhouseServer, startTestClickhouse } from "../../support/clickhouse.ts";
import { startTestServer } from "../../support/server.ts";
import { enroll, logsFrame, metricsFrame, post, type SimAgent } from "../../support/sim-agent.ts";
import { countStoredSamples } from "../../../src/store/postgres/metric-blocks.ts";

const run = requireComponent(hasClickhouseServer, "clickhouse-server (Debian package; the outage test stops and starts its own)");

test.if(run)("ClickHouse stopped during ingest and restarted: every row arrives once, acks never wait", async () => {
  const server = await startTestServer();
  const chServer = await startTestClickhouse({ own: true });
  const writeErrors = new Counter("store_write_errors_total", "Failed batch writes, by store.");
  const tier = await startClickhouseTier({
    sql: server.db.sql, url: `${chServer.url}/${chServer.database}`, retentionMetricsDays: 30, retentionLogsDays: 30,
    writeErrors, maxBatches: 20, idleMs: 20, log: () => {},
  });
  try {
    const agents: SimAgent[] = [];
    for (let i = 0; i < 4; i++) agents.push(await enroll(server.url, await server.token(), `outage-${i}`));
    let acked = 0;
    const send = async (round: number) => {
      await Promise.all(agents.map(async (a) => {
        const now = Date.now() - 60_000 + round * 100;
        const r = await post(server.url, [metricsFrame(a, 20, 5, now), metricsFrame(a, 20, 5, now + 50), logsFrame(a, 10, now)]);
        expect(r.status).toBe(200);
        acked += r.body.acks!.filter((x) => x.status === "ok").length;
      }));
    };
    for (let r = 0; r < 10; r++) await send(r);
    await chServer.stop(); // outage
    const t = performance.now();
    for (let r = 10; r < 30; r++) await send(r);
    const outageIngestMs = performance.now() - t;
    await Bun.sleep(300);
    expect(writeErrors.get({ store: "clickhouse" })).toBeGreaterThan(0);
    await tier.shipper.measureLag();
    expect(tier.shipper.pendingBatches).toBeGreaterThan(0);
    await chServer.start();
    for (let r = 30; r < 40; r++) await send(r);
    expect(acked).toBe(40 * 4 * 3);

    const [pg] = await server.db.sql<{ samples: string; lines: string }[]>`
      select 0 as samples, (select count(*) from logs) as lines`;
    const agentIds = await server.db.sql<{ id: number }[]>`select distinct agent_id::int as id from metric_blocks`;
    for (const { id } of agentIds) pg!.samples = String(Number(pg!.samples) + await countStoredSamples(server.db.sql, id));
    const deadline = Date.now() + 60_000;
    let got = { samples: 0, lines: 0 };
    const db = tier.ch.database;
    while (Date.now() < deadline) {
      const [s] = await tier.ch.rows<{ c: string }>(`select count() as c from (select agent_id, series_id, ts, batch_id from ${db}.metric_samples group by agent_id, series_id, ts, batch_id)`).catch(() => [{ c: "0" }]);
      const [l] = await tier.ch.rows<{ c: string }>(`select count() as c from (select agent_id, ts, batch_id, n from ${db}.logs group by agent_id, ts, batch_id, n)`).catch(() => [{ c: "0" }]);
      got = { samples: Number(s!.c), lines: Number(l!.c) };
      if (got.samples >= Number(pg!.samples) && got.lines >= Number(pg!.lines)) break;
      await Bun.sleep(200);
    }
    expect(got).toEqual({ samples: Number(pg!.samples), lines: Number(pg!.lines) });
    expect(Number(pg!.samples)).toBe(40 * 4 * 2 * 100);
    // Merged for good: no physical copy either (a copy could only come from an insert whose reply was lost).
    await tier.ch.exec(`optimize table ${db}.metric_samples final`);
    const [raw] = await tier.ch.rows<{ c: string }>(`select count() as c from ${db}.metric_samples`);
    expect(Number(raw!.c)).toBe(got.samples);
    await tier.shipper.measureLag();
    expect(tier.shipper.pendingBatches).toBe(0);
    console.log(`outage test: ${got.samples} samples, ${got.lines} lines; 20 rounds during the outage took ${outageIngestMs.toFixed(0)} ms; clickhouse write errors ${writeErrors.get({ store: "clickhouse" })}`);
  } finally {
    await tier.stop();
    await chServer.close();
    await server.close();
  }
}, 120_000);
