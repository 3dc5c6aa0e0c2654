/**
 * Fleet log search in the ClickHouse archive (src/logs/archive.ts): lines older than PostgreSQL's
 * log retention, searched with the console's query language through the production code, host
 * scope included. `--lines` lines (default 100 M; 5 M with `--quick`) over `--hosts` hosts and
 * `--days` days are generated inside ClickHouse (INSERT ... SELECT FROM numbers), then each query
 * runs `--runs` times (20; 5 with `--quick`): median and p95, and for each the same condition as
 * one plain ClickHouse `count()` in the same run (`ceiling_ms`, the cost of finding the lines at
 * all; the archive also groups away re-shipped copies and sorts for the newest 100).
 *
 * ClickHouse is CLICKHOUSE_URL when set, else a clickhouse-server started here on 127.0.0.1.
 * The last line is JSON.
 */
import { HostScope } from "../src/auth/host-scope.ts";
import { clickhouseLogArchive } from "../src/logs/archive.ts";
import { parseLogQuery } from "../src/logs/log-query.ts";
import { createClickhouse } from "../src/store/clickhouse/client.ts";
import { ensureSchema, LOGS_TABLE } from "../src/store/clickhouse/schema.ts";
import { startTestClickhouse } from "../test/support/clickhouse.ts";
import { arg, benchDatabase, environment, flag, round, timeRuns } from "./support.ts";

const quick = flag("quick");
const LINES = Number(arg("lines", quick ? "5000000" : "100000000"));
const HOSTS = Number(arg("hosts", "2000"));
const DAYS = Number(arg("days", "30"));
const RUNS = Number(arg("runs", quick ? "5" : "20"));
const PG_DAYS = 3;
const DAY = 86_400_000;
const log = (s: string) => console.error(`[bench] ${s}`);

