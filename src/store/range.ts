/**
 * The console's range reads, as one contract both stores answer (store/postgres/queries.ts,
 * store/clickhouse/queries.ts) with the same semantics, so a router can pick either:
 * - range: one host's N metrics over [from, to), downsampled into buckets of `step` ms that
 *   start at `from` (at most maxPoints buckets per series), each with avg/min/max/count of the
 *   samples in it; NaN (a missing sample) is left out; empty buckets are not returned.
 * - logs: one host's lines in [from, to), optionally containing `text` (case-insensitive),
 *   newest first, ties broken by severity, source, then message in byte order.
 */
export interface SeriesRef {
  id: number;
  name: string;
}

export interface RangeQuery {
  agentId: number;
  names: string[];
  /** ms since the epoch, inclusive */
  from: number;
  /** ms since the epoch, exclusive */
  to: number;
  maxPoints?: number;
}

export interface Point {
  t: number;
  avg: number;
  min: number;
  max: number;
  n: number;
}

export interface RangeResult {
  step: number;
  series: Array<{ name: string; points: Point[] }>;
}

export interface LogsQuery {
  agentId: number;
  from: number;
  to: number;
  text?: string;
  limit?: number;
}

export interface LogLine {
  ts: number;
  severity: number;
  source: string;
  message: string;
}

export const MAX_POINTS = 1000;
export const MAX_LOG_LINES = 1000;

export function bucketStep(q: Pick<RangeQuery, "from" | "to" | "maxPoints">): number {
  if (!(q.to > q.from)) throw new Error(`range query: to (${q.to}) must be after from (${q.from})`);
  const points = Math.min(Math.max(1, Math.floor(q.maxPoints ?? MAX_POINTS)), MAX_POINTS);
  return Math.max(1, Math.ceil((q.to - q.from) / points));
}

export function logLimit(q: LogsQuery): number {
  return Math.min(Math.max(1, Math.floor(q.limit ?? 200)), MAX_LOG_LINES);
}

/** Groups flat (series id, bucket, ...) rows, ordered by series then bucket, into the result. */
export function assemble(series: SeriesRef[], step: number, from: number, rows: Array<{ sid: number; b: number; avg: number; min: number; max: number; n: number }>): RangeResult {
  const byId = new Map<number, Point[]>(series.map((s) => [s.id, []]));
  for (const r of rows) byId.get(r.sid)?.push({ t: from + r.b * step, avg: r.avg, min: r.min, max: r.max, n: r.n });
  return { step, series: series.map((s) => ({ name: s.name, points: byId.get(s.id)! })) };
}

export interface RangeStore {
  range(q: RangeQuery, series: SeriesRef[]): Promise<RangeResult>;
  logs(q: LogsQuery): Promise<LogLine[]>;
}
