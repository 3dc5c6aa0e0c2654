/**
 * The ClickHouse part of `npm run bench:ingest -- --clickhouse`, run after the PostgreSQL
 * ingest run on the rows it committed:
 * 1. Shipping: the shipper (src/store/clickhouse/shipper.ts) catches up from an empty cursor;
 *    rows/s counts samples and log lines inserted into ClickHouse, PostgreSQL reads included.
 * 2. Ceiling: a raw RowBinary insert of the same rows (read back and encoded before the clock
 *    starts) into a table of the same schema, in inserts of the same size.
 * 3. Range reads on both tiers (src/store/{postgres,clickhouse}/queries.ts): one host's 10
 *    metrics over the whole data set at <= 1,000 points, and one host's logs by time and text;
 *    median and p95 over `--query-runs` runs each. Plus a long history: one host with
 *    `--history-days` days of 20 metrics at 10 s (COPYed into PostgreSQL with its ingest_batches
 *    rows before shipping, so it is shipped too), read as 4 metrics over 24 h and over the whole
 *    history at <= 1,000 points: the reads the ClickHouse tier is for.
 * ClickHouse is CLICKHOUSE_URL when set, else a clickhouse-server started here on 127.0.0.1.
 */
import type { Sql } from "postgres";
import { randomBytes } from "node:crypto";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { encodeMetricBlocks, METRIC_BLOCKS_COPY } from "../src/store/postgres/writer.ts";
import { createClickhouse } from "../src/store/clickhouse/client.ts";
import { createClickhouseQueries } from "../src/store/clickhouse/queries.ts";
import { ensureSchema, schemaStatements } from "../src/store/clickhouse/schema.ts";
import { ensureShipIndexes, readMetricBlocks, Shipper } from "../src/store/clickhouse/shipper.ts";
import { encodeLogLinesBinary, encodeMetricSamplesBinary, LOG_COLUMNS, METRIC_COLUMNS, type LogRow } from "../src/store/clickhouse/writer.ts";
import { postgresRangeStore } from "../src/store/range.ts";
import { startTestClickhouse } from "../test/support/clickhouse.ts";
import { percentile, round } from "./support.ts";

export interface ClickhouseBenchOptions {
  sql: Sql;
  historyDays: number;
  /** Metric names every agent sends, to pick the range query's series from. */
  names: string[];
  maxBatches: number;
  queryRuns: number;
  log: (s: string) => void;
}

/** One host with `days` days of 20 metrics at 10 s, written the way the ingest writer writes them. */
async function writeHistory(sql: Sql, days: number, log: (s: string) => void) {
  const names = Array.from({ length: 20 }, (_, i) => `history.metric_${String(i).padStart(2, "0")}`);
  const [agent] = await sql<{ id: string }[]>`
    insert into agents (hostname, public_key) values ('bench-history', ${randomBytes(32)}) returning id`;
  const agentId = Number(agent!.id);
  await sql`insert into metric_series (agent_id, name) select ${agentId}, unnest(${names}::text[])`;
  const sidRows = await sql<{ id: number; name: string }[]>`select id, name from metric_series where agent_id = ${agentId}`;
  const sidOf = new Map(sidRows.map((r) => [r.name, r.id]));
  const sids = Int32Array.from(names, (n) => sidOf.get(n)!);
  const to = Math.floor(Date.now() / 10_000) * 10_000;
  const from = to - days * 86_400_000;
  const frames = Math.floor((to - from) / 100_000);
  log(`clickhouse: writing ${days} days of history for one host (${frames * 200} samples)`);
  let batch = 0;
  for (let f0 = 0; f0 < frames; f0 += 2000) {
    const w = new CopyWriter().begin();
    const ids: number[] = [];
    for (let f = f0; f < Math.min(frames, f0 + 2000); f++) {
      const ts = Float64Array.from({ length: 10 }, (_, i) => from + f * 100_000 + i * 10_000);
      const values = Float64Array.from({ length: 200 }, (_, i) => 50 + 40 * Math.sin((f * 10 + (i % 10)) / 500 + i / 10));
      encodeMetricBlocks(w, agentId, ++batch, { ts, names, values }, sids);
      ids.push(batch);
    }
    await sql.begin(async (tx) => {
      await tx`insert into ingest_batches (agent_id, batch_id, kind) select ${agentId}, unnest(${ids}::int8[]), 1`;
      const stream = await tx.unsafe(`copy ${METRIC_BLOCKS_COPY} from stdin (format binary)`).writable();
      await new Promise<void>((ok, fail) => {
        stream.once("finish", ok);
        stream.once("error", fail);
        stream.end(Buffer.from(w.end()));
      });
    });
  }
  return { agentId, names, from, to, samples: frames * 200 };
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return { median_ms: round(percentile(s, 50), 2), p95_ms: round(percentile(s, 95), 2) };
}