async function main() {
  const db = await benchDatabase({ prefix: "servermind-archive-bench-" });
  const server = await startTestClickhouse();
  const u = new URL(server.url);
  u.pathname = `/bench_${Date.now().toString(36)}`;
  const ch = createClickhouse({ url: u.toString() });
  try {
    await ensureSchema(ch);
    const { sql } = db;
    // hosts: web-N in group:web (a tenth), the rest db-N / app-N
    await sql`insert into agents (hostname, public_key, tags)
      select case when g % 10 = 0 then 'web-' when g % 2 = 0 then 'db-' else 'app-' end || g,
             decode(lpad(to_hex(g), 64, '0'), 'hex'),
             array[case when g % 10 = 0 then 'group:web' else 'group:other' end]
      from generate_series(1, ${HOSTS}) g`;
    const [first] = await sql`select min(id)::int8 as id from agents`;
    const firstId = Number(first!.id);
    // the archive's days: from DAYS + PG_DAYS days ago to PG_DAYS days ago (what PostgreSQL no longer keeps)
    const end = Math.floor(Date.now() / DAY) * DAY - PG_DAYS * DAY;
    const start = end - DAYS * DAY;
    const step = Math.max(1, Math.floor((end - start) / LINES));
    log(`${LINES} lines over ${HOSTS} hosts and ${DAYS} days, generated in ClickHouse`);
    let t = performance.now();
    const chunk = 10_000_000;
    for (let off = 0; off < LINES; off += chunk) {
      const n = Math.min(chunk, LINES - off);
      await ch.exec(
        `insert into ${ch.database}.${LOGS_TABLE} (agent_id, ts, batch_id, n, severity, source, message)
         select {first:UInt64} + (number % {hosts:UInt64}) as agent_id,
                {start:Int64} + toInt64(number) * {step:Int64} as ts,
                intDiv(number, 200) as batch_id,
                toUInt32(number % 200) as n,
                toInt16(if(number % 97 = 0, 3, if(number % 13 = 0, 4, 6))) as severity,
                arrayElement(['sshd.service', 'nginx.service', 'cron.service', 'kernel', 'postgresql.service'], 1 + number % 5) as source,
                multiIf(number % 97 = 0, concat('Failed password for root from 10.0.', toString(number % 251), '.', toString(number % 13), ' port ', toString(20000 + number % 40000)),
                        number % 1000003 = 0, concat('zebra checksum mismatch on block ', toString(number)),
                        number % 13 = 0, concat('disk full on /var: ', toString(number % 100), '% used'),
                        concat('session opened for user app by (uid=', toString(number % 1000), ') pid ', toString(number % 65536))) as message
         from numbers({off:UInt64}, {n:UInt64})`,
        { first: firstId, hosts: HOSTS, start, step, off, n },
      );
    }
    const loadS = (performance.now() - t) / 1000;
    t = performance.now();
    await ch.exec(`optimize table ${ch.database}.${LOGS_TABLE} final`);
    const [size] = await ch.rows<{ rows: string; bytes: string }>(
      `select sum(rows) as rows, sum(bytes_on_disk) as bytes from system.parts where database = {db:String} and table = {t:String} and active`,
      { db: ch.database, t: LOGS_TABLE },
    );
    log(`loaded in ${loadS.toFixed(1)} s, merged in ${((performance.now() - t) / 1000).toFixed(1)} s: ${size!.rows} rows, ${(Number(size!.bytes) / 1e6).toFixed(0)} MB`);

    const archive = clickhouseLogArchive(ch, PG_DAYS);
    const ALL = HostScope.system("bench");
    const WEB = HostScope.forPermission([{ permissions: ["logs.view"], tags: ["group:web"] }], "logs.view");
    const web = (await sql`select id from agents where hostname like 'web-%' order by id`).map((r) => Number(r.id));
    const from = new Date(start);
    const to = new Date(end);
    // each case: the console's query, the scope, and the same condition as plain ClickHouse SQL (the ceiling)
    const cases: Array<{ name: string; q: string; scope: HostScope; raw: string }> = [
      { name: "level_err", q: "level:err", scope: ALL, raw: "severity <= 3" },
      { name: "common_word", q: "failed", scope: ALL, raw: "position(lowerUTF8(message), 'failed') > 0" },
      { name: "rare_word", q: "zebra", scope: ALL, raw: "position(lowerUTF8(message), 'zebra') > 0" },
      { name: "phrase_and_level", q: '"disk full" level:warning', scope: ALL, raw: "position(lowerUTF8(message), 'disk full') > 0 and severity <= 4" },
      { name: "host_glob_and_unit", q: "host:web-* unit:postgresql.service", scope: ALL, raw: "agent_id in {web:Tuple(UInt64)} and source = 'postgresql.service'" },
      { name: "not_and_or", q: "(failed OR zebra) NOT unit:kernel", scope: ALL, raw: "(position(lowerUTF8(message), 'failed') > 0 or position(lowerUTF8(message), 'zebra') > 0) and source != 'kernel'" },
      { name: "scoped_rare_word", q: "zebra", scope: WEB, raw: "position(lowerUTF8(message), 'zebra') > 0 and agent_id in {web:Tuple(UInt64)}" },
    ];
    const results: Record<string, unknown> = {};
    for (const c of cases) {
      log(`query ${c.name}: ${c.q}`);
      const query = parseLogQuery(c.q);
      let found = 0;
      const m = await timeRuns(RUNS, async () => {
        found = (await archive.search(sql, c.scope, { query, from, to, limit: 100 })).length;
      });
      const ceiling = await timeRuns(RUNS, () => ch.rows(`select count() from ${ch.database}.${LOGS_TABLE} where ts >= {from:Int64} and ts < {to:Int64} and ${c.raw}`, { from: start, to: end, web }));
      results[c.name] = { ...m, ceiling_median_ms: ceiling.median_ms, ratio: round(m.median_ms / Math.max(0.01, ceiling.median_ms)), returned: found };
    }
    console.log(JSON.stringify({
      bench: "log-archive", ...environment(), quick, lines: Number(size!.rows), hosts: HOSTS, days: DAYS, runs: RUNS,
      load_lines_per_s: Math.round(LINES / loadS), bytes_per_line: round(Number(size!.bytes) / Number(size!.rows), 1), ...results,
    }));
  } finally {
    await ch.close();
    await server.close();
    await db.close();
  }
}

await main();
