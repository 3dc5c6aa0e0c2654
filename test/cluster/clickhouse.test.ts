/**
 * Two server nodes share one PostgreSQL and one ClickHouse, each running the ClickHouse tier:
 * agents post to either node, and every committed sample and line reaches ClickHouse exactly once.
 */
import { expect, test } from "bun:test";
import { Counter } from "../../src/metrics/registry.ts";
import { startClickhouseTier } from "../../src/store/clickhouse/tier.ts";
import { requireComponent } from "../support/ci.ts";
import { hasClickhouseServer, startTestClickhouse } from "../support/clickhouse.ts";
import { startTestCluster } from "../support/cluster.ts";
import { enroll, logsFrame, metricsFrame, post } from "../support/sim-agent.ts";

const run = requireComponent(hasClickhouseServer, "clickhouse-server (Debian package)");

test.if(run)("two nodes, one ClickHouse: each row shipped once whichever node took it", async () => {
  const cluster = await startTestCluster(2);
  const chServer = await startTestClickhouse({ own: true });
  const url = `${chServer.url}/${chServer.database}`;
  const tiers = await Promise.all(
    cluster.nodes.map((n) =>
      startClickhouseTier({ sql: n.sql, url, retentionMetricsDays: 30, retentionLogsDays: 30, writeErrors: new Counter("store_write_errors_total", ""), maxBatches: 4, idleMs: 10, log: () => {} }),
    ),
  );
  try {
    const agents = await Promise.all([0, 1, 2, 3].map(async (i) => enroll(cluster.nodes[i % 2]!.url, await cluster.token(), `both-${i}`)));
    const now = Date.now() - 600_000;
    for (let r = 0; r < 12; r++) {
      await Promise.all(agents.map(async (a, i) => {
        const node = cluster.nodes[(i + r) % 2]!; // every agent alternates between the nodes
        const res = await post(node.url, [metricsFrame(a, 10, 5, now + r * 60_000), logsFrame(a, 7, now + r * 60_000)]);
        expect(res.status).toBe(200);
      }));
    }
    const expected = { samples: 4 * 12 * 50, lines: 4 * 12 * 7 };
    const ch = tiers[0]!.ch;
    const db = ch.database;
    let got = { samples: 0, lines: 0, raw: 0 };
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      const [s] = await ch.rows<{ c: string; raw: string }>(`select count() as c, sum(k) as raw from (select count() as k from ${db}.metric_samples group by agent_id, series_id, ts, batch_id)`);
      const [l] = await ch.rows<{ c: string }>(`select count() as c from (select 1 from ${db}.logs group by agent_id, ts, batch_id, n)`);
      got = { samples: Number(s!.c), lines: Number(l!.c), raw: Number(s!.raw) };
      if (got.samples >= expected.samples && got.lines >= expected.lines) break;
      await Bun.sleep(100);
    }
    expect(got).toEqual({ ...expected, raw: expected.samples });
    // a step counts its batches after its commit, which follows its inserts: the last step's rows
    // can be seen before its count (a CI run read 95 of 96)
    const shipped = () => tiers.reduce((n, t) => n + t.shipper.metrics.batches.get(), 0);
    while (Date.now() < end && shipped() < 4 * 12 * 2) await Bun.sleep(50);
    expect(shipped()).toBe(4 * 12 * 2);
  } finally {
    for (const t of tiers) await t.stop();
    await chServer.close();
    await cluster.close();
  }
}, 90_000);
