/**
 * Daily range partitions for the time-series tables: created ahead of time (rows that arrive
 * early or late land in the table's default partition and are moved when their day's
 * partition is created), dropped whole once past retention.
 */
import type { Sql } from "postgres";

export interface PartitionedTable {
  table: string;
  column: string;
  retentionDays: number;
  /** Days per partition (default 1); partitions start on multiples of it since the epoch. */
  spanDays?: number;
  /**
   * Each (one-day) partition is itself range-partitioned into 24 hourly leaves, named
   * `<day partition>_hHH` (logs: the search's trigram index is built on each leaf once its
   * hour is over, so at most the current hour is searched without it). Days stay the unit of
   * retention: dropping a day's partition drops its leaves.
   */
  hourly?: boolean;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;

function dayName(table: string, t: number): string {
  return `${table}_p${new Date(t).toISOString().slice(0, 10).replace(/-/g, "")}`;
}

function iso(t: number): string {
  return new Date(t).toISOString().slice(0, 10);
}

export async function listPartitions(sql: Sql, table: string): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i
    join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
    where p.relname = ${table} order by 1`;
  return rows.map((r) => r.name);
}

/** Ensures partitions from `now - retention` to `now + aheadDays`; returns those created. */
export async function ensurePartitions(sql: Sql, t: PartitionedTable, now = Date.now(), aheadDays = 2): Promise<string[]> {
  const have = new Set(await listPartitions(sql, t.table));
  const created: string[] = [];
  const span = (t.spanDays ?? 1) * DAY;
  const first = Math.floor((Math.floor(now / DAY) * DAY - t.retentionDays * DAY) / span) * span;
  const last = Math.floor(now / DAY) * DAY + aheadDays * DAY;
  for (let d = first; d <= last; d += span) {
    const name = dayName(t.table, d);
    if (have.has(name)) continue;
    // hourly leaves only for days not over yet: a past day (created when retention is filled in at
    // first start) takes no ingest and gets its index whole; 24 leaves a day cost creation time
    const hourly = t.hourly === true && d + span > Math.floor(now / DAY) * DAY;
    await sql.begin(async (tx) => {
      await tx.unsafe(`create table ${name} (like ${t.table} including defaults including constraints including storage)${hourly ? ` partition by range (${t.column})` : ""}`);
      if (hourly) {
        for (let h = 0; h < 24; h++) {
          const from = new Date(d + h * HOUR).toISOString();
          const to = new Date(d + (h + 1) * HOUR).toISOString();
          await tx.unsafe(`create table ${name}_h${String(h).padStart(2, "0")} partition of ${name} for values from ('${from}') to ('${to}')`);
        }
      }
      // Rows that arrived before this partition existed sit in the default partition.
      await tx.unsafe(
        `with moved as (delete from ${t.table}_default where ${t.column} >= $1 and ${t.column} < $2 returning *)
         insert into ${name} select * from moved`,
        [iso(d), iso(d + span)],
      );
      await tx.unsafe(`alter table ${t.table} attach partition ${name} for values from ('${iso(d)}') to ('${iso(d + span)}')`);
    });
    created.push(name);
  }
  return created;
}

/** Drops partitions that end before `now - retention` and purges old rows from the default one. */
export async function dropExpired(sql: Sql, t: PartitionedTable, now = Date.now()): Promise<string[]> {
  const cutoff = Math.floor(now / DAY) * DAY - t.retentionDays * DAY;
  const dropped: string[] = [];
  for (const name of await listPartitions(sql, t.table)) {
    const m = /_p(\d{4})(\d{2})(\d{2})$/.exec(name);
    if (!m) continue;
    const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
    if (start + (t.spanDays ?? 1) * DAY <= cutoff) {
      await sql.unsafe(`drop table ${name}`);
      dropped.push(name);
    }
  }
  await sql.unsafe(`delete from ${t.table}_default where ${t.column} < $1`, [new Date(cutoff).toISOString()]);
  return dropped;
}

/**
 * The partitioned tables and their retention. `rollups` adds the rollup tiers (rollups.ts):
 * 1-minute in 7-day partitions, 10-minute and 1-hour in 30-day ones; without it their rows stay in the
 * default partitions (tests), which works the same, only without dropping whole partitions.
 * Today's and future days' `logs` partitions get hourly leaves (see PartitionedTable.hourly), with
 * the ClickHouse tier too: its shipper reads each batch's lines within the batch's time range
 * (migration 540), so it touches only the leaves they can be in.
 */
export function timeSeriesTables(metricsDays: number, logsDays: number, rollups?: { minuteDays: number; tenMinuteDays: number; hourDays: number }): PartitionedTable[] {
  return [
    { table: "metric_blocks", column: "t0", retentionDays: metricsDays },
    { table: "logs", column: "ts", retentionDays: logsDays, hourly: true },
    { table: "security_events", column: "ts", retentionDays: Math.max(metricsDays, 90) },
    ...(rollups
      ? [
          { table: "metric_rollup_1m_blocks", column: "hour", retentionDays: rollups.minuteDays, spanDays: 7 },
          { table: "metric_rollup_10m_blocks", column: "day", retentionDays: rollups.tenMinuteDays, spanDays: 30 },
          { table: "metric_rollup_1h_blocks", column: "hour", retentionDays: rollups.hourDays, spanDays: 30 },
          // migration 490's row-per-bucket tables: still read, no longer written; they empty with retention
          { table: "metric_rollup_1m", column: "bucket", retentionDays: rollups.minuteDays, spanDays: 7 },
          { table: "metric_rollup_1h", column: "bucket", retentionDays: rollups.hourDays, spanDays: 30 },
        ]
      : []),
  ];
}

/**
 * The log search's trigram index (migration 500) on each `logs` partition whose time is over:
 * the hourly leaves of a day's partition (`logs_pYYYYMMDD_hHH`, see PartitionedTable.hourly)
 * once their hour has ended, and whole-day partitions (created before hourly leaves, or by
 * callers without them) once their day has ended. Built once, CONCURRENTLY (late lines keep
 * flowing in meanwhile), never on the leaf that takes the current ingest, where the index
 * would cost most of the COPY rate (bench:logs: 0.13x). A failed concurrent build leaves an
 * invalid index; it is dropped and built again at the next run. Nothing happens without the
 * pg_trgm extension. Returns the partitions indexed now. `concurrently: false` builds with a
 * plain CREATE INDEX (the same index, about 2.5x faster, but it blocks writes to the partition):
 * for bench:logs, which loads its lines before it builds.
 */
export async function indexSealedLogPartitions(sql: Sql, now = Date.now(), o: { concurrently?: boolean } = {}): Promise<string[]> {
  const concurrently = o.concurrently === false ? "" : "concurrently";
  if ((await sql`select 1 from pg_extension where extname = 'pg_trgm'`).length === 0) return [];
  const sealed: string[] = [];
  for (const day of await listPartitions(sql, "logs")) {
    const m = /^logs_p(\d{4})(\d{2})(\d{2})$/.exec(day);
    if (!m) continue;
    const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
    if (start >= now) continue;
    const leaves = await listPartitions(sql, day);
    if (leaves.length === 0) {
      if (start + DAY <= now) sealed.push(day);
      continue;
    }
    for (const leaf of leaves) {
      const h = /_h(\d{2})$/.exec(leaf);
      if (h && start + (Number(h[1]) + 1) * HOUR <= now) sealed.push(leaf);
    }
  }
  const done: string[] = [];
  for (const name of sealed) {
    // an empty partition needs no index yet (late lines for it get one at a later run)
    if ((await sql.unsafe(`select 1 from ${name} limit 1`)).length === 0) continue;
    const index = `${name}_message_trgm`;
    const [have] = await sql<{ valid: boolean }[]>`select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = ${index}`;
    if (have?.valid) continue;
    if (have) await sql.unsafe(`drop index ${concurrently} if exists ${index}`);
    await sql.unsafe(`create index ${concurrently} ${index} on ${name} using gin (message gin_trgm_ops)`);
    done.push(name);
  }
  return done;
}

/** Runs partition upkeep now and then every `everyMs`; returns a stop function. */
export function startPartitionUpkeep(sql: Sql, tables: PartitionedTable[], everyMs = 3_600_000): { ready: Promise<void>; stop(): void } {
  const run = async () => {
    for (const t of tables) {
      await ensurePartitions(sql, t);
      await dropExpired(sql, t);
    }
    // batch dedupe only needs to outlive the raw tables, not the rollup tiers
    const keep = Math.max(...tables.filter((t) => !t.table.startsWith("metric_rollup_")).map((t) => t.retentionDays));
    await sql`delete from ingest_batches where committed_at < now() - make_interval(days => ${keep})`;
  };
  // the log search's trigram builds may take minutes: in the background, never two at once,
  // not part of `ready`, and first a few minutes after start (a concurrent build holds a lock
  // on its partition that DDL on the parent, such as the ClickHouse shipper's index at start,
  // would queue behind)
  let building = false;
  const index = () => {
    if (building || !tables.some((t) => t.table === "logs")) return;
    building = true;
    void indexSealedLogPartitions(sql)
      .catch((e) => console.error(`log search index build failed (retried at the next upkeep): ${e.message}`))
      .finally(() => (building = false));
  };
  const ready = run();
  const first = setTimeout(index, Math.min(everyMs, 5 * 60_000));
  // hourly log leaves are sealed every hour: look for them every 5 minutes
  const often = setInterval(index, Math.min(everyMs, 5 * 60_000));
  const timer = setInterval(() => void run().then(index).catch((e) => console.error(`partition upkeep failed: ${e.message}`)), everyMs);
  return {
    ready,
    stop: () => {
      clearTimeout(first);
      clearInterval(often);
      clearInterval(timer);
    },
  };
}

/**
 * The tables (partitions included) whose names start with `prefix` that PostgreSQL's plan for
 * `text` reads, sorted: what partition pruning leaves of a query (EXPLAIN, nothing executed).
 */
export async function plannedRelations(sql: Sql, text: string, params: unknown[], prefix: string): Promise<string[]> {
  const [plan] = await sql.unsafe<{ "QUERY PLAN": unknown }[]>(`explain (costs off, format json) ${text}`, params as never[]);
  const names = new Set<string>();
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === "object") {
      const rel = (n as Record<string, unknown>)["Relation Name"];
      if (typeof rel === "string" && rel.startsWith(prefix)) names.add(rel);
      Object.values(n).forEach(walk);
    }
  };
  walk(plan!["QUERY PLAN"]);
  return [...names].sort();
}
