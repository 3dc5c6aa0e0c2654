/**
 * The ClickHouse store writer: rows read back from PostgreSQL (metric blocks, log lines) in,
 * one RowBinary insert per table out (exact floats, no text parsing). Metric blocks are unrolled to one row per sample
 * (ClickHouse's natural layout; it compresses the sorted columns itself). NaN marks a missing
 * sample in PostgreSQL and is not shipped.
 */
import type { Clickhouse } from "./client.ts";
import { RowBinaryWriter } from "./row-binary.ts";
import { LOGS_TABLE, METRICS_TABLE } from "./schema.ts";

export interface MetricBlockRow {
  agent_id: string | number;
  batch_id: string | number;
  /** ms since the epoch */
  t0: string | number;
  ts_off: number[];
  series: number[];
  vals: number[];
}

export interface LogRow {
  agent_id: string | number;
  batch_id: string | number;
  ts: string | number;
  /** ordinal of the line among its batch's lines, in a content order (see shipper.ts) */
  n: string | number;
  severity: number;
  source: string;
  message: string;
}

export const METRIC_COLUMNS = ["agent_id", "series_id", "ts", "value", "batch_id"];
export const LOG_COLUMNS = ["agent_id", "ts", "batch_id", "n", "severity", "source", "message"];

/** RowBinary of one row per sample, columns as METRIC_COLUMNS. */
export function encodeMetricSamplesBinary(blocks: MetricBlockRow[], w = new RowBinaryWriter()): { bytes: Buffer; rows: number } {
  let rows = 0;
  for (const b of blocks) {
    const t0 = BigInt(b.t0);
    const agent = BigInt(b.agent_id);
    const batch = BigInt(b.batch_id);
    const nts = b.ts_off.length;
    for (let s = 0; s < b.series.length; s++) {
      const sid = b.series[s]!;
      for (let t = 0; t < nts; t++) {
        const v = b.vals[s * nts + t]!;
        if (v !== v) continue;
        w.u64(agent);
        w.u32(sid);
        w.i64(t0 + BigInt(b.ts_off[t]!));
        w.f64(v);
        w.u64(batch);
        rows++;
      }
    }
  }
  return { bytes: w.bytes(), rows };
}

/** RowBinary of log lines, columns as LOG_COLUMNS. */
export function encodeLogLinesBinary(lines: LogRow[], w = new RowBinaryWriter()): Buffer {
  for (const l of lines) {
    w.u64(l.agent_id);
    w.i64(l.ts);
    w.u64(l.batch_id);
    w.u32(Number(l.n));
    w.i16(l.severity);
    w.string(l.source);
    w.string(l.message);
  }
  return w.bytes();
}

export interface WriteResult {
  samples: number;
  lines: number;
}

/** Inserts the rows of one shipped chunk; resolves only when ClickHouse confirmed every insert. */
export async function writeToClickhouse(ch: Clickhouse, blocks: MetricBlockRow[], lines: LogRow[]): Promise<WriteResult> {
  const m = encodeMetricSamplesBinary(blocks);
  if (m.rows) await ch.insertRowBinary(`${ch.database}.${METRICS_TABLE}`, METRIC_COLUMNS, m.bytes);
  if (lines.length) await ch.insertRowBinary(`${ch.database}.${LOGS_TABLE}`, LOG_COLUMNS, encodeLogLinesBinary(lines));
  return { samples: m.rows, lines: lines.length };
}
