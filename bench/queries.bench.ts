/**
 * Latency of the console's telemetry queries (npm run bench:queries [-- --quick]) on data of a
 * realistic shape (the values replay bench/workload-realistic.ts' recording of the agent's own
 * collectors, at the agent's precision), written with the same COPY encoders as the ingest path:
 *   - fleet overview: the console's fleet query (latest cpu/mem/disk) over `hosts` hosts
 *   - one host's 4 metrics over 1 h, 24 h, 7 d, 30 d and 90 d, downsampled to <= 1000 points
 *     (the host has `days` of history, 90 by default; ranges longer than that are skipped).
 *     Before timing, the rollup job (src/store/postgres/rollups.ts) is run until it has rolled
 *     up every closed hour, as a running server's would have; its time is reported. On a
 *     checkout without rollups the bench runs the same reads on raw blocks (a "before" number).
 *   - one host's logs over 1 h and 24 h, newest 200, with and without a text filter
 * Reports median and p95 of `runs` runs each, as one JSON line; `p95_ms` (and its older name
 * `range_p95_ms`) repeats the p95 per range: { "1h", "24h", "7d", "30d", "90d" }. --quick: 5 runs, 10 metrics per host instead of 100 (the same 90 days).
 */
import "../src/allocator-boot.ts"; // the server's allocator setting, for the server code this process runs
import { HostScope } from "../src/auth/host-scope.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { copyInto, encodeLogs, encodeMetricBlocks, LOGS_COPY, METRIC_BLOCKS_COPY } from "../src/store/postgres/writer.ts";
import { searchLogs, seriesRange } from "../src/store/postgres/queries.ts";
import { FLEET_METRICS, fleetOverview, fleetSummary } from "../src/store/postgres/queries-console.ts";
import { ensurePartitions, timeSeriesTables } from "../src/store/postgres/partitions.ts";
import { arg, countArg, environment, flag, latencies, percentile, round, benchDatabase, treeCpuSeconds, waitIdle } from "./support.ts";
import { realisticWorkload } from "./workload-realistic.ts";

const quick = flag("quick");
const HOSTS = Number(arg("hosts", "2000"));
const DAYS = Number(arg("days", "90"));
const RUNS = countArg("runs", quick ? 5 : 20, 1, 10_000);
const WARM_RUNS = countArg("warm-runs", 10, 0, 10_000);
const LOG_HOSTS = Number(arg("log-hosts", quick ? "10" : "100"));
const LINES_PER_HOST = Number(arg("lines-per-host", quick ? "5000" : "10000"));
const METRICS = Number(arg("metrics", quick ? "10" : "100"));
const log = (s: string) => console.error(`[bench] ${s}`);

async function copy(sql: ReturnType<typeof createPgClient>, target: string, bytes: Uint8Array) {
  await sql.begin((tx) => copyInto(tx, target, bytes));
}

/**
 * Median and p95 of `runs` runs after WARM_RUNS unmeasured ones; the slowest five go to the log,
 * to tell a lone stall from a slow plan. The warm runs are the server's steady state: JavaScriptCore
 * compiles a read's hot functions with its optimizing tier after some calls, on a thread of its
 * own, and with one warm run that compile landed in a measured run now and then (25-85 ms, once a
 * read; none with the tier off, BUN_JSC_useFTLJIT=0), which a running server pays once.
 */
async function time(runs: number, fn: () => Promise<unknown>): Promise<{ median_ms: number; p95_ms: number; max_ms: number }> {
  const xs = await latencies(runs, fn, WARM_RUNS);
  log(`  slowest: ${xs.slice(-5).map((x) => x.toFixed(1)).join(", ")} ms`);
  return { median_ms: round(percentile(xs, 50), 2), p95_ms: round(percentile(xs, 95), 2), max_ms: round(xs.at(-1)!, 2) };
}

