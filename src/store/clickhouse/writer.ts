/**
 * The ClickHouse store writer: rows read back from PostgreSQL (metric blocks, log lines) in,
 * one TabSeparated insert per table out. Metric blocks are unrolled to one row per sample
 * (ClickHouse's natural layout; it compresses the sorted columns itself). NaN marks a missing
 * sample in PostgreSQL and is not shipped.
 */
import { tsvString, type Clickhouse } from "./client.ts";
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

function float(v: number): string {
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return String(v);
}

/** TSV of one row per sample; returns the text and the number of rows. */
export function encodeMetricSamples(blocks: MetricBlockRow[]): { tsv: string; rows: number } {
  const out: string[] = [];
  for (const b of blocks) {
    const t0 = Number(b.t0);
    const nts = b.ts_off.length;
    const prefix = `${b.agent_id}\t`;
    const suffix = `\t${b.batch_id}\n`;
    for (let s = 0; s < b.series.length; s++) {
      const sid = b.series[s]!;
      for (let t = 0; t < nts; t++) {
        const v = b.vals[s * nts + t]!;
        if (v !== v) continue;
        out.push(`${prefix}${sid}\t${t0 + b.ts_off[t]!}\t${float(v)}${suffix}`);
      }
    }
  }
  return { tsv: out.join(""), rows: out.length };
}

export function encodeLogLines(lines: LogRow[]): string {
  let s = "";
  for (const l of lines) {
    s += `${l.agent_id}\t${l.ts}\t${l.batch_id}\t${l.n}\t${l.severity}\t${tsvString(l.source)}\t${tsvString(l.message)}\n`;
  }
  return s;
}

export interface WriteResult {
  samples: number;
  lines: number;
}

/** Inserts the rows of one shipped chunk; resolves only when ClickHouse confirmed every insert. */
export async function writeToClickhouse(ch: Clickhouse, blocks: MetricBlockRow[], lines: LogRow[]): Promise<WriteResult> {
  const m = encodeMetricSamples(blocks);
  if (m.rows) await ch.insertTsv(`${ch.database}.${METRICS_TABLE}`, METRIC_COLUMNS, m.tsv);
  if (lines.length) await ch.insertTsv(`${ch.database}.${LOGS_TABLE}`, LOG_COLUMNS, encodeLogLines(lines));
  return { samples: m.rows, lines: lines.length };
}
