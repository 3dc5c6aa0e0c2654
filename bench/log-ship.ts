/**
 * `npm run bench:logs -- --ship` (issue #17): hourly `logs` leaves with the ClickHouse tier on.
 * The shipper finds a batch's lines by (agent, batch); without a time bound that read touches
 * every leaf of every retained day, which is why the tier used to keep `logs` in daily
 * partitions. Since migration 540 it reads with each batch's time range. In one run:
 *   1. `--ship-days` days (14) of `logs` partitions as upkeep leaves them after that many days
 *      (each day in 24 hourly leaves), `--ship-lines` lines (1,000,000; 400,000 with --quick)
 *      spread evenly over them up to now and `--search-lines` more (1,000,000; 500,000 with
 *      --quick) over the last 24 h, a busy day for the search (generated in PostgreSQL, without
 *      ingest_batches rows), the shipper's index and migration 500's, and the trigram index on
 *      every sealed leaf;
 *   2. 256 live batches (50 lines each, 64 hosts, the last 5 minutes) through the real ingest
 *      writer, which records their time range; then one shipper step of those 256 batches into
 *      a real ClickHouse, `--ship-runs` times (the cursor set back each time; ClickHouse's keys
 *      make the copies invisible), alternating the time-bounded read and the unbounded one
 *      (the batches' ranges set to null, as batches written before migration 540);
 *   3. a rare word over the last 24 h through the console's search (searchFleetLogsTiered with
 *      the ClickHouse archive), `--search-runs` times;
 *   4. then every day turned into one plain table (the layout the tier kept before: today's
 *      partition without the trigram index until the day is over), and steps 2 (unbounded, the
 *      ceiling: the step as it was with the tier on) and 3 again.
 * Reports medians of the step's total and PostgreSQL read time, the partitions each read
 * scans (EXPLAIN), and ratios against the daily layout's step measured in the same run.
 */
import type { Sql } from "postgres";
import { HostScope } from "../src/auth/host-scope.ts";
import { Batch, type PendingFrame } from "../src/batch/batch.ts";
import { FrameKind, type LogsBody } from "../src/ingest/frame/frame.ts";
import { clickhouseLogArchive } from "../src/logs/archive.ts";
import { parseLogQuery } from "../src/logs/log-query.ts";
import { searchFleetLogsTiered } from "../src/logs/search.ts";
import { createClickhouse } from "../src/store/clickhouse/client.ts";
import { ensureSchema } from "../src/store/clickhouse/schema.ts";
import { ensureShipIndexes, logLinesParams, logLinesSql, logReadGroups, Shipper, type LogBatch } from "../src/store/clickhouse/shipper.ts";
import { ensurePartitions, indexSealedLogPartitions, listPartitions } from "../src/store/postgres/partitions.ts";
import { createPgWriter } from "../src/store/postgres/writer.ts";
import { startTestClickhouse } from "../test/support/clickhouse.ts";
import { arg, benchDatabase, environment, flag, percentile, round } from "./support.ts";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const log = (s: string) => console.error(`[bench] ${s}`);
const med = (xs: number[]) => round(percentile([...xs].sort((a, b) => a - b), 50), 1);

/** The partitions (leaves or day tables) a plan reads, from EXPLAIN's JSON. */
async function scannedPartitions(sql: Sql, text: string, params: unknown[]): Promise<number> {
  const [plan] = await sql.unsafe<{ "QUERY PLAN": unknown }[]>(`explain (costs off, format json) ${text}`, params as never[]);
  const names = new Set<string>();
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === "object") {
      const rel = (n as Record<string, unknown>)["Relation Name"];
      if (typeof rel === "string" && rel.startsWith("logs")) names.add(rel);
      Object.values(n).forEach(walk);
    }
  };
  walk(plan!["QUERY PLAN"]);
  return names.size;
}

