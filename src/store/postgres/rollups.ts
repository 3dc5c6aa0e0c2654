/**
 * The rollup job: keeps the rollup tiers (1-minute, 10-minute, 1-hour; migrations 490, 520, 555)
 * equal to what metric_blocks holds, one (agent, hour) at a time.
 *
 * Exactly once. Inserts into metric_blocks leave a mark (agent, hour) in metric_rollup_dirty in
 * the inserting transaction. A step, in one transaction under an advisory lock (one node runs it;
 * the others' steps return `leader: false`):
 *   1. deletes the marks of up to `maxPairs` (agent, hour) pairs whose hour ended `closeAfterMs` ago,
 *   2. deletes those hours' 1-minute and 1-hour rows and recomputes them wholly, 1-minute from
 *      the raw samples and 1-hour from those 1-minute aggregates, written as blocks
 *      (rollup-blocks.ts, migration 520; rows of migration 490's tables are deleted, not rewritten);
 *      the 10-minute tier holds a row per (agent, day), so its rows of those days are decoded, the
 *      hours' buckets replaced by ones from the new 1-minute aggregates (an hour without samples
 *      leaves none), the hours' bits set, and the rows written anew (migration 555),
 *   3. compacts those hours' raw rows (compaction.ts), in a savepoint: a failed compaction rolls
 *      back alone and the rollups still commit.
 * Each statement of a READ COMMITTED transaction sees everything committed before it started, so
 * the recompute (2) sees every block whose mark (1) deleted; a block committed later left its own
 * mark, which stays for the next step. A crash or error rolls all of it back, marks included, and
 * a recompute replaces the rows, so no sample is ever counted twice or dropped. Late data (an
 * agent resending its spool hours later) marks its hour again and the hour is recomputed.
 *
 * Readers (rollup-read.ts) read a dirty hour raw, so the job's lag never changes an answer; it
 * only decides how much is read raw.
 */
import type { Sql, TransactionSql } from "postgres";
import { CopyWriter } from "./copy-binary.ts";
import { BucketAgg, fromBase64, visitBlock } from "./metric-blocks.ts";
import { copyInto } from "./writer.ts";
import { compactHours, type CompactionResult } from "./compaction.ts";
import {
  encodeRollupRows, encodeTenMinuteRows, ROLLUP_10M_COPY_COLUMNS, ROLLUP_10M_TABLE, ROLLUP_BLOCK_TABLES, ROLLUP_BLOCKS_COPY_COLUMNS,
  visitRollupBlock, type RollupAgg,
} from "./rollup-blocks.ts";

export const ROLLUP_LOCK = 0x5e7e490;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const TEN_MINUTES = 600_000;

export interface RollupOptions {
  sql: Sql;
  /** Days metric_blocks keeps (marks older than what raw still holds are dropped, not recomputed). */
  rawDays: number;
  /** (agent, hour) pairs per step (transaction). */
  maxPairs?: number;
  /** An hour is rolled up once it ended this long ago (frames of the hour still arriving are read raw). */
  closeAfterMs?: number;
  now?: () => number;
  /**
   * Also replace the raw rows of each recomputed hour by compacted ones (compaction.ts; default
   * true). Off while the ClickHouse tier ships raw rows by their batch ids.
   */
  compact?: boolean;
  log?: (s: string) => void;
  /** Test hook: runs inside the step's transaction after the rows were rewritten, before commit. */
  beforeCommit?: (tx: TransactionSql) => Promise<unknown>;
}

export interface RollupStep {
  /** false when another node holds the rollup lock */
  leader: boolean;
  /** (agent, hour) pairs recomputed */
  pairs: number;
  /** 1-minute aggregates (series x minute) written */
  minuteRows: number;
  /** marks dropped because raw no longer holds their hour */
  expired: number;
  /** what compaction rewrote (absent when off or nothing was picked) */
  compacted?: CompactionResult;
}

