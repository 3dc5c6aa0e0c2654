/**
 * Fleet log search (issue #17; npm run bench:logs [-- --quick] [-- --lines N]):
 *   1. ingest rate through the real COPY path (encodeLogs + copyInto, as src/store/postgres/writer.ts
 *      writes), with migration 500's indexes and without them, in alternating rounds; the ratio
 *      is what the indexes cost ingest;
 *   2. `lines` log lines (default 100,000,000; --quick 1,000,000) generated inside PostgreSQL
 *      with generate_series over 2,000 hosts and 48 hours ending at the end of today (UTC), from
 *      realistic templates (sshd, cron, nginx, kernel, systemd, postgres...), loaded without the
 *      indexes, which are then built as migration 500 and partition upkeep build them: (ts, id)
 *      and BRIN on the parent, the trigram index on the hourly leaves whose hour is over;
 *   3. p50/p95 of the search's query (src/logs/search.ts, first page of 100, newest first, over
 *      the last 24 h) for: a rare word, a common word, a phrase, host: + word, level:err, NOT,
 *      and a tag-scoped caller's common word; three times: with the trigram index on past days
 *      only (the design before hourly leaves: today's partition unindexed), with it also on
 *      today's sealed hours (the design: upkeep at 23:59, only the current hour unindexed),
 *      and on every partition, for comparison.
 * `--ship` measures the ClickHouse shipper's step under hourly leaves instead (log-ship.ts).
 * Prints progress on stderr and one JSON object as the last line of stdout.
 */
import { HostScope } from "../src/auth/host-scope.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { copyInto, encodeLogs, LOGS_COPY } from "../src/store/postgres/writer.ts";
import { parseLogQuery } from "../src/logs/log-query.ts";
import { searchFleetLogs } from "../src/logs/search.ts";
import { indexSealedLogPartitions } from "../src/store/postgres/partitions.ts";
import { arg, benchDatabase, environment, flag, latencies, percentile, round } from "./support.ts";

const quick = flag("quick");
const LINES = Number(arg("lines", quick ? "1000000" : "100000000"));
const HOSTS = Number(arg("hosts", "2000"));
const RUNS = Number(arg("runs", quick ? "7" : "20"));
const INGEST_LINES = Number(arg("ingest-lines", quick ? "100000" : "500000"));
const INGEST_ROUNDS = Number(arg("ingest-rounds", quick ? "2" : "3"));
const CHUNK = 2_000_000;
const LOAD_WORKERS = Number(arg("load-workers", "2"));
// which latency measurements to run (see 3. below): "before" (today unindexed) costs a sequential
// scan of a day per query, minutes a query at 100 M lines
const PHASES = arg("phases", "before,design,all").split(",");
// --plain-build: the trigram index with a plain CREATE INDEX instead of upkeep's CONCURRENTLY (the
// same index, about 2.5x faster to build; for runs at 100 M lines)
const BUILD = flag("plain-build") ? { concurrently: false } : {};
const log = (s: string) => console.error(`[bench] ${s}`);

/** Migration 500's parent indexes, and (for the ingest comparison only) the trigram index on the parent. */
const INDEXES = {
  logs_ts_id: "create index logs_ts_id on logs (ts, id)",
  logs_id_brin: "create index logs_id_brin on logs using brin (id)",
  logs_message_trgm: "create index logs_message_trgm on logs using gin (message gin_trgm_ops) with (fastupdate = on)",
};

async function dropIndexes(sql: Awaited<ReturnType<typeof benchDatabase>>["sql"]) {
  for (const name of Object.keys(INDEXES)) await sql.unsafe(`drop index if exists ${name}`);
}

