/**
 * The console's range reads as one contract that both tiers answer alike, so the router
 * (query-router.ts) may pick either: the semantics are those of store/postgres/queries.ts
 * (seriesRange, searchLogs), and store/clickhouse/queries.ts reproduces them.
 * - seriesRange: one host's metrics over [from, to) in buckets of `rangeBucketMs` that start at
 *   `from`, avg/min/max per bucket, NaN (missing) samples skipped, every asked name in order.
 *   Exception: ranges PostgreSQL answers from its rollup tiers (6 hours and longer, see
 *   postgres/rollup-read.ts) come in buckets aligned to whole minutes / 10 minutes / hours instead.
 * - searchLogs: one host's lines in [from, to), case-insensitive literal text, newest first,
 *   ties by severity, source and message in byte order, at most 5,000.
 */
import type { Sql } from "postgres";
import { searchLogs, seriesRange, type LogLine, type SeriesPoints } from "./postgres/queries.ts";

export type { LogLine, SeriesPoints };
// The rules both tiers share are defined beside the PostgreSQL reads, which set the semantics.
export { logLimit, rangeBucketMs, resolveSeries } from "./postgres/queries.ts";

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

export function postgresRangeStore(sql: Sql): RangeStore {
  return {
    seriesRange: (agentId, names, from, to, maxPoints) => seriesRange(sql, agentId, names, from, to, maxPoints),
    searchLogs: (o) => searchLogs(sql, o),
  };
}