export async function runClickhouseBench(o: ClickhouseBenchOptions) {
  const server = await startTestClickhouse();
  const u = new URL(server.url);
  u.pathname = `/bench_${Date.now().toString(36)}`; // a database of its own, also on a CLICKHOUSE_URL server
  const ch = createClickhouse({ url: u.toString() });
  try {
    await ensureSchema(ch);
    let t = performance.now();
    await ensureShipIndexes(o.sql);
    const indexSeconds = (performance.now() - t) / 1000;

    const history = await writeHistory(o.sql, o.historyDays, o.log);

    o.log("clickhouse: shipping everything PostgreSQL committed");
    const shipper = new Shipper({ sql: o.sql, ch, maxBatches: o.maxBatches });
    let samples = 0;
    let lines = 0;
    let steps = 0;
    let readMs = 0;
    let insertMs = 0;
    t = performance.now();
    for (;;) {
      const r = await shipper.step();
      if (r.batches === 0) break;
      samples += r.samples;
      lines += r.lines;
      readMs += r.readMs ?? 0;
      insertMs += r.insertMs ?? 0;
      steps++;
    }
    const shipSeconds = (performance.now() - t) / 1000;
    await ch.exec(`optimize table ${ch.database}.metric_samples final`);
    const [disk] = await ch.rows<{ b: number }>(
      `select sum(bytes_on_disk) / sum(rows) as b from system.parts where active and database = {db:String} and table = 'metric_samples'`,
      { db: ch.database },
    );

    o.log("clickhouse: raw insert of the same rows");
    const raw = "raw_" + Date.now().toString(36);
    for (const s of schemaStatements(ch.database, "MergeTree").slice(1)) {
      await ch.exec(s.replace(/(create table if not exists \w+\.)(\w+)/, `$1${raw}_$2`));
    }
    const batches = await o.sql<{ agent_id: string; batch_id: string; kind: number }[]>`select agent_id, batch_id, kind from ingest_batches order by xid, agent_id, batch_id`;
    const chunks: Array<{ table: string; columns: string[]; bytes: Buffer; rows: number }> = [];
    for (let i = 0; i < batches.length; i += o.maxBatches) {
      const part = batches.slice(i, i + o.maxBatches);
      const m = part.filter((b) => b.kind === 1);
      const l = part.filter((b) => b.kind === 2);
      if (m.length) {
        const blocks = await readMetricBlocks(o.sql, m.map((b) => b.agent_id), m.map((b) => b.batch_id));
        const e = encodeMetricSamplesBinary(blocks);
        chunks.push({ table: `${ch.database}.${raw}_metric_samples`, columns: METRIC_COLUMNS, bytes: Buffer.from(e.bytes), rows: e.rows });
      }
      if (l.length) {
        const rows = await o.sql<LogRow[]>`
          select lg.agent_id, lg.batch_id, floor(extract(epoch from lg.ts) * 1000)::int8 as ts, 0 as n, lg.severity, lg.source, lg.message
          from logs lg join unnest(${l.map((b) => b.agent_id)}::int8[], ${l.map((b) => b.batch_id)}::int8[]) as b(agent_id, batch_id)
            on lg.agent_id = b.agent_id and lg.batch_id = b.batch_id`;
        chunks.push({ table: `${ch.database}.${raw}_logs`, columns: LOG_COLUMNS, bytes: Buffer.from(encodeLogLinesBinary(rows)), rows: rows.length });
      }
    }
    const rawRows = chunks.reduce((n, c) => n + c.rows, 0);
    t = performance.now();
    for (const c of chunks) await ch.insertRowBinary(c.table, c.columns, c.bytes);
    const rawSeconds = (performance.now() - t) / 1000;

    o.log(`clickhouse: range reads on both tiers (${o.queryRuns} runs each)`);
    const [span] = await o.sql<{ from: string; to: string }[]>`
      select floor(extract(epoch from min(t0)) * 1000)::int8 as from, floor(extract(epoch from max(t1)) * 1000)::int8 + 1 as to from metric_blocks`;
    const [lspan] = await o.sql<{ from: string; to: string }[]>`
      select floor(extract(epoch from min(ts)) * 1000)::int8 as from, floor(extract(epoch from max(ts)) * 1000)::int8 + 1 as to from logs`;
    const agents = (await o.sql<{ id: string }[]>`select distinct agent_id as id from metric_series limit 50`).map((r) => Number(r.id));
    const logAgents = (await o.sql<{ id: string }[]>`select distinct agent_id as id from logs limit 50`).map((r) => Number(r.id));
    const tiers = { postgres: postgresRangeStore(o.sql), clickhouse: createClickhouseQueries(ch, o.sql) };
    const latency: Record<string, Record<string, ReturnType<typeof stats>>> = {};
    for (const [tier, store] of Object.entries(tiers)) {
      const range: number[] = [];
      const logs: number[] = [];
      for (let i = 0; i < o.queryRuns; i++) {
        const agentId = agents[i % agents.length]!;
        const names = o.names.slice((i * 10) % Math.max(1, o.names.length - 10)).slice(0, 10);
        let q0 = performance.now();
        await store.seriesRange(agentId, names, new Date(Number(span!.from)), new Date(Number(span!.to)), 1000);
        range.push(performance.now() - q0);
        if (logAgents.length) {
          q0 = performance.now();
          await store.searchLogs({ agentId: logAgents[i % logAgents.length]!, from: new Date(Number(lspan!.from)), to: new Date(Number(lspan!.to)), text: "publickey for deploy", limit: 200 });
          logs.push(performance.now() - q0);
        }
      }
      const h24: number[] = [];
      const hAll: number[] = [];
      const hNames = history.names.slice(0, 4);
      for (let i = 0; i < Math.max(5, Math.floor(o.queryRuns / 3)); i++) {
        let q0 = performance.now();
        await store.seriesRange(history.agentId, hNames, new Date(history.to - 86_400_000), new Date(history.to), 1000);
        h24.push(performance.now() - q0);
        q0 = performance.now();
        await store.seriesRange(history.agentId, hNames, new Date(history.from), new Date(history.to), 1000);
        hAll.push(performance.now() - q0);
      }
      latency[tier] = {
        range_10_metrics_1000_points: stats(range),
        logs_text_200: stats(logs),
        history_4_metrics_24h: stats(h24),
        [`history_4_metrics_${o.historyDays}d`]: stats(hAll),
      };
    }
    const shipped = samples + lines;
    return {
      history_samples: history.samples,
      clickhouse_version: (await ch.rows<{ v: string }>("select version() as v"))[0]!.v,
      ship_index_build_s: round(indexSeconds, 2),
      shipped_samples: samples,
      shipped_log_lines: lines,
      ship_steps: steps,
      ship_rows_per_s: Math.round(shipped / shipSeconds),
      clickhouse_bytes_per_sample: round(Number(disk?.b ?? 0), 2),
      ship_pg_read_s: round(readMs / 1000, 2),
      ship_encode_insert_s: round(insertMs / 1000, 2),
      raw_insert_rows: rawRows,
      raw_insert_rows_per_s: Math.round(rawRows / rawSeconds),
      ship_ratio: round(shipped / shipSeconds / (rawRows / rawSeconds)),
      query_latency: latency,
    };
  } finally {
    await ch.close();
    await server.close();
  }
}
