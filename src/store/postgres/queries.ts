/**
 * The console's reads of telemetry, as plain functions over postgres.js (no framework).
 * Latencies are measured by bench/queries.bench.ts.
 */
import type { Sql } from "postgres";
import { BucketAgg, readRawSamples } from "./metric-blocks.ts";
import { chooseTier, chooseTierWithout10m, seriesRangeTiered, tenMinuteReaches, tierGrid } from "./rollup-read.ts";

/** Bucket width: whole seconds, at least one, at most `maxPoints` buckets. */
export function rangeBucketMs(from: Date, to: Date, maxPoints = 1000): number {
  const span = Math.max(1, to.getTime() - from.getTime());
  return Math.max(1000, Math.ceil(span / maxPoints / 1000) * 1000);
}

/** Lines a log search returns: 200 by default, 1 to 5,000. */
export function logLimit(limit: number | undefined): number {
  return Math.min(Math.max(1, limit ?? 200), 5000);
}

/** The series ids of one host's metric names (PostgreSQL's series dictionary is the control plane). */
export async function resolveSeries(sql: Sql, agentId: number, names: string[]): Promise<Array<{ id: number; name: string }>> {
  if (names.length === 0) return [];
  return await sql<{ id: number; name: string }[]>`
    select id, name from metric_series where agent_id = ${agentId} and name = any(${names}::text[])`;
}

export interface SeriesPoints {
  name: string;
  /** Bucket start times (ms since the epoch), ascending. */
  t: number[];
  avg: number[];
  min: number[];
  max: number[];
}

/**
 * One host's metrics over [from, to), downsampled to at most `maxPoints` buckets per series
 * (avg, min and max per bucket; missing samples are skipped).
 *
 * Short ranges read raw blocks (decoded in the server) in buckets of rangeBucketMs starting at `from`. Long ones
 * (chooseTier: 6 hours and more) read the rollup tiers, in buckets aligned to the tier's width
 * (rollup-read.ts), so the first bucket may start up to a minute (10 minutes, an hour) before `from`;
 * a range reaching back before an agent's first 10-minute hour (an upgraded installation) reads
 * the tiers chosen before there was one.
 */
export async function seriesRange(sql: Sql, agentId: number, names: string[], from: Date, to: Date, maxPoints = 1000): Promise<SeriesPoints[]> {
  const bucketMs = rangeBucketMs(from, to, maxPoints);
  const ids = await resolveSeries(sql, agentId, names);
  if (ids.length === 0) return names.map((name) => ({ name, t: [], avg: [], min: [], max: [] }));
  let tier = chooseTier(to.getTime() - from.getTime(), bucketMs);
  if (tier === "10m" && !(await tenMinuteReaches(sql, agentId, from.getTime(), to.getTime()))) {
    tier = chooseTierWithout10m(to.getTime() - from.getTime(), bucketMs);
  }
  if (tier !== "raw") {
    const got = await seriesRangeTiered(sql, agentId, ids, from, to, tierGrid(from.getTime(), to.getTime(), maxPoints, tier), tier);
    const byName = new Map(got.map((p) => [p.name, p]));
    return names.map((name) => byName.get(name) ?? { name, t: [], avg: [], min: [], max: [] });
  }
  const sids = ids.map((r) => r.id);
  // raw blocks are decoded and bucketed here (metric-blocks.ts): PostgreSQL cannot read them
  const agg = new BucketAgg(from.getTime(), bucketMs);
  await readRawSamples(sql, agentId, sids, from.getTime(), to.getTime(), agg.add);
  const byName = new Map(ids.map((r) => [r.name, r.id]));
  return names.map((name) => ({ name, ...agg.points(byName.get(name) ?? -1) }));
}

export interface LogLine {
  ts: Date;
  severity: number;
  source: string;
  message: string;
}

/** LIKE pattern that matches `text` literally. */
function literalLike(text: string): string {
  return "%" + text.replace(/[\\%_]/g, (c) => "\\" + c) + "%";
}

/**
 * One host's log lines in [from, to), newest first (ties by severity, source, message in byte
 * order, so both tiers page alike), optionally containing `text` (case-insensitive).
 */
export async function searchLogs(sql: Sql, o: { agentId: number; from: Date; to: Date; text?: string; limit?: number }): Promise<LogLine[]> {
  const limit = logLimit(o.limit);
  const text = o.text?.trim() ?? "";
  return await sql<LogLine[]>`
    select ts, severity, source, message from logs
    where agent_id = ${o.agentId} and ts >= ${o.from} and ts < ${o.to}
      ${text ? sql`and message ilike ${literalLike(text)}` : sql``}
    order by ts desc, severity, source collate "C", message collate "C" limit ${limit}`;
}