/** Lines like a fleet's journal, for the COPY ingest measurement (JavaScript side). */
function ingestBatch(n: number, seed: number): { ts: Float64Array; severity: Uint8Array; sources: string[]; sourceIndex: Uint16Array; messages: string[] } {
  const now = Date.now();
  const sources = ["sshd.service", "cron.service", "nginx.service", "kernel", "systemd", "postgresql.service"];
  const messages: string[] = [];
  const sourceIndex = new Uint16Array(n);
  const severity = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = (i * 2654435761 + seed) >>> 0;
    const k = r % 6;
    sourceIndex[i] = k;
    severity[i] = k === 3 && r % 7 === 0 ? 3 : 6;
    messages.push(
      k === 0 ? `Accepted publickey for deploy from 10.${r % 256}.${(r >> 8) % 256}.${(r >> 16) % 256} port ${1024 + (r % 60000)} ssh2: ED25519 SHA256:${(r % 1e9).toString(36)}`
      : k === 1 ? `pam_unix(cron:session): session opened for user root(uid=0) by (uid=0) job ${r % 9999}`
      : k === 2 ? `10.1.${r % 256}.${(r >> 8) % 256} - - "GET /api/v1/items/${r % 100000} HTTP/1.1" 200 ${r % 50000} "-" "curl/8.5.0"`
      : k === 3 ? `EXT4-fs (sda${r % 4}): mounted filesystem ${(r % 1e9).toString(16)} r/w with ordered data mode. Quota mode: none.`
      : k === 4 ? `Started session-${r % 100000}.scope - Session ${r % 100000} of User app.`
      : `checkpoint complete: wrote ${r % 5000} buffers (${r % 100}.${r % 10}%); 0 WAL file(s) added, 0 removed, ${r % 9} recycled`,
    );
  }
  const ts = Float64Array.from({ length: n }, (_, i) => now - 3_600_000 + Math.floor((i * 3_600_000) / n));
  return { ts, severity, sources, sourceIndex, messages };
}

