/**
 * `npm run bench:logs -- --ship` (issue #17): hourly `logs` leaves with the ClickHouse tier on.
 * The shipper finds a batch's lines by (agent, batch); without a time bound that read touches
 * every leaf of every retained day, which is why the tier used to keep `logs` in daily
 * partitions. Since migration 540 it reads with each batch's time range. In one run:
 *   1. `--ship-days` days (14) of `logs` partitions as upkeep leaves them after that many days
 *      (each day in 24 hourly leaves), `--ship-lines` lines (1,000,000; 400,000 with --quick)
 *      spread evenly over them up to now and `--search-lines` more (1,000,000; 500,000 with
 *      --quick) over the last 24 h, a busy day for the search (generated in PostgreSQL, without
 *      ingest_batches rows), the shipper's index and migration 500's;
 *   2. 256 live batches (50 lines each, 64 hosts, the last 5 minutes) through the real ingest
 *      writer, which records their time range;
 *   3. a copy of that database (same server) whose days are each turned into one plain table:
 *      the layout the tier kept before (today's partition without the trigram index until the
 *      day is over); the trigram index built as upkeep builds it, in both;
 *   4. one shipper step of those 256 batches into a real ClickHouse (a database per layout),
 *      `--ship-runs` times, the four cases in turn (a different one first each round): hourly
 *      leaves with the time-bounded read (migration 540) and unbounded (the batches' ranges
 *      set to null, as batches written before migration 540), daily tables unbounded (the
 *      ceiling: the step as it was with the tier on) and bounded; the cursor is set back
 *      before each step (ClickHouse's keys make the copies invisible);
 *   5. a rare word over the last 24 h through the console's search (searchFleetLogsTiered with
 *      the ClickHouse archive), `--search-runs` times, the layouts in turn.
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
import { ensurePartitions, indexSealedLogPartitions, listPartitions, plannedRelations } from "../src/store/postgres/partitions.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { createPgWriter } from "../src/store/postgres/writer.ts";
import { startTestClickhouse } from "../test/support/clickhouse.ts";
import { arg, benchDatabase, environment, flag, percentile, round } from "./support.ts";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const log = (s: string) => console.error(`[bench] ${s}`);
const med = (xs: number[]) => round(percentile([...xs].sort((a, b) => a - b), 50), 1);

/** The partitions (leaves or day tables) a plan reads, from EXPLAIN's JSON. */
async function scannedPartitions(sql: Sql, text: string, params: unknown[]): Promise<number> {
  return (await plannedRelations(sql, text, params, "logs")).length;
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
  const clients = [ch];
  const pools: Sql[] = [];
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
    const todayStart = Math.floor(now / DAY) * DAY;
    const todayLines = Number((await sql`select count(*)::bigint as n from logs where ts >= ${new Date(todayStart)}`)[0]!.n);

    // 4 (set up before measuring, so both layouts are measured side by side): a copy of the
    // database whose days are each one plain table, the layout the tier kept before
    await sql.end();
    const url = (name: string) => {
      const x = new URL(db.pg.url);
      x.pathname = `/${name}`;
      return x.toString();
    };
    const admin = createPgClient(url("template1"), 1);
    await admin`create database logs_daily template postgres`;
    await admin.end();
    const layouts = { hourly: createPgClient(db.pg.url, 4), daily: createPgClient(url("logs_daily"), 4) };
    pools.push(layouts.hourly, layouts.daily);
    let t = performance.now();
    const daily = layouts.daily;
    for (const day of await listPartitions(daily, "logs")) {
      const m = /^logs_p(\d{4})(\d{2})(\d{2})$/.exec(day);
      if (!m || (await listPartitions(daily, day)).length === 0) continue;
      const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
      await daily.begin(async (tx) => {
        await tx.unsafe(`create table ${day}_flat (like logs including defaults including constraints)`);
        await tx.unsafe(`insert into ${day}_flat select * from ${day}`);
        await tx.unsafe(`alter table logs detach partition ${day}`);
        await tx.unsafe(`drop table ${day}`);
        await tx.unsafe(`alter table ${day}_flat rename to ${day}`);
        await tx.unsafe(`alter table logs attach partition ${day} for values from ('${new Date(start).toISOString()}') to ('${new Date(start + DAY).toISOString()}')`);
      });
    }
    log(`daily tables: a copy of the database converted in ${round((performance.now() - t) / 1000, 1)} s`);
    // the trigram index as upkeep leaves it now: every sealed hour's leaf; every past day's table
    const trgmBuildS: Record<string, number> = {};
    for (const [name, lsql] of Object.entries(layouts)) {
      t = performance.now();
      const indexed = await indexSealedLogPartitions(lsql, now);
      trgmBuildS[name] = round((performance.now() - t) / 1000, 1);
      log(`${name}: trigram index on ${indexed.length} sealed partitions in ${trgmBuildS[name]} s`);
      await lsql`analyze logs`;
    }

    // 2. shipper steps, the four cases in turn (each layout ships into its own ClickHouse database)
    const chDaily = createClickhouse({ url: `${u.toString()}_daily` });
    clients.push(chDaily);
    await ensureSchema(chDaily);
    const shippers = { hourly: new Shipper({ sql: layouts.hourly, ch, maxBatches: BATCHES }), daily: new Shipper({ sql: layouts.daily, ch: chDaily, maxBatches: BATCHES }) };
    const step = async (layout: keyof typeof layouts, bounded: boolean) => {
      await layouts[layout].begin(async (tx) => {
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
      const r = await shippers[layout].step();
      const ms = performance.now() - t;
      if (r.batches !== BATCHES || r.lines !== BATCHES * PER_BATCH) throw new Error(`a step shipped ${r.batches} batches and ${r.lines} lines, not ${BATCHES} and ${BATCHES * PER_BATCH}`);
      return { ms, readMs: r.readMs ?? 0, insertMs: r.insertMs ?? 0 };
    };
    const group = logReadGroups(bounds.map((b): LogBatch => ({ ...b, empty: false })));
    if (group.length !== 1) throw new Error(`the live batches make ${group.length} read groups, not 1`);
    const partitionsRead: Record<string, { bounded: number; unbounded: number }> = {};
    for (const [name, lsql] of Object.entries(layouts)) {
      partitionsRead[name] = {
        bounded: await scannedPartitions(lsql, logLinesSql(true), logLinesParams(group[0]!)),
        unbounded: await scannedPartitions(lsql, logLinesSql(false), logLinesParams({ agents: group[0]!.agents, ids: group[0]!.ids })),
      };
      log(`${name}: partitions read by the shipper: bounded ${partitionsRead[name]!.bounded}, unbounded ${partitionsRead[name]!.unbounded}`);
    }
    const cases: Array<[keyof typeof layouts, boolean]> = [["hourly", true], ["hourly", false], ["daily", false], ["daily", true]];
    const samples = new Map<string, { ms: number[]; readMs: number[]; insertMs: number[] }>();
    for (const [layout, bounded] of cases) await step(layout, bounded); // warm
    for (let i = 0; i < RUNS; i++) {
      // a different case first in each round
      for (let k = 0; k < cases.length; k++) {
        const [layout, bounded] = cases[(i + k) % cases.length]!;
        const r = await step(layout, bounded);
        const key = `${layout}_${bounded ? "bounded" : "unbounded"}`;
        const o = samples.get(key) ?? { ms: [], readMs: [], insertMs: [] };
        samples.set(key, o);
        o.ms.push(r.ms);
        o.readMs.push(r.readMs);
        o.insertMs.push(r.insertMs);
      }
    }
    const steps: Record<string, { step_ms: number; read_ms: number; insert_ms: number }> = {};
    for (const [k, v] of samples) {
      steps[k] = { step_ms: med(v.ms), read_ms: med(v.readMs), insert_ms: med(v.insertMs) };
      log(`  ${k}: step ${steps[k]!.step_ms} ms (PostgreSQL read ${steps[k]!.read_ms} ms, ClickHouse insert ${steps[k]!.insert_ms} ms), median of ${RUNS}`);
    }

    // 3. the rare word over the last 24 h, as the console asks with the tier on, layouts in turn
    const query = parseLogQuery("zebracorn");
    const searchOpts = { query, from: new Date(now - DAY), to: new Date(now + 60_000), limit: 100 };
    const search = (layout: keyof typeof layouts) =>
      searchFleetLogsTiered(layouts[layout], HostScope.system("bench"), searchOpts, clickhouseLogArchive(layout === "hourly" ? ch : chDaily, DAYS));
    const rare: Record<string, { p50_ms: number; p95_ms: number; rows: number; archive: string }> = {};
    const times: Record<string, number[]> = { hourly: [], daily: [] };
    const first = { hourly: await search("hourly"), daily: await search("daily") };
    for (let i = 0; i < SEARCH_RUNS; i++) {
      for (const layout of (i % 2 ? ["daily", "hourly"] : ["hourly", "daily"]) as Array<keyof typeof layouts>) {
        const t = performance.now();
        await search(layout);
        times[layout]!.push(performance.now() - t);
      }
    }
    for (const layout of ["hourly", "daily"] as const) {
      const xs = times[layout]!.sort((a, b) => a - b);
      rare[layout] = { p50_ms: round(percentile(xs, 50), 1), p95_ms: round(percentile(xs, 95), 1), rows: first[layout].lines.length, archive: first[layout].archive };
      log(`  ${layout}: rare word over 24 h p50 ${rare[layout]!.p50_ms} ms, p95 ${rare[layout]!.p95_ms} ms, ${rare[layout]!.rows} rows (archive ${rare[layout]!.archive})`);
    }

    const ceiling = steps.daily_unbounded!;
    console.log(JSON.stringify({
      bench: "logs --ship", ...environment(), quick, days: DAYS, lines: LINES, search_lines: SEARCH_LINES, lines_today: todayLines, batches_per_step: BATCHES, lines_per_step: BATCHES * PER_BATCH, runs: RUNS,
      partitions_read: partitionsRead, steps, rare_word_24h: rare, trgm_build_s: trgmBuildS,
      ratios_to_daily_unbounded_step: {
        hourly_bounded_step: round(steps.hourly_bounded!.step_ms / ceiling.step_ms, 2), hourly_unbounded_step: round(steps.hourly_unbounded!.step_ms / ceiling.step_ms, 2),
        hourly_bounded_read: round(steps.hourly_bounded!.read_ms / ceiling.read_ms, 2), hourly_unbounded_read: round(steps.hourly_unbounded!.read_ms / ceiling.read_ms, 2),
      },
      rare_word_24h_ratio_hourly_to_daily: round(rare.hourly!.p50_ms / rare.daily!.p50_ms, 3),
      total_s: round((performance.now() - t0) / 1000, 1),
    }));
  } finally {
    for (const c of clients) await c.close();
    for (const p of pools) await p.end({ timeout: 5 });
    await server.close();
    await db.close();
  }
}