export async function runLogShipBench(): Promise<void> {
  const t0 = performance.now();
  const quick = flag("quick");
  const DAYS = Number(arg("ship-days", "14"));
  const LINES = Number(arg("ship-lines", quick ? "400000" : "1000000"));
  const RUNS = Number(arg("ship-runs", quick ? "5" : "9"));
  const SEARCH_RUNS = Number(arg("search-runs", quick ? "7" : "15"));
  const SEARCH_LINES = Number(arg("search-lines", quick ? "500000" : "1000000"));
  const HOSTS = 64;
  const BATCHES = 256;
  const PER_BATCH = 50;
  const db = await benchDatabase({ prefix: "servermind-logship-", partitionDays: 3 });
  const { sql } = db;
  const server = await startTestClickhouse();
  const u = new URL(server.url);
  u.pathname = `/bench_${Date.now().toString(36)}`;
  const ch = createClickhouse({ url: u.toString() });
  try {
    await ensureSchema(ch);
    const now = Date.now();
    // 1. the partitions upkeep leaves after DAYS days with hourly leaves: every day in 24 leaves
    for (const p of await listPartitions(sql, "logs")) if (p !== "logs_default") await sql.unsafe(`drop table ${p}`);
    for (let k = DAYS; k >= 0; k--) await ensurePartitions(sql, { table: "logs", column: "ts", retentionDays: 0, hourly: true }, now - k * DAY);
    await ensureShipIndexes(sql);
    await sql`insert into agents (hostname, public_key) select 'host-' || g, decode(lpad(to_hex(g), 64, '0'), 'hex') from generate_series(1, ${HOSTS}) g`;
    const ids = (await sql<{ id: string }[]>`select id from agents order by id`).map((r) => Number(r.id));
    // n lines evenly from `fromMs` to `toMs`; batch ids from 10^9 (none of the live batches');
    // 1 line in 100,000 holds the rare word
    const insertLines = async (n: number, fromMs: number, toMs: number, batchBase: number) => {
      for (let lo = 1; lo <= n; lo += 1_000_000) {
        const hi = Math.min(n, lo + 999_999);
        await sql.unsafe(`
          insert into logs (agent_id, batch_id, ts, severity, source, message)
          select ${ids[0]!} + g % ${HOSTS}, ${batchBase} + g / 500, to_timestamp(${fromMs / 1000} + g::float8 * ${(toMs - fromMs) / 1000} / ${n}), 6,
            case when g % 3 = 0 then 'sshd.service' when g % 3 = 1 then 'nginx.service' else 'cron.service' end,
            case when g % 100000 = 77 then 'zebracorn checksum mismatch in segment ' || g
                 when g % 3 = 0 then 'Accepted publickey for deploy from 10.1.' || (g % 256) || '.' || (g % 253) || ' port ' || (1024 + g % 60000) || ' ssh2'
                 when g % 3 = 1 then '10.1.' || (g % 256) || '.' || (g % 251) || ' - - "GET /api/v1/items/' || (g % 100000) || ' HTTP/1.1" 200 ' || (g % 50000)
                 else 'pam_unix(cron:session): session opened for user root(uid=0) by (uid=0) job ' || (g % 9999) end
          from generate_series(${lo}::bigint, ${hi}::bigint) g`);
      }
    };
    log(`generating ${LINES} lines over ${DAYS} days and today, and ${SEARCH_LINES} more over the last 24 h (${(await listPartitions(sql, "logs")).length} day partitions)`);
    await insertLines(LINES, Math.floor(now / DAY) * DAY - DAYS * DAY, now - 10 * 60_000, 1_000_000_000);
    await insertLines(SEARCH_LINES, now - DAY, now - 10 * 60_000, 2_000_000_000);
    await sql`analyze logs`;

    // 2. the live batches, through the writer (which records each batch's time range)
    const write = createPgWriter({ sql });
    for (let b = 0; b < BATCHES; b += 32) {
      const batch = new Batch(0);
      for (let f = b; f < b + 32; f++) {
        const end = now - 60_000 + f * 100;
        const body: LogsBody = {
          ts: Float64Array.from({ length: PER_BATCH }, (_, i) => end - (PER_BATCH - i) * 5_000),
          severity: new Uint8Array(PER_BATCH).fill(6),
          sources: ["sshd.service"],
          sourceIndex: new Uint16Array(PER_BATCH),
          messages: Array.from({ length: PER_BATCH }, (_, i) => `Accepted publickey for deploy from 10.9.${f % 256}.${i} port ${40000 + i} ssh2`),
        };
        const agentId = ids[f % HOSTS]!;
        batch.add({
          agentId, batchId: 1 + f, seq: 1 + f, createdMs: end, data: { kind: FrameKind.Logs, body } as PendingFrame["data"], bytes: 5000, rows: PER_BATCH,
          receivedAt: 0, transport: "bench", accept: () => {}, reject: () => {},
        });
      }
      await write(batch);
    }
    const bounds = await sql<{ agent_id: string; batch_id: string; ts_min: Date; ts_max: Date }[]>`select agent_id, batch_id, ts_min, ts_max from ingest_batches`;
    const shipper = new Shipper({ sql, ch, maxBatches: BATCHES });
    const step = async (bounded: boolean) => {
      await sql.begin(async (tx) => {
        if (bounded) {
          await tx`update ingest_batches b set ts_min = v.lo, ts_max = v.hi
            from unnest(${bounds.map((r) => r.agent_id)}::int8[], ${bounds.map((r) => r.batch_id)}::int8[], ${bounds.map((r) => r.ts_min.toISOString())}::timestamptz[], ${bounds.map((r) => r.ts_max.toISOString())}::timestamptz[]) as v(a, id, lo, hi)
            where b.agent_id = v.a and b.batch_id = v.id`;
        } else {
          await tx`update ingest_batches set ts_min = null, ts_max = null`;
        }
        await tx`update clickhouse_cursor set xid = '0', agent_id = 0, batch_id = 0`;
      });
      const t = performance.now();
      const r = await shipper.step();
      const ms = performance.now() - t;
      if (r.batches !== BATCHES || r.lines !== BATCHES * PER_BATCH) throw new Error(`a step shipped ${r.batches} batches and ${r.lines} lines, not ${BATCHES} and ${BATCHES * PER_BATCH}`);
      return { ms, readMs: r.readMs ?? 0, insertMs: r.insertMs ?? 0 };
    };
    const group = logReadGroups(bounds.map((b): LogBatch => ({ ...b, empty: false })));
    if (group.length !== 1) throw new Error(`the live batches make ${group.length} read groups, not 1`);
    const scans = async () => ({
      bounded: await scannedPartitions(sql, logLinesSql(true), logLinesParams(group[0]!)),
      unbounded: await scannedPartitions(sql, logLinesSql(false), logLinesParams({ agents: group[0]!.agents, ids: group[0]!.ids })),
    });
    const measureSteps = async (label: string, modes: boolean[]) => {
      const out: Record<string, { ms: number[]; readMs: number[]; insertMs: number[] }> = {};
      for (const bounded of modes) await step(bounded); // warm
      for (let i = 0; i < RUNS; i++) {
        for (const bounded of i % 2 ? [...modes].reverse() : modes) {
          const r = await step(bounded);
          const o = (out[bounded ? "bounded" : "unbounded"] ??= { ms: [], readMs: [], insertMs: [] });
          o.ms.push(r.ms);
          o.readMs.push(r.readMs);
          o.insertMs.push(r.insertMs);
        }
      }
      const res: Record<string, { step_ms: number; read_ms: number; insert_ms: number }> = {};
      for (const [k, v] of Object.entries(out)) {
        res[k] = { step_ms: med(v.ms), read_ms: med(v.readMs), insert_ms: med(v.insertMs) };
        log(`  ${label}, ${k} read: step ${res[k]!.step_ms} ms (PostgreSQL read ${res[k]!.read_ms} ms, ClickHouse insert ${res[k]!.insert_ms} ms), median of ${RUNS}`);
      }
      return res;
    };

    // 3. the rare word over the last 24 h, as the console asks with the tier on
    const archive = clickhouseLogArchive(ch, DAYS);
    const search = async (label: string) => {
      const query = parseLogQuery("zebracorn");
      const o = { query, from: new Date(now - DAY), to: new Date(now + 60_000), limit: 100 };
      const run = () => searchFleetLogsTiered(sql, HostScope.system("bench"), o, archive);
      const first = await run();
      const xs: number[] = [];
      for (let i = 0; i < SEARCH_RUNS; i++) {
        const t = performance.now();
        await run();
        xs.push(performance.now() - t);
      }
      xs.sort((a, b) => a - b);
      const r = { p50_ms: round(percentile(xs, 50), 1), p95_ms: round(percentile(xs, 95), 1), rows: first.lines.length, archive: first.archive };
      log(`  ${label}: rare word over 24 h p50 ${r.p50_ms} ms, p95 ${r.p95_ms} ms, ${r.rows} rows (archive ${r.archive})`);
      return r;
    };
    const todayStart = Math.floor(now / DAY) * DAY;
    const todayLines = Number((await sql`select count(*)::bigint as n from logs where ts >= ${new Date(todayStart)}`)[0]!.n);

    // hourly leaves (the design now)
    let t = performance.now();
    const indexedHourly = await indexSealedLogPartitions(sql, now);
    const trgmHourlyS = round((performance.now() - t) / 1000, 1);
    log(`hourly leaves: trigram index on ${indexedHourly.length} sealed leaves in ${trgmHourlyS} s`);
    await sql`analyze logs`;
    const hourlyScans = await scans();
    log(`  partitions read: bounded ${hourlyScans.bounded}, unbounded ${hourlyScans.unbounded}`);
    const hourly = await measureSteps("hourly leaves", [true, false]);
    const hourlySearch = await search("hourly leaves, sealed hours indexed");

    // 4. daily tables (the layout the tier kept before), with the same rows
    t = performance.now();
    for (const day of await listPartitions(sql, "logs")) {
      const m = /^logs_p(\d{4})(\d{2})(\d{2})$/.exec(day);
      if (!m || (await listPartitions(sql, day)).length === 0) continue;
      const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
      await sql.begin(async (tx) => {
        await tx.unsafe(`create table ${day}_flat (like logs including defaults including constraints)`);
        await tx.unsafe(`insert into ${day}_flat select * from ${day}`);
        await tx.unsafe(`alter table logs detach partition ${day}`);
        await tx.unsafe(`drop table ${day}`);
        await tx.unsafe(`alter table ${day}_flat rename to ${day}`);
        await tx.unsafe(`alter table logs attach partition ${day} for values from ('${new Date(start).toISOString()}') to ('${new Date(start + DAY).toISOString()}')`);
      });
    }
    log(`daily tables: converted in ${round((performance.now() - t) / 1000, 1)} s`);
    t = performance.now();
    const indexedDaily = await indexSealedLogPartitions(sql, now);
    const trgmDailyS = round((performance.now() - t) / 1000, 1);
    log(`daily tables: trigram index on ${indexedDaily.length} past days in ${trgmDailyS} s`);
    await sql`analyze logs`;
    const dailyScans = await scans();
    log(`  partitions read: bounded ${dailyScans.bounded}, unbounded ${dailyScans.unbounded}`);
    const daily = await measureSteps("daily tables", [false, true]);
    const dailySearch = await search("daily tables, today unindexed");

    const ceiling = daily.unbounded!;
    console.log(JSON.stringify({
      bench: "logs --ship", ...environment(), quick, days: DAYS, lines: LINES, search_lines: SEARCH_LINES, lines_today: todayLines, batches_per_step: BATCHES, lines_per_step: BATCHES * PER_BATCH, runs: RUNS,
      hourly_leaves: { partitions_read: hourlyScans, steps: hourly, rare_word_24h: hourlySearch, trgm_build_s: trgmHourlyS },
      daily_tables: { partitions_read: dailyScans, steps: daily, rare_word_24h: dailySearch, trgm_build_s: trgmDailyS },
      ratios_to_daily_unbounded_step: {
        hourly_bounded_step: round(hourly.bounded!.step_ms / ceiling.step_ms, 2), hourly_unbounded_step: round(hourly.unbounded!.step_ms / ceiling.step_ms, 2),
        hourly_bounded_read: round(hourly.bounded!.read_ms / ceiling.read_ms, 2), hourly_unbounded_read: round(hourly.unbounded!.read_ms / ceiling.read_ms, 2),
      },
      rare_word_24h_ratio_hourly_to_daily: round(hourlySearch.p50_ms / dailySearch.p50_ms, 3),
      total_s: round((performance.now() - t0) / 1000, 1),
    }));
  } finally {
    await ch.close();
    await server.close();
    await db.close();
  }
}
