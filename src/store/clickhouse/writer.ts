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
  vals: ArrayLike<number>;
}

/**
 * A one-dimensional float8[] in PostgreSQL's binary array format (`array_send(vals)`): bit-exact
 * and about twice as fast to fetch as the text form, whose float formatting dominates.
 */
export function decodeFloat8ArraySend(buf: Uint8Array): Float64Array {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const ndim = v.getInt32(0);
  if (ndim === 0) return new Float64Array(0);
  if (ndim !== 1) throw new Error(`expected a one-dimensional float8 array, got ${ndim} dimensions`);
  const n = v.getInt32(12);
  const out = new Float64Array(n);
  let off = 20;
  for (let i = 0; i < n; i++) {
    const len = v.getInt32(off);
    if (len === -1) {
      out[i] = NaN; // NULL element: a missing sample
      off += 4;
      continue;
    }
    if (len !== 8) throw new Error(`float8 array element ${i} has ${len} bytes, not 8`);
    out[i] = v.getFloat64(off + 4);
    off += 12;
  }
  return out;
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
    const t0 = Number(b.t0);
    const agent = Number(b.agent_id);
    const batch = Number(b.batch_id);
    const nts = b.ts_off.length;
    for (let s = 0; s < b.series.length; s++) {
      const sid = b.series[s]!;
      for (let t = 0; t < nts; t++) {
        const v = b.vals[s * nts + t]!;
        if (v !== v) continue;
        w.u64n(agent);
        w.u32(sid);
        w.i64n(t0 + b.ts_off[t]!);
        w.f64(v);
        w.u64n(batch);
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

/** Inserts metric blocks as sample rows; resolves when ClickHouse confirmed. Returns the rows inserted. */
export async function writeMetricSamples(ch: Clickhouse, blocks: MetricBlockRow[]): Promise<number> {
  const m = encodeMetricSamplesBinary(blocks);
  if (m.rows) await ch.insertRowBinary(`${ch.database}.${METRICS_TABLE}`, METRIC_COLUMNS, m.bytes);
  return m.rows;
}

/** Inserts log lines; resolves when ClickHouse confirmed. Returns the rows inserted. */
export async function writeLogLines(ch: Clickhouse, lines: LogRow[]): Promise<number> {
  if (lines.length) await ch.insertRowBinary(`${ch.database}.${LOGS_TABLE}`, LOG_COLUMNS, encodeLogLinesBinary(lines));
  return lines.length;
}