async function main() {
  const t0 = performance.now();
  const db = await benchDatabase({ prefix: "servermind-logbench-", partitionDays: 3 });
  const { sql } = db;
  await sql`insert into agents (hostname, public_key, last_seen, transport, agent_version, tags)
    select 'host-' || lpad(g::text, 5, '0'), decode(lpad(to_hex(g), 64, '0'), 'hex'), now(), 'h3', '0.1.0',
      array['group:' || (array['web','db','cache','batch'])[1 + g % 4], 'env=' || case when g % 10 = 0 then 'lab' else 'prod' end]
    from generate_series(1, ${HOSTS}) g`;
  const ids = (await sql`select id from agents order by id`).map((r) => Number(r.id));
  const hasTrgm = (await sql`select 1 from pg_extension where extname = 'pg_trgm'`).length === 1;
  if (!hasTrgm) throw new Error("pg_trgm is not installed in the bench database; migration 500 skipped the trigram index");

  // 1. ingest rate through COPY, alternating with and without the indexes
  const batch = ingestBatch(INGEST_LINES, 17);
  // "without": none of migration 500's indexes; "btree": (ts, id) and the BRIN on id, what
  // migration 500 leaves on the partition taking ingest; "with": the trigram index on the parent
  // too (every partition maintains it row by row), the rejected alternative
  // "with_big_pending": the same, with a 64 MB GIN pending list (the default is 4 MB)
  // "btree_daily": btree + BRIN with today's partition one plain table (the layout before hourly
  // leaves), against "btree" into today's hourly leaves: what the leaves cost ingest
  const MODES = { without: [] as string[], btree: ["logs_ts_id", "logs_id_brin"], btree_daily: ["logs_ts_id", "logs_id_brin"], with: Object.keys(INDEXES), with_big_pending: Object.keys(INDEXES) };
  const rates: Record<keyof typeof MODES, number[]> = { without: [], btree: [], btree_daily: [], with: [], with_big_pending: [] };
  // --ingest-modes btree,btree_daily: only those (more rounds of one comparison in the same time)
  const only = arg("ingest-modes", "").split(",").filter(Boolean);
  const dayStart = Math.floor(Date.now() / 86_400_000) * 86_400_000;
  const todayName = `logs_p${new Date(dayStart).toISOString().slice(0, 10).replace(/-/g, "")}`;
  const bounds = `from ('${new Date(dayStart).toISOString()}') to ('${new Date(dayStart + 86_400_000).toISOString()}')`;
  await sql.unsafe(`create table logs_today_flat (like logs including defaults including constraints)`);
  let flat = false;
  const layout = async (wantFlat: boolean) => {
    if (flat === wantFlat) return;
    await sql.unsafe(`alter table logs detach partition ${wantFlat ? todayName : "logs_today_flat"}`);
    await sql.unsafe(`alter table logs attach partition ${wantFlat ? "logs_today_flat" : todayName} for values ${bounds}`);
    flat = wantFlat;
  };
  let batchId = 0;
  for (let round_ = 0; round_ < INGEST_ROUNDS; round_++) {
    for (const mode of Object.keys(MODES) as Array<keyof typeof MODES>) {
      if (only.length && !only.includes(mode)) continue;
      await layout(mode === "btree_daily");
      await dropIndexes(sql);
      for (const name of MODES[mode]) {
        const ddl = INDEXES[name as keyof typeof INDEXES];
        await sql.unsafe(mode === "with_big_pending" ? ddl.replace("fastupdate = on", "fastupdate = on, gin_pending_list_limit = 65536") : ddl);
      }
      await sql`truncate logs`;
      const t = performance.now();
      // 1,000-line frames, 50 frames per COPY, as the batcher writes a busy fleet's logs
      for (let off = 0; off < INGEST_LINES; off += 50_000) {
        const w = new CopyWriter(1 << 20).begin();
        for (let f = off; f < Math.min(off + 50_000, INGEST_LINES); f += 1000) {
          const end = Math.min(f + 1000, INGEST_LINES);
          encodeLogs(w, ids[(f / 1000) % ids.length]!, ++batchId, {
            ts: batch.ts.subarray(f, end), severity: batch.severity.subarray(f, end), sources: batch.sources,
            sourceIndex: batch.sourceIndex.subarray(f, end), messages: batch.messages.slice(f, end),
          });
        }
        await sql.begin((tx) => copyInto(tx, LOGS_COPY, w.end()));
      }
      const rate = INGEST_LINES / ((performance.now() - t) / 1000);
      rates[mode].push(rate);
      log(`ingest round ${round_ + 1}, ${mode} indexes: ${Math.round(rate)} lines/s`);
    }
  }
  const med = (xs: number[]) => (xs.length ? percentile([...xs].sort((a, b) => a - b), 50) : NaN);
  await layout(false);
  await sql`drop table logs_today_flat`;
  await sql`truncate logs`;
  await dropIndexes(sql);

  // 2. bulk load inside PostgreSQL, then build the indexes
  // the lines end a minute before the end of today (UTC) and the queries ask from there: today's
  // partition, which takes ingest and has no trigram index, then holds a whole day of lines,
  // the worst case for the search of the last 24 h
  const now = Math.floor(Date.now() / 86_400_000) * 86_400_000 + 86_400_000 - 60_000;
  const spanMs = 48 * 3_600_000;
  log(`generating ${LINES} lines over ${HOSTS} hosts and 48 h`);
  const tLoad = performance.now();
  // chunks on LOAD_WORKERS connections at once (the expressions cost a core each)
  let next = 1;
  let loaded = 0;
  const loadChunks = async () => { for (let lo = next; lo <= LINES; lo = next) {
    next = lo + CHUNK;
    const hi = Math.min(LINES, lo + CHUNK - 1);
    // r: a pseudo-random 0..999999 per line; the templates' shares: sshd 20%, cron 15%, nginx 30%,
    // systemd 15%, postgres 10%, kernel warnings 6%, errors ("Out of memory ... disk full") 4%, the
    // rare word ("zebracorn") 1 in 100,000
    await sql.unsafe(`
      insert into logs (agent_id, batch_id, ts, severity, source, message)
      select ${ids[0]! - 1} + 1 + (g * 7919) % ${HOSTS}, g / 1000,
             to_timestamp(${(now - spanMs) / 1000} + g::float8 * ${spanMs / 1000} / ${LINES}),
             case when r < 900000 then 6 when r < 960000 then 4 when r < 999990 then 3 else 4 end,
             case when r < 200000 then 'sshd.service' when r < 350000 then 'cron.service' when r < 650000 then 'nginx.service'
                  when r < 800000 then 'systemd' when r < 900000 then 'postgresql.service' when r < 999990 then 'kernel' else 'app.service' end,
             case
               when r < 200000 then 'Accepted publickey for deploy from 10.' || (r % 256) || '.' || (g % 256) || '.' || (g % 253) || ' port ' || (1024 + g % 60000) || ' ssh2'
               when r < 350000 then 'pam_unix(cron:session): session opened for user root(uid=0) by (uid=0) job ' || (g % 9999)
               when r < 650000 then '10.1.' || (r % 256) || '.' || (g % 256) || ' - - "GET /api/v1/items/' || (g % 100000) || ' HTTP/1.1" 200 ' || (r % 50000)
               when r < 800000 then 'Started session-' || (g % 100000) || '.scope - Session ' || (g % 100000) || ' of User app.'
               when r < 900000 then 'checkpoint complete: wrote ' || (r % 5000) || ' buffers (' || (r % 100) || '%); 0 WAL file(s) added'
               when r < 960000 then 'EXT4-fs warning (device sda' || (r % 4) || '): ext4_dx_add_entry: Directory index full!'
               when r < 999990 then 'Out of memory: Killed process ' || (g % 99999) || ' (java) total-vm:' || (r % 9999999) || 'kB, disk full on /var'
               else 'zebracorn checksum mismatch in segment ' || g
             end
      from generate_series(${lo}::bigint, ${hi}::bigint) g
      cross join lateral (select ((g * 2654435761) % 1000003) % 1000000 as r) x`);
    loaded += hi - lo + 1;
    log(`  ${loaded} lines loaded (${Math.round(loaded / ((performance.now() - tLoad) / 1000))} lines/s)`);
  } };
  await Promise.all(Array.from({ length: LOAD_WORKERS }, loadChunks));
  const loadS = (performance.now() - tLoad) / 1000;
  await sql`analyze logs`;
  const build: Record<string, number> = {};
  for (const name of ["logs_ts_id", "logs_id_brin"] as const) {
    const t = performance.now();
    await sql.unsafe(INDEXES[name]);
    build[name] = round((performance.now() - t) / 1000, 1);
    log(`  index ${name} built in ${build[name]} s`);
  }
  // the design before hourly leaves: the trigram index only on the partitions of past days, as
  // if upkeep ran at 00:00 today (today's 24 leaves, holding a whole day, searched without it)
  const startOfToday = Math.floor(now / 86_400_000) * 86_400_000;
  let t1 = performance.now();
  const sealed = await indexSealedLogPartitions(sql, startOfToday, BUILD);
  build.trgm_sealed_partitions = round((performance.now() - t1) / 1000, 1);
  log(`  trigram index on ${sealed.length} partitions of past days built in ${build.trgm_sealed_partitions} s`);
  await sql`vacuum analyze logs`;
  await sql`analyze agents`;
  const sizeOf = async (rel: string) => Number((await sql`select coalesce(sum(pg_relation_size(relid)), 0)::bigint as b from pg_partition_tree(${rel}::regclass)`)[0]!.b);
  const trgmSize = async () => Number((await sql`select coalesce(sum(pg_relation_size(c.oid)), 0)::bigint as b from pg_class c where c.relname like 'logs\_p%\_message\_trgm'`)[0]!.b);
  const sizes_mb: Record<string, number> = { table: round((await sizeOf("logs")) / 1048576, 1) };
  for (const name of ["logs_ts_id", "logs_id_brin"]) sizes_mb[name] = round((await sizeOf(name)) / 1048576, 1);

  // 3. query latency
  const to = new Date(now + 60_000);
  const day = new Date(now - 86_400_000);
  const all = HostScope.system("bench");
  const scoped = HostScope.forPermission([{ permissions: ["logs.view"], tags: ["group:db"] }], "logs.view");
  const cases: Array<[string, string, HostScope]> = [
    ["rare_word", "zebracorn", all],
    ["common_word", "session", all],
    ["phrase", '"Directory index full"', all],
    ["host_and_word", `host:host-00042 session`, all],
    ["level_err_24h", "level:err", all],
    ["not", "session NOT opened", all],
    ["scoped_common_word", "session", scoped],
  ];
  const measure = async (label: string) => {
  const queries: Record<string, { p50_ms: number; p95_ms: number; rows: number }> = {};
  for (const [name, q, scope] of cases) {
    const query = parseLogQuery(q);
    const run = () => searchFleetLogs(sql, scope, { query, from: day, to, limit: 100 });
    const rows = (await run()).length; // warm
    if (flag("explain")) {
      const { logQuerySql } = await import("../src/logs/log-query.ts");
      const { inScope } = await import("../src/store/postgres/queries-console.ts");
      const plan = await sql`explain (analyze, costs off) select l.id from logs l join agents a on a.id = l.agent_id
        where l.ts >= ${day} and l.ts < ${to} ${inScope(sql, scope)} and ${logQuerySql(sql, query)} order by l.ts desc, l.id desc nulls first limit 100`;
      log(plan.map((r) => r["QUERY PLAN"]).join("\n"));
    }
    const xs = await latencies(RUNS, run, 0);
    queries[name] = { p50_ms: round(percentile(xs, 50), 1), p95_ms: round(percentile(xs, 95), 1), rows };
    log(`  ${label} ${name} (${q}): p50 ${queries[name]!.p50_ms} ms, p95 ${queries[name]!.p95_ms} ms, ${rows} rows`);
  }
  return queries;
  };
  // before: today's partition (ingest) without the trigram index, older days with it
  const todayLines = Number((await sql`select count(*)::bigint as n from logs where ts >= ${new Date(startOfToday)}`)[0]!.n);
  const queries_days_only = PHASES.includes("before") ? await measure("days-only (before)") : null;
  sizes_mb.trgm_sealed_partitions = round((await trgmSize()) / 1048576, 1);
  // now: hourly leaves, upkeep at 23:59 (the bench's `now`) has indexed every hour of today but the last
  t1 = performance.now();
  const hours = await indexSealedLogPartitions(sql, now, BUILD);
  build.trgm_todays_sealed_hours = round((performance.now() - t1) / 1000, 1);
  log(`  trigram index on ${hours.length} sealed hours of today built in ${build.trgm_todays_sealed_hours} s`);
  const currentHourLines = Number((await sql`select count(*)::bigint as n from logs where ts >= ${new Date(Math.floor(now / 3_600_000) * 3_600_000)}`)[0]!.n);
  await sql`analyze logs`;
  const queries = PHASES.includes("design") ? await measure("hourly (design)") : null;
  sizes_mb.trgm_with_todays_hours = round((await trgmSize()) / 1048576, 1);
  // for comparison: every partition indexed, the current hour too (as if the index were on the parent)
  t1 = performance.now();
  await indexSealedLogPartitions(sql, Date.now() + 3 * 86_400_000, BUILD);
  build.trgm_all_partitions = round((performance.now() - t1) / 1000 + build.trgm_sealed_partitions + build.trgm_todays_sealed_hours, 1);
  await sql`analyze logs`;
  const queries_all_partitions_indexed = PHASES.includes("all") ? await measure("all-indexed") : null;
  sizes_mb.trgm_all_partitions = round((await trgmSize()) / 1048576, 1);
  await db.close();
  const withRate = med(rates.with);
  const withoutRate = med(rates.without);
  console.log(JSON.stringify({
    bench: "logs", ...environment(), quick, lines: LINES, hosts: HOSTS, runs: RUNS, phases: PHASES, trigram_build: BUILD.concurrently === false ? "plain" : "concurrently",
    ingest: {
      lines_per_round: INGEST_LINES, rounds: INGEST_ROUNDS, with_indexes_lines_per_s: Math.round(withRate), without_indexes_lines_per_s: Math.round(withoutRate),
      btree_only_lines_per_s: Math.round(med(rates.btree)), btree_daily_partition_lines_per_s: Math.round(med(rates.btree_daily)), ratio_hourly_leaves_to_daily: round(med(rates.btree) / med(rates.btree_daily), 3), with_big_pending_lines_per_s: Math.round(med(rates.with_big_pending)), ratio_with_to_without: round(withRate / withoutRate, 3), ratio_btree_only_to_without: round(med(rates.btree) / withoutRate, 3),
    },
    load: { seconds: round(loadS, 1), lines_per_s: Math.round(LINES / loadS), lines_today: todayLines, lines_in_current_unindexed_hour: currentHourLines }, index_build_s: build, sizes_mb, queries_days_only, queries, queries_all_partitions_indexed,
    total_s: round((performance.now() - t0) / 1000, 1),
  }));
}

// --ship: hourly leaves with the ClickHouse tier on, the shipper's step and the search (log-ship.ts)
if (flag("ship")) await (await import("./log-ship.ts")).runLogShipBench();
else await main();