async function main() {
  const db = await benchDatabase({ prefix: "servermind-qbench-", partitionDays: DAYS + 1 });
  const { sql } = db;
  // the rollup tiers' partitions (a checkout without rollups lists no such tables and skips them)
  for (const t of timeSeriesTables(DAYS + 1, 3, { minuteDays: DAYS + 1, tenMinuteDays: DAYS + 1, hourDays: DAYS + 1 })) {
    if (t.table.startsWith("metric_rollup_")) await ensurePartitions(sql, t);
  }
  const names = Array.from({ length: METRICS }, (_, i) => (i === 0 ? FLEET_METRICS.cpu : i === 1 ? FLEET_METRICS.mem : i === 2 ? FLEET_METRICS.disk : `m.${i}`));

  log(`${HOSTS} hosts with latest values`);
  await sql`insert into agents (hostname, public_key, last_seen, transport, agent_version)
    select 'host-' || lpad(g::text, 5, '0'), decode(lpad(to_hex(g), 64, '0'), 'hex'), now(), 'h3', '0.1.0' from generate_series(1, ${HOSTS}) g`;
  await sql`insert into metric_latest (agent_id, ts, names, vals)
    select id, now(), ${names}::text[], array(select random() * 100 from generate_series(1, ${METRICS})) from agents`;

  log(`one host: ${DAYS} days of ${METRICS} metrics at 10 s`);
  const [h] = await sql`select id from agents order by id limit 1`;
  const host = Number(h!.id);
  await sql`insert into metric_series (agent_id, name) select ${host}, unnest(${names}::text[])`;
  const ids = Int32Array.from((await sql`select id from metric_series where agent_id = ${host} order by id`).map((r) => r.id));
  const end = Math.floor(Date.now() / 10_000) * 10_000;
  const start = end - DAYS * 86_400_000;
  // values replay this machine's recorded telemetry (bench/workload-realistic.ts), as the agent
  // sends it: a name of the recording replays its own series, the others series j of it
  const replay = realisticWorkload(Math.max(METRICS, 100));
  const source = names.map((n, j) => {
    const k = replay.names.indexOf(n);
    return k >= 0 ? k : j;
  });
  let w = new CopyWriter().begin();
  let batch = 0;
  for (let t = start; t < end; t += 100_000) {
    const ts = Float64Array.from({ length: 10 }, (_, i) => t + i * 10_000);
    const values = new Float64Array(METRICS * 10);
    for (let j = 0; j < METRICS; j++) for (let k = 0; k < 10; k++) values[j * 10 + k] = replay.value(host, source[j]!, Math.round(ts[k]! / replay.intervalMs));
    encodeMetricBlocks(w, host, ++batch, { ts, names, values }, ids);
    if (w.pos > 8 << 20) {
      await copy(sql, METRIC_BLOCKS_COPY, w.end());
      w = new CopyWriter().begin();
    }
  }
  await copy(sql, METRIC_BLOCKS_COPY, w.end());

  log(`${LOG_HOSTS} hosts x ${LINES_PER_HOST} log lines over 24 h`);
  const words = ["sshd", "kernel", "cron", "nginx", "systemd", "postgres"];
  for (let a = 0; a < LOG_HOSTS; a++) {
    const lw = new CopyWriter().begin();
    const n = LINES_PER_HOST;
    const ts = Float64Array.from({ length: n }, (_, i) => end - 86_400_000 + Math.floor((i * 86_400_000) / n));
    const messages = Array.from({ length: n }, (_, i) => `${words[i % 6]}[${1000 + (i % 97)}]: ${i % 50 === 0 ? "Failed password for root" : "session opened for user app"} from 10.0.${i % 255}.${(i * 7) % 255} port ${20000 + i}`);
    encodeLogs(lw, host + a, ++batch, { ts, severity: new Uint8Array(n).fill(6), sources: ["syslog"], sourceIndex: new Uint16Array(n), messages });
    await copy(sql, LOGS_COPY, lw.end());
  }
  let rollup: { seconds: number; pairs: number } | null = null;
  const rollups = await import("../src/store/postgres/rollups.ts").catch(() => null);
  if (rollups) {
    log("rolling up every closed hour (the rollup job)");
    const t = performance.now();
    let pairs = 0;
    for (let i = 0; i < 10_000; i++) {
      const r = await rollups.rollupStep({ sql, rawDays: DAYS + 1, maxPairs: 200 });
      pairs += r.pairs;
      if (r.pairs === 0) break;
    }
    rollup = { seconds: round((performance.now() - t) / 1000, 1), pairs };
  } else log("no rollups in this checkout: ranges read raw blocks");
  await sql`vacuum analyze`;
  // the setup's dirty pages written now (a checkpoint) and PostgreSQL idle (autovacuum, the
  // checkpointer's tail) before the first read is timed, and the setup's garbage (90 days of
  // generated samples, the job's aggregates) collected: reads measured, not the setup's wake
  await sql`checkpoint`;
  await waitIdle(() => treeCpuSeconds(db.pgPid));
  Bun.gc(true);

  const at = (msAgo: number) => new Date(end - msAgo);
  // the fourth: the highest m.j up to m.42 that replays a moving gauge (not a constant)
  let fourth = Math.min(42, METRICS - 1);
  while (fourth > 3 && replay.kinds[source[fourth]!] !== "gauge") fourth--;
  const four = [FLEET_METRICS.cpu, FLEET_METRICS.mem, FLEET_METRICS.disk, names[fourth]!];
  log(`reading ${JSON.stringify(four)}, the last replaying ${replay.names[source[fourth]!]}`);
  const ranges: Array<[string, number]> = [["1h", 3_600_000], ["24h", 86_400_000], ["7d", 7 * 86_400_000], ["30d", 30 * 86_400_000], ["90d", 90 * 86_400_000]];
  const range: Record<string, { median_ms: number; p95_ms: number } | null> = {};
  for (const [name, ms] of ranges) {
    log(`range ${name}`);
    range[`range_${name}`] = ms <= DAYS * 86_400_000 ? await time(RUNS, () => seriesRange(sql, host, four, at(ms), at(0))) : null;
  }
  const results = {
    // the console's own fleet queries as the fleet page runs them by default: the first page of
    // 250 hosts sorted by CPU and the counts over the whole fleet (src/web/fleet/routes.ts)
    fleet_latest: await time(RUNS, () => Promise.all([
      fleetOverview(sql, HostScope.system("bench"), { sort: "cpu", desc: true, limit: 250, offset: 0 }),
      fleetSummary(sql, HostScope.system("bench"), {}),
    ])),
    // every host on one page (per=all)
    fleet_all: await time(RUNS, () => fleetOverview(sql, HostScope.system("bench"), { sort: "cpu", desc: true })),
    ...range,
    logs_1h: await time(RUNS, () => searchLogs(sql, { agentId: host, from: at(3_600_000), to: at(0) })),
    logs_24h_text: await time(RUNS, () => searchLogs(sql, { agentId: host, from: at(86_400_000), to: at(0), text: "failed password" })),
    logs_24h_rare_text: await time(RUNS, () => searchLogs(sql, { agentId: host, from: at(86_400_000), to: at(0), text: "port 20999" })),
  };
  const pts = await seriesRange(sql, host, four, at(DAYS * 86_400_000), at(0));
  await db.close();
  const range_p95_ms = Object.fromEntries(ranges.map(([name]) => [name, range[`range_${name}`]?.p95_ms ?? null]));
  console.log(JSON.stringify({ bench: "queries", ...environment(), quick, hosts: HOSTS, days: DAYS, metrics: METRICS, runs: RUNS, rollups: rollup, max_points_returned: Math.max(...pts.map((p) => p.t.length)), ...results, range_p95_ms, p95_ms: range_p95_ms }));
}

await main();
