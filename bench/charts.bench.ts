/**
 * The interactive charts' data (npm run bench:charts [-- --days 90 --runs 10 --width 800]): one
 * host with the 12 series its charts draw (cpu, memory, swap, disk, load, network, disk I/O),
 * `days` of history at 10 s written with the ingest path's COPY encoders and rolled up as a
 * running server's job would have. Times hostCharts() (src/web/chart/data.ts: seriesRange through
 * the PostgreSQL range store, aligned into columns) plus JSON.stringify, as the route
 * /api/hosts/:id/charts does after the guard, for 15 m, 1 h, 24 h, 7 d, 30 d and 90 d at `width`
 * px; reports median and p95 and the JSON's size (bytes, and gzip bytes as a proxy sends them).
 */
import { gzipSync } from "node:zlib";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { copyInto, encodeMetricBlocks, METRIC_BLOCKS_COPY } from "../src/store/postgres/writer.ts";
import { ensurePartitions, timeSeriesTables } from "../src/store/postgres/partitions.ts";
import { postgresRangeStore } from "../src/store/range.ts";
import { CHART_RANGES, hostCharts } from "../src/web/chart/data.ts";
import { arg, benchDatabase, environment, latencies, percentile, round } from "./support.ts";

const DAYS = Number(arg("days", "90"));
const RUNS = Number(arg("runs", "10"));
const WIDTH = Number(arg("width", "800"));
const log = (s: string) => console.error(`[bench] ${s}`);
const NAMES = [
  "cpu.usage_pct", "mem.used_pct", "swap.used_pct", 'disk.used_pct{mount="/"}', "load.1", "load.5", "load.15",
  'net.rx_bytes_per_s{iface="eth0"}', 'net.tx_bytes_per_s{iface="eth0"}', 'diskio.read_bytes_per_s{dev="sda"}', 'diskio.write_bytes_per_s{dev="sda"}', "mem.used_bytes",
];

async function main() {
  const db = await benchDatabase({ prefix: "servermind-chartbench-", partitionDays: DAYS + 1 });
  const { sql } = db;
  for (const t of timeSeriesTables(DAYS + 1, 3, { minuteDays: DAYS + 1, tenMinuteDays: DAYS + 1, hourDays: DAYS + 1 })) {
    if (t.table.startsWith("metric_rollup_")) await ensurePartitions(sql, t);
  }
  const [a] = await sql`insert into agents (hostname, public_key, last_seen) values ('chart-bench', ${Buffer.alloc(32, 1)}, now()) returning id`;
  const host = Number(a!.id);
  await sql`insert into metric_series (agent_id, name) select ${host}, unnest(${NAMES}::text[])`;
  const rows = await sql`select id, name from metric_series where agent_id = ${host}`;
  const byName = new Map(rows.map((r) => [r.name as string, Number(r.id)]));
  const ids = Int32Array.from(NAMES.map((n) => byName.get(n)!));
  const end = Math.floor(Date.now() / 10_000) * 10_000;
  const start = end - DAYS * 86_400_000;
  log(`${DAYS} days of ${NAMES.length} series at 10 s`);
  let w = new CopyWriter().begin();
  let batch = 0;
  for (let t = start; t < end; t += 100_000) {
    const ts = Float64Array.from({ length: 10 }, (_, i) => t + i * 10_000);
    const values = new Float64Array(NAMES.length * 10).map((_, i) => 50 + 40 * Math.sin(t / 600_000 + i));
    encodeMetricBlocks(w, host, ++batch, { ts, names: NAMES, values }, ids);
    if (w.pos > 8 << 20) {
      await sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
      w = new CopyWriter().begin();
    }
  }
  await sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
  log("rolling up every closed hour (the rollup job)");
  const rollups = await import("../src/store/postgres/rollups.ts");
  const t0 = performance.now();
  for (let i = 0; i < 100_000; i++) if ((await rollups.rollupStep({ sql, rawDays: DAYS + 1, maxPairs: 200 })).pairs === 0) break;
  const rollupS = round((performance.now() - t0) / 1000, 1);
  await sql`vacuum analyze`;

  const store = postgresRangeStore(sql);
  const chartHost = { id: host, hostname: "chart-bench", state: "online" as const, names: NAMES };
  const results: Record<string, unknown> = {};
  for (const [range, span] of Object.entries(CHART_RANGES)) {
    if (span > DAYS * 86_400_000) continue;
    log(`range ${range}`);
    const once = async () => JSON.stringify(await hostCharts(store, chartHost, { from: end - span, to: end, range, width: WIDTH }));
    const body = await once(); // warm
    const xs = await latencies(RUNS, once, 0);
    const parsed = JSON.parse(body) as { charts: Array<{ t: number[] }> };
    results[range] = {
      median_ms: round(percentile(xs, 50), 1), p95_ms: round(percentile(xs, 95), 1),
      json_bytes: body.length, gzip_bytes: gzipSync(body).length, max_points: Math.max(...parsed.charts.map((c) => c.t.length)),
    };
  }
  await db.close();
  console.log(JSON.stringify({ bench: "charts", ...environment(), days: DAYS, series: NAMES.length, width: WIDTH, runs: RUNS, rollup_s: rollupS, ranges: results }));
}

await main();