/** One step of the job (see the module comment). */
export async function rollupStep(o: RollupOptions): Promise<RollupStep> {
  const now = (o.now ?? Date.now)();
  const closedBefore = new Date(now - (o.closeAfterMs ?? 120_000) - HOUR);
  const rawCutoff = new Date(Math.floor(now / DAY) * DAY - o.rawDays * DAY + HOUR);
  return await o.sql.begin(async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${ROLLUP_LOCK}) as ok`;
    if (!lock!.ok) return { leader: false, pairs: 0, minuteRows: 0, expired: 0 };
    const expired = (await tx`delete from metric_rollup_dirty where hour < ${rawCutoff}`).count;
    await tx`delete from metric_compactions where hour < ${rawCutoff}`;
    const picked = await tx<{ agent_id: string; hour: Date }[]>`
      select distinct agent_id, hour from metric_rollup_dirty where hour <= ${closedBefore}
      order by hour, agent_id limit ${o.maxPairs ?? 100}`;
    if (picked.length === 0) return { leader: true, pairs: 0, minuteRows: 0, expired };
    const agents = picked.map((p) => p.agent_id);
    const hours = picked.map((p) => p.hour.toISOString());
    // constant bounds as well as the per-pair ones, so the planner prunes partitions and uses the
    // (agent_id, t0) index instead of joining the pairs against every block
    const lo = new Date(Math.min(...picked.map((p) => p.hour.getTime())));
    const hi = new Date(Math.max(...picked.map((p) => p.hour.getTime())) + HOUR);
    // (1) the marks; the statements below start later, so they see every block these marks cover
    await tx`
      delete from metric_rollup_dirty d using unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
      where d.agent_id = p.a and d.hour = p.h`;
    // (2) replace both tiers of those hours: the rows of migration 490's tables (still read) and
    // the block rows (rollup-blocks.ts)
    await tx`
      delete from metric_rollup_1m r using unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
      where r.agent_id = p.a and r.bucket >= p.h and r.bucket < p.h + interval '1 hour'
        and r.agent_id = any(${agents}::int8[]) and r.bucket >= ${lo} and r.bucket < ${hi}`;
    await tx`
      delete from metric_rollup_1h r using unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
      where r.agent_id = p.a and r.bucket = p.h and r.agent_id = any(${agents}::int8[]) and r.bucket >= ${lo} and r.bucket < ${hi}`;
    for (const table of [ROLLUP_BLOCK_TABLES["1m"], ROLLUP_BLOCK_TABLES["1h"]]) {
      await tx`
        delete from ${tx(table)} r using unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
        where r.agent_id = p.a and r.hour = p.h and r.agent_id = any(${agents}::int8[]) and r.hour >= ${lo} and r.hour < ${hi}`;
    }
    // both tiers from raw: blocks are decoded here (metric-blocks.ts), in this transaction, so
    // the read is a statement after the marks' delete like the SQL it replaced
    const minuteRows = await recompute(tx, agents, hours, lo, hi);
    let compacted: CompactionResult | undefined;
    if (o.compact !== false) {
      // in a savepoint: a compaction that fails leaves the raw rows as they were, the rollups commit
      try {
        compacted = await tx.savepoint((sp) => compactHours(sp, agents, hours, lo, hi));
      } catch (e) {
        (o.log ?? ((s) => console.error(s)))(`metric compaction skipped: ${e instanceof Error ? e.message : e}`);
      }
    }
    await o.beforeCommit?.(tx);
    return { leader: true, pairs: picked.length, minuteRows, expired, compacted };
  });
}

/**
 * Computes and inserts both tiers of the (agent, hour) pairs from their raw samples, both layouts
 * (compressed blocks decoded here, pre-495 float8[] rows unnested by PostgreSQL): the 1-minute
 * aggregates, and the 1-hour ones from those. Returns the 1-minute aggregates written.
 */
async function recompute(tx: TransactionSql, agents: string[], hours: string[], lo: Date, hi: Date): Promise<number> {
  const byAgent = new Map<string, BucketAgg>();
  const aggOf = (a: string) => {
    let g = byAgent.get(a);
    if (!g) byAgent.set(a, (g = new BucketAgg(0, 60_000)));
    return g;
  };
  // a block spanning two picked hours of an agent comes once per hour, each time cut to that hour
  const blocks = await tx<{ a: string; h: number; t0: number; block: string }[]>`
    select p.a::text as a, (extract(epoch from p.h) * 1000)::float8 as h, (extract(epoch from b.t0) * 1000)::float8 as t0, encode(b.block, 'base64') as block
    from unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
    join metric_blocks b on b.agent_id = p.a and b.t0 >= p.h - interval '1 hour' and b.t0 < p.h + interval '1 hour' and b.t1 >= p.h
    where b.agent_id = any(${agents}::int8[]) and b.t0 >= ${new Date(lo.getTime() - HOUR)} and b.t0 < ${hi} and b.block is not null`;
  for (const r of blocks) visitBlock(r.t0, fromBase64(r.block), undefined, r.h, r.h + HOUR, aggOf(r.a).add);
  const legacy = await tx<{ a: string; sid: number; t: number; v: number }[]>`
    select p.a::text as a, b.series[k.i] as sid, s.t, s.v
    from unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
    join metric_blocks b on b.agent_id = p.a and b.t0 >= p.h - interval '1 hour' and b.t0 < p.h + interval '1 hour' and b.t1 >= p.h
    cross join lateral generate_subscripts(b.series, 1) k(i)
    cross join lateral (
      select (extract(epoch from b.t0) * 1000)::float8 + o.off as t, o.v
      from unnest(b.ts_off, b.vals[(k.i - 1) * cardinality(b.ts_off) + 1 : k.i * cardinality(b.ts_off)]) as o(off, v)
    ) s
    where b.agent_id = any(${agents}::int8[]) and b.t0 >= ${new Date(lo.getTime() - HOUR)} and b.t0 < ${hi} and b.block is null
      and s.t >= extract(epoch from p.h) * 1000 and s.t < extract(epoch from p.h) * 1000 + ${HOUR} and s.v <> 'NaN'::float8`;
  for (const r of legacy) aggOf(r.a).add(r.sid, r.t, r.v);
  const w1m = new CopyWriter(1 << 16).begin();
  const w1h = new CopyWriter(1 << 14).begin();
  // "agent:day" -> the picked hours' 10-minute aggregates
  const tens = new Map<string, BucketAgg>();
  let aggregates = 0, rows1m = 0, rows1h = 0;
  for (const [a, g] of byAgent) {
    const agent = Number(a);
    // series -> minute -> aggregate, split by hour
    const byHour = new Map<number, Map<number, Map<number, RollupAgg>>>();
    for (const [sid, m] of g.by) {
      for (const [minute, x] of m) {
        const hour = minute - (((minute % HOUR) + HOUR) % HOUR);
        let h = byHour.get(hour);
        if (!h) byHour.set(hour, (h = new Map()));
        let ms = h.get(sid);
        if (!ms) h.set(sid, (ms = new Map()));
        ms.set(minute, x);
        aggregates++;
      }
    }
    for (const [hour, bySid] of byHour) {
      rows1m += encodeRollupRows(w1m, agent, hour, bySid, "1m");
      const hourly = new BucketAgg(0, HOUR);
      for (const [sid, ms] of bySid) for (const [minute, x] of ms) hourly.merge(sid, minute, x.min, x.max, x.sum, x.count);
      rows1h += encodeRollupRows(w1h, agent, hour, hourly.by, "1h");
      const key = `${a}:${Math.floor(hour / DAY) * DAY}`;
      let ten = tens.get(key);
      if (!ten) tens.set(key, (ten = new BucketAgg(0, TEN_MINUTES)));
      for (const [sid, ms] of bySid) for (const [minute, x] of ms) ten.merge(sid, minute, x.min, x.max, x.sum, x.count);
    }
  }
  if (rows1m) await copyInto(tx, ROLLUP_BLOCK_TABLES["1m"] + " " + ROLLUP_BLOCKS_COPY_COLUMNS, w1m.end());
  if (rows1h) await copyInto(tx, ROLLUP_BLOCK_TABLES["1h"] + " " + ROLLUP_BLOCKS_COPY_COLUMNS, w1h.end());
  await mergeTenMinute(tx, agents, hours, tens);
  return aggregates;
}

/**
 * Replaces the picked (agent, hour) pairs' buckets in their days' 10-minute rows by `tens` (see
 * the module comment) and sets their hours' bits. The day's other hours keep their buckets and
 * bits; a row's bits are those of every row of its (agent, day), which are always written together.
 */
async function mergeTenMinute(tx: TransactionSql, agents: string[], hours: string[], tens: Map<string, BucketAgg>): Promise<void> {
  const days = new Map<string, { agent: number; day: number; bits: number }>();
  agents.forEach((a, i) => {
    const h = Date.parse(hours[i]!);
    const day = Math.floor(h / DAY) * DAY;
    const key = `${a}:${day}`;
    const d = days.get(key) ?? { agent: Number(a), day, bits: 0 };
    d.bits |= 1 << ((h - day) / HOUR);
    days.set(key, d);
  });
  const keys = [...days.values()];
  const dAgents = keys.map((d) => String(d.agent));
  const dDays = keys.map((d) => new Date(d.day).toISOString());
  const lo = new Date(Math.min(...keys.map((d) => d.day)));
  const hi = new Date(Math.max(...keys.map((d) => d.day)) + DAY);
  const old = await tx<{ a: string; day: number; hours: number; block: string }[]>`
    delete from ${tx(ROLLUP_10M_TABLE)} r using unnest(${dAgents}::int8[], ${dDays}::timestamptz[]) p(a, d)
    where r.agent_id = p.a and r.day = p.d and r.agent_id = any(${dAgents}::int8[]) and r.day >= ${lo} and r.day < ${hi}
    returning r.agent_id::text as a, (extract(epoch from r.day) * 1000)::float8 as day, r.hours, encode(r.block, 'base64') as block`;
  const kept = new Map<string, { hours: number; agg: BucketAgg }>();
  for (const r of old) {
    const key = `${r.a}:${r.day}`;
    const replaced = days.get(key)!.bits;
    let k = kept.get(key);
    if (!k) kept.set(key, (k = { hours: r.hours, agg: new BucketAgg(0, TEN_MINUTES) }));
    k.hours &= r.hours;
    visitRollupBlock(r.day, fromBase64(r.block), undefined, r.day, r.day + DAY, (sid, t, min, max, sum, count) => {
      if (!(replaced & (1 << Math.floor((t - r.day) / HOUR)))) k.agg.merge(sid, t, min, max, sum, count);
    });
  }
  const w = new CopyWriter(1 << 14).begin();
  let rows = 0;
  for (const [key, d] of days) {
    const k = kept.get(key);
    const agg = k?.agg ?? new BucketAgg(0, TEN_MINUTES);
    for (const [sid, ts] of tens.get(key)?.by ?? []) for (const [t, x] of ts) agg.merge(sid, t, x.min, x.max, x.sum, x.count);
    rows += encodeTenMinuteRows(w, d.agent, d.day, (k?.hours ?? 0) | d.bits, agg.by);
  }
  if (rows) await copyInto(tx, ROLLUP_10M_TABLE + " " + ROLLUP_10M_COPY_COLUMNS, w.end());
}

/**
 * Runs steps every `everyMs` (back to back while a step finds a full batch, at most `maxSteps`
 * in a row, so a backfill after an outage proceeds without starving the pool); returns a stop
 * function that waits for a running step.
 */
export function startRollups(o: RollupOptions & { everyMs?: number; maxSteps?: number }): { stop(): Promise<void>; runNow(): Promise<void> } {
  const log = o.log ?? ((s) => console.error(s));
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const run = async () => {
    for (let i = 0; i < (o.maxSteps ?? 50) && !stopped; i++) {
      const r = await rollupStep(o);
      if (!r.leader || r.pairs < (o.maxPairs ?? 100)) break;
    }
  };
  const tick = () => {
    running = running.then(run).catch((e) => log(`metric rollups failed: ${e instanceof Error ? e.message : e}`));
    return running;
  };
  const timer = setInterval(() => void tick(), o.everyMs ?? 30_000);
  void tick();
  return {
    runNow: tick,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
