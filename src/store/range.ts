/**
 * The console's range reads as one contract that both tiers answer alike, so the router
 * (query-router.ts) may pick either: the semantics are those of store/postgres/queries.ts
 * (seriesRange, searchLogs), and store/clickhouse/queries.ts reproduces them.
 * - seriesRange: one host's metrics over [from, to) in buckets of `rangeBucketMs` that start at
 *   `from`, avg/min/max per bucket, NaN (missing) samples skipped, every asked name in order.
 * - searchLogs: one host's lines in [from, to), case-insensitive literal text, newest first,
 *   ties by severity, source and message in byte order, at most 5,000.
 */
import type { Sql } from "postgres";
import { searchLogs, seriesRange, type LogLine, type SeriesPoints } from "./postgres/queries.ts";

export type { LogLine, SeriesPoints };

export interface LogSearch {
  agentId: number;
  from: Date;
  to: Date;
  text?: string;
  limit?: number;
}

export interface RangeStore {
  seriesRange(agentId: number, names: string[], from: Date, to: Date, maxPoints?: number): Promise<SeriesPoints[]>;
  searchLogs(o: LogSearch): Promise<LogLine[]>;
}

/** Bucket width: whole seconds, at least one, at most `maxPoints` buckets (as seriesRange). */
export function rangeBucketMs(from: Date, to: Date, maxPoints = 1000): number {
  const span = Math.max(1, to.getTime() - from.getTime());
  return Math.max(1000, Math.ceil(span / maxPoints / 1000) * 1000);
}

export function logLimit(limit: number | undefined): number {
  return Math.min(Math.max(1, limit ?? 200), 5000);
}

/** The series ids of one host's metric names (PostgreSQL's series dictionary is the control plane). */
export async function resolveSeries(sql: Sql, agentId: number, names: string[]): Promise<Array<{ id: number; name: string }>> {
  if (names.length === 0) return [];
  return await sql<{ id: number; name: string }[]>`
    select id, name from metric_series where agent_id = ${agentId} and name = any(${names}::text[])`;
}

export function postgresRangeStore(sql: Sql): RangeStore {
  return {
    seriesRange: (agentId, names, from, to, maxPoints) => seriesRange(sql, agentId, names, from, to, maxPoints),
    searchLogs: (o) => searchLogs(sql, o),
  };
}
