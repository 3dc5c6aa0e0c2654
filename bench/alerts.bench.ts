/**
 * The alert evaluator at scale (npm run bench:alerts [-- --quick]): `--rules` rules (10,000)
 * over `--hosts` hosts (2,000, 100 series each in metric_latest) on an embedded PostgreSQL,
 * one full evaluation cycle (src/alerts/evaluator.ts: read rules, hosts, changed latest values,
 * silences; observe; store transitions; group) per simulated 10 s interval. Between cycles
 * every host's values move (a random walk, written to metric_latest as the ingest's flush
 * would), so alerts open, fire and resolve all the time.
 *
 * Rules: 99 % host and metric rules (threshold with for-duration and hysteresis, rate, absence,
 * host offline), each scoped to one of 10 host groups (200 hosts), so every cycle checks about
 * 2 M (rule, host) pairs; 1 % database rules (CIS, score drop, FIM, sign-ins, log pattern),
 * one query each.
 *
 * Prints one JSON line: median and p95 cycle time, its ratio to the interval, the in-memory
 * evaluation alone, CPU seconds per cycle of this process (the evaluator) and of PostgreSQL,
 * transitions per cycle and alerts open at the end.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { migrate } from "../src/store/postgres/migrate.ts";
import { ensurePartitions, timeSeriesTables } from "../src/store/postgres/partitions.ts";
import { Evaluator, type CycleStats } from "../src/alerts/evaluator.ts";
import { arg, environment, flag, percentile, postmasterPid, round, treeCpuSeconds } from "./support.ts";

const quick = flag("quick");
const HOSTS = Number(arg("hosts", "2000"));
const RULES = Number(arg("rules", "10000"));
const CYCLES = Number(arg("cycles", quick ? "5" : "15"));
const INTERVAL_MS = 10_000;
const SERIES = 100;
const GROUPS = 10;
const log = (s: string) => console.error(`[bench] ${s}`);

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main() {
  const rand = rng(42);
  const dir = mkdtempSync(join(tmpdir(), "servermind-alerts-bench-"));
  chmodSync(dir, 0o755);
  const pg = await startEmbeddedPg({ dataDir: join(dir, "pg"), settings: { fsync: "off" } });
  const sql = createPgClient(pg.url, 4);
  try {
    await migrate(sql);
    for (const t of timeSeriesTables(2, 2)) await ensurePartitions(sql, t);
    const pgPid = postmasterPid(pg);

    const names = [
      "cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}', 'disk.used_pct{mount="/var"}', "load.1m",
      ...Array.from({ length: SERIES - 5 }, (_, i) => `m.s${i}`),
    ];
    const bases = ["cpu.usage_pct", "mem.used_pct", "disk.used_pct", "load.1m", ...Array.from({ length: 16 }, (_, i) => `m.s${i}`)];
    log(`${HOSTS} hosts x ${SERIES} series`);
    const t0 = Date.now();
    await sql`insert into agents (hostname, public_key, tags, last_seen)
      select 'host-' || i, decode(lpad(to_hex(i), 64, '0'), 'hex'), array['group:g' || (i % ${GROUPS}), 'dc:' || (i % 4)], ${new Date(t0)}
      from generate_series(1, ${HOSTS}) i`;
    const ids = (await sql`select id from agents order by id`).map((r) => Number(r.id));
    // a healthy fleet (values 10-50, small noise) with 1 % hot hosts around the thresholds,
    // and 0.5 % of hosts that do not report m.s3 (for the absence rules)
    const hot = new Set(ids.filter((_, i) => i % 100 === 7));
    const values = ids.map((id, i) => Float64Array.from(names, (n) => (n === "m.s3" && i % 200 === 3 ? NaN : hot.has(id) ? 80 + 15 * rand() : 10 + 40 * rand())));
    const writeLatest = async (ms: number) => {
      // the table behind the metric_latest view, as the ingest flush writes it (migration 560)
      await sql`insert into metric_latest_rows (agent_id, ts, names_set, vals)
        select v.id, ${new Date(ms)}, metric_name_set(${names}::text[]), string_to_array(v.vals, ',')::float8[]
        from unnest(${ids}::int8[], ${values.map((v) => Array.from(v, (x) => (x === x ? x.toFixed(3) : "NaN")).join(","))}::text[]) as v(id, vals)
        on conflict (agent_id) do update set ts = excluded.ts, vals = excluded.vals`;
    };
    await writeLatest(t0);

    log(`${RULES} rules`);
    const dbKinds = [
      ["cis_critical", { min_severity: 7 }], ["security_score_drop", { drop: 10, window_seconds: 86400 }],
      ["fim_critical_path", { window_seconds: 600, paths: ["/etc/ssh/", "/etc/shadow"] }], ["failed_signins", { window_seconds: 600, min_count: 5 }],
      ["log_pattern", { window_seconds: 300, min_count: 3, pattern: "segfault|out of memory" }],
    ] as const;
    const rules: Array<[string, string, string, object, number, string[]]> = [];
    const dbRules = Math.max(5, Math.round(RULES / 100));
    for (let i = 0; i < RULES; i++) {
      const scope = [`group:g${i % GROUPS}`];
      const sev = ["info", "warning", "critical"][i % 3]!;
      if (i < dbRules) {
        const [kind, params] = dbKinds[i % dbKinds.length]!;
        rules.push([`db-${i}`, kind, sev, params, 0, scope]);
        continue;
      }
      const r = rand();
      const metric = bases[Math.floor(rand() * bases.length)]!;
      if (r < 0.8) {
        const threshold = 80 + Math.round(rand() * 15);
        rules.push([`thr-${i}`, "metric_threshold", sev, { metric, op: ">", threshold, clear: threshold - 5 }, [0, 30, 60][i % 3]!, scope]);
      } else if (r < 0.9) rules.push([`rate-${i}`, "metric_rate", sev, { metric, op: ">", threshold: 20 + Math.round(rand() * 20), window_seconds: 60 }, 0, scope]);
      else if (r < 0.95) rules.push([`abs-${i}`, "metric_absent", sev, { metric: "m.s3", absent_seconds: 120 }, 0, scope]);
      else rules.push([`off-${i}`, "host_offline", sev, { offline_seconds: 60 + (i % 5) * 30 }, 0, scope]);
    }
    await sql`update alert_rules set enabled = false where builtin`;
    for (let i = 0; i < rules.length; i += 1000) {
      const chunk = rules.slice(i, i + 1000);
      await sql`insert into alert_rules (name, kind, severity, params, for_seconds, scope_tags, created_by, group_wait_seconds)
        select v.n, v.k, v.s, v.p::jsonb, v.f, string_to_array(v.t, ','), 'bench', 0
        from unnest(${chunk.map((r) => r[0])}::text[], ${chunk.map((r) => r[1])}::text[], ${chunk.map((r) => r[2])}::text[],
          ${chunk.map((r) => JSON.stringify(r[3]))}::text[], ${chunk.map((r) => r[4])}::int4[], ${chunk.map((r) => r[5].join(","))}::text[]) as v(n, k, s, p, f, t)`;
    }
    // some rows for the database rules to find
    await sql`insert into cis_violations (agent_id, control_id, severity, first_seen, last_seen)
      select id, 'ssh-root', 8, now(), now() from agents where id % 50 = 0`;
    await sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
      select id, 1, now(), 3, 'kernel', 'app[1]: segfault at 0' from agents, generate_series(1, 3) where id % 100 = 0`;
    await sql`analyze`;
    const pairs = rules.filter((r) => !r[0].startsWith("db-")).length * (HOSTS / GROUPS);

    const ev = new Evaluator(sql);
    await ev.load();
    const stats: CycleStats[] = [];
    const cpu: number[] = [];
    const pgCpu: number[] = [];
    let now = t0;
    for (let c = 0; c <= CYCLES; c++) {
      now += INTERVAL_MS;
      // the fleet moves: a random walk; a few hosts stop reporting for a while
      values.forEach((v, i) => {
        const step = hot.has(ids[i]!) ? 16 : 4;
        for (let s = 0; s < 24; s++) if (v[s] === v[s]) v[s] = Math.min(100, Math.max(0, v[s]! + (rand() - 0.5) * step));
      });
      await writeLatest(now);
      await sql`update agents set last_seen = ${new Date(now)} where id % 97 <> ${c % 7}`;
      const u0 = process.cpuUsage();
      const p0 = treeCpuSeconds(pgPid);
      const s = await ev.cycle(now);
      const u = process.cpuUsage(u0);
      if (c === 0) {
        log(`first cycle (opens the initial alerts): ${Math.round(s.totalMs)} ms, ${s.opened} opened`);
        continue; // warm-up: every alert of the initial state opens at once
      }
      stats.push(s);
      cpu.push((u.user + u.system) / 1e6);
      pgCpu.push(treeCpuSeconds(pgPid) - p0);
      log(`cycle ${c}: ${Math.round(s.totalMs)} ms (evaluate ${Math.round(s.evaluateMs)} ms), ${s.opened} opened, ${s.fired} fired, ${s.resolved} resolved, ${s.notifications} notifications`);
    }
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const med = (xs: number[]) => percentile(sorted(xs), 50);
    const total = stats.map((s) => s.totalMs);
    const [{ open }] = await sql`select count(*)::int as open from alert_instances where state <> 'resolved'`;
    const [{ transitions }] = await sql`select count(*)::int as transitions from alert_transitions`;
    console.log(JSON.stringify({
      bench: "alerts",
      rules: RULES,
      database_rules: dbRules,
      hosts: HOSTS,
      series_per_host: SERIES,
      rule_host_pairs_per_cycle: pairs,
      interval_s: INTERVAL_MS / 1000,
      cycles: stats.length,
      median_cycle_ms: round(med(total), 1),
      p95_cycle_ms: round(percentile(sorted(total), 95), 1),
      ratio_to_interval: round(med(total) / INTERVAL_MS, 4),
      median_evaluate_ms: round(med(stats.map((s) => s.evaluateMs)), 1),
      cpu_s_per_cycle: round(med(cpu), 3),
      pg_cpu_s_per_cycle: round(med(pgCpu), 3),
      cpu_share_of_one_core: round((med(cpu) + med(pgCpu)) / (INTERVAL_MS / 1000), 4),
      median_transitions_per_cycle: med(stats.map((s) => s.opened + s.fired + s.resolved)),
      open_alerts_at_end: open,
      transitions_stored: transitions,
      env: environment(),
    }));
  } finally {
    await sql.end({ timeout: 5 });
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
