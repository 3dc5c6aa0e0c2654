/** A log line as fleet search answers it, from PostgreSQL (search.ts) or the ClickHouse archive (archive.ts). */
export interface FleetLogLine {
  /** null for lines stored before migration 500 (they page by ts alone); "c<agent>-<batch>-<n>" for an archived line. */
  id: string | null;
  ts: Date;
  /** ts in µs since the epoch, exact (for cursors). */
  ts_us: string;
  severity: number;
  source: string;
  message: string;
  agent_id: number;
  hostname: string;
}
