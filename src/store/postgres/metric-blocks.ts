/**
 * metric_blocks rows in the compressed layout (migration 495): `block bytea` holds a frame's
 * timestamps, series ids and values in src/store/codec/block.ts' encoding; ts_off, series and
 * vals are null. Rows written before 495 keep ts_off/series/vals (float8[]) and a null block;
 * every reader goes through `readRawSamples`, which reads both (docs/architecture.md, "Metric
 * storage layout").
 *
 * A row holds as many of a frame's series as keep its block under BLOCK_TARGET_BYTES, so the row
 * stays below PostgreSQL's 2 kB TOAST threshold (a TOASTed row costs about 3x the CPU): all of a
 * frame's series when they compress well, fewer when they do not.
 */
import type { Sql, TransactionSql } from "postgres";
import { ByteSink, decodeBlock, encodeBlock } from "../codec/block.ts";
import type { CopyWriter } from "./copy-binary.ts";
import { decodeFloat8ArraySend } from "../clickhouse/writer.ts";

/** Encoded block bytes a row aims to stay under (the row adds ~60 bytes of header and columns). */
export const BLOCK_TARGET_BYTES = 1900;
/** Series a row holds at most. */
export const MAX_SERIES_PER_BLOCK = 256;

export const METRIC_BLOCKS_COPY_COLUMNS = "metric_blocks (agent_id, batch_id, t0, t1, block)";

const sink = new ByteSink(1 << 14);

/**
 * metric_blocks rows as the parameters of one INSERT (the writer's one-statement path): the
 * columns as comma lists of integers (t0 and t1 in Unix ms) and every block back to back in one
 * buffer, each row naming its offset and length. Reused: `reset` keeps the buffer.
 */
export class BlockRows {
  agents: number[] = [];
  batches: number[] = [];
  t0: number[] = [];
  t1: number[] = [];
  offsets: number[] = [];
  lengths: number[] = [];
  private readonly blob = new ByteSink(1 << 16);

  reset(): this {
    this.agents.length = this.batches.length = this.t0.length = this.t1.length = this.offsets.length = this.lengths.length = 0;
    this.blob.reset();
    return this;
  }

  get count(): number {
    return this.agents.length;
  }

  add(agentId: number, batchId: number, t0: number, t1: number, block: Uint8Array): void {
    this.agents.push(agentId);
    this.batches.push(batchId);
    this.t0.push(t0);
    this.t1.push(t1);
    this.offsets.push(this.blob.pos);
    this.lengths.push(block.length);
    this.blob.ensure(block.length);
    this.blob.buf.set(block, this.blob.pos);
    this.blob.pos += block.length;
  }

  /** Every block, back to back (a copy: the statement's parameter outlives the next reset). */
  blocks(): Buffer {
    return Buffer.from(this.blob.bytes());
  }
}

/**
 * COPY rows (agent_id, batch_id, t0, t1, block) of one frame: `values` series-major over
 * `tsOff` (ms after t0), series `sids`. Returns the rows written.
 */
export function encodeMetricBlocksCompressed(
  w: CopyWriter | BlockRows, agentId: number, batchId: number, t0: number, t1: number,
  tsOff: ArrayLike<number>, sids: ArrayLike<number>, values: Float64Array,
): number {
  const nts = tsOff.length;
  const total = sids.length;
  let rows = 0;
  const put = (from: number, n: number): void => {
    sink.reset();
    encodeBlock(sink, tsOff, sids, from, n, values, from * nts);
    if (sink.pos > BLOCK_TARGET_BYTES && n > 1) {
      const half = Math.ceil(n / 2);
      put(from, half);
      put(from + half, n - half);
      return;
    }
    if (w instanceof BlockRows) w.add(agentId, batchId, t0, t1, sink.bytes());
    else {
      w.row(5);
      w.int8(agentId);
      w.int8(batchId);
      w.timestamptz(t0);
      w.timestamptz(t1);
      w.bytes(sink.bytes());
    }
    rows++;
  };
  for (let g = 0; g < total; g += MAX_SERIES_PER_BLOCK) put(g, Math.min(MAX_SERIES_PER_BLOCK, total - g));
  return rows;
}

/**
 * Packs `n` series, in order, into groups whose encoding stays under `target` bytes. A group takes
 * series while the sum of their sizes alone, less the header each of those repeats, fits; a group
 * that still encodes too large is halved. `encode(from, count)` encodes a group into the caller's
 * buffer and returns its size; `emit(from, count)` runs right after the encode of each group kept,
 * so it may take that buffer. A single series goes to `alone` when given (it may cut it further),
 * else it is emitted whatever its size.
 */
export function packGroups(
  n: number, target: number, encode: (from: number, count: number) => number, emit: (from: number, count: number) => void,
  alone?: (j: number) => void,
): void {
  const size = Array.from({ length: n }, (_, j) => encode(j, 1));
  const header = Math.max(0, Math.min(...size) - 2);
  const group = (from: number, count: number): void => {
    if (count === 1 && alone) return alone(from);
    if (encode(from, count) > target && count > 1) {
      const half = Math.ceil(count / 2);
      group(from, half);
      group(from + half, count - half);
      return;
    }
    emit(from, count);
  };
  for (let j = 0; j < n;) {
    let count = 1, acc = size[j]!;
    while (j + count < n && acc + size[j + count]! - header <= target) acc += size[j + count++]! - header;
    group(j, count);
    j += count;
  }
}

/**
 * A bytea column selected as `encode(col, 'base64')`, back to bytes. postgres.js reads bytea in
 * text form, as hex, and decodes it in JavaScript; base64 is a third smaller on the wire and
 * decoded natively: reading 700 rollup rows (2.5 MB) took 25 ms instead of 56.
 */
export function fromBase64(s: string): Uint8Array {
  return Buffer.from(s, "base64");
}

/** A sample visitor: series id, time (ms since the epoch), value (never NaN). */
export type SampleVisitor = (sid: number, t: number, v: number) => void;

/** Longest span a stored frame may have (MAX_METRICS_SPAN_MS): blocks starting this early may reach `from`. */
const SPAN_MS = 3_600_000;

/**
 * Visits every stored, non-missing sample of `agentId` in [fromMs, toMs), of the series in
 * `sids` (all series when null), in both layouts. Order is unspecified.
 */
export async function readRawSamples(
  sql: Sql | TransactionSql, agentId: number, sids: number[] | null, fromMs: number, toMs: number, visit: SampleVisitor,
): Promise<void> {
  const from = new Date(fromMs), to = new Date(toMs), earliest = new Date(fromMs - SPAN_MS);
  const want = sids ? new Set(sids) : undefined;
  // one statement for both layouts (a read is often a few small intervals: round trips count);
  // rows stored before migration 495 come as float8[] in binary and are sliced here
  const rows = await sql<{ t0: number; block: string | null; ts_off: number[] | null; series: number[] | null; vals: Uint8Array | null }[]>`
    select (extract(epoch from t0) * 1000)::float8 as t0, encode(block, 'base64') as block,
           case when block is null then ts_off end as ts_off, case when block is null then series end as series,
           case when block is null then array_send(vals) end as vals
    from metric_blocks
    where agent_id = ${agentId} and t0 >= ${earliest} and t0 < ${to} and t1 >= ${from}
      ${sids ? sql`and (series is null or series && ${sids}::int4[])` : sql``}`;
  for (const r of rows) {
    if (r.block) visitBlock(r.t0, fromBase64(r.block), want, fromMs, toMs, visit);
    else visitLegacy(r.t0, r.ts_off!, r.series!, decodeFloat8ArraySend(r.vals!), want, fromMs, toMs, visit);
  }
}

function visitLegacy(t0: number, tsOff: number[], series: number[], vals: Float64Array, want: Set<number> | undefined, fromMs: number, toMs: number, visit: SampleVisitor): void {
  const nts = tsOff.length;
  if (vals.length !== nts * series.length) throw new Error(`a metric_blocks row has ${vals.length} values for ${series.length} series x ${nts} timestamps`);
  for (let j = 0; j < series.length; j++) {
    const sid = series[j]!;
    if (want && !want.has(sid)) continue;
    for (let i = 0; i < nts; i++) {
      const t = t0 + tsOff[i]!;
      const v = vals[j * nts + i]!;
      if (t >= fromMs && t < toMs && v === v) visit(sid, t, v);
    }
  }
}

/** Visits the samples of one block row in [fromMs, toMs) of the wanted series. */
export function visitBlock(t0: number, block: Uint8Array, want: Set<number> | undefined, fromMs: number, toMs: number, visit: SampleVisitor): void {
  const d = decodeBlock(block, want);
  const nts = d.tsOff.length;
  for (let j = 0; j < d.sids.length; j++) {
    const sid = d.sids[j]!;
    const base = j * nts;
    for (let i = 0; i < nts; i++) {
      const t = t0 + d.tsOff[i]!;
      const v = d.values[base + i]!;
      if (t >= fromMs && t < toMs && v === v) visit(sid, t, v);
    }
  }
}

/** min, max, sum and count per (series, bucket) of a grid (origin, width). */
export class BucketAgg {
  readonly by = new Map<number, Map<number, { min: number; max: number; sum: number; count: number }>>();
  constructor(readonly originMs: number, readonly bucketMs: number) {}
  add = (sid: number, t: number, v: number): void => {
    const bucket = this.originMs + Math.floor((t - this.originMs) / this.bucketMs) * this.bucketMs;
    let m = this.by.get(sid);
    if (!m) this.by.set(sid, (m = new Map()));
    const a = m.get(bucket);
    if (!a) m.set(bucket, { min: v, max: v, sum: v, count: 1 });
    else {
      if (v < a.min) a.min = v;
      if (v > a.max) a.max = v;
      a.sum += v;
      a.count++;
    }
  };
  /** Adds an aggregate of samples (a rollup row's) to its bucket. */
  merge = (sid: number, t: number, min: number, max: number, sum: number, count: number): void => {
    const bucket = this.originMs + Math.floor((t - this.originMs) / this.bucketMs) * this.bucketMs;
    let m = this.by.get(sid);
    if (!m) this.by.set(sid, (m = new Map()));
    const a = m.get(bucket);
    if (!a) m.set(bucket, { min, max, sum, count });
    else {
      if (min < a.min) a.min = min;
      if (max > a.max) a.max = max;
      a.sum += sum;
      a.count += count;
    }
  };
  /** One series' buckets in time order as columns (avg = sum / count); empty columns when it has none. */
  points(sid: number): { t: number[]; avg: number[]; min: number[]; max: number[] } {
    const p = { t: [] as number[], avg: [] as number[], min: [] as number[], max: [] as number[] };
    const m = this.by.get(sid);
    if (!m) return p;
    for (const t of [...m.keys()].sort((x, y) => x - y)) {
      const a = m.get(t)!;
      p.t.push(t);
      p.avg.push(a.sum / a.count);
      p.min.push(a.min);
      p.max.push(a.max);
    }
    return p;
  }
}

/** One stored metric_blocks row, decoded (either layout). */
export interface BlockRow {
  batchId: number;
  /** ms since the epoch */
  t0: number;
  tsOff: number[];
  series: number[];
  /** series-major, NaN for a missing sample */
  vals: number[];
}

/** The metric_blocks rows of an agent (optionally one batch), decoded, by t0 then first series id. */
export async function readBlockRows(sql: Sql | TransactionSql, agentId: number, batchId?: number): Promise<BlockRow[]> {
  const rows = await sql<{ batch_id: string; t0: number; block: Uint8Array | null; ts_off: number[] | null; series: number[] | null; vals: number[] | null }[]>`
    select batch_id, (extract(epoch from t0) * 1000)::float8 as t0, block, ts_off, series, vals from metric_blocks
    where agent_id = ${agentId} ${batchId === undefined ? sql`` : sql`and batch_id = ${batchId}`}`;
  const out = rows.map((r): BlockRow => {
    if (!r.block) return { batchId: Number(r.batch_id), t0: r.t0, tsOff: r.ts_off!, series: r.series!, vals: r.vals!.map((v) => (v === null ? NaN : v)) };
    const d = decodeBlock(r.block);
    return { batchId: Number(r.batch_id), t0: r.t0, tsOff: Array.from(d.tsOff), series: Array.from(d.sids), vals: Array.from(d.values) };
  });
  return out.sort((a, b) => a.t0 - b.t0 || a.series[0]! - b.series[0]!);
}

/** Samples stored for an agent (optionally one batch), missing ones (NaN) included. */
export async function countStoredSamples(sql: Sql | TransactionSql, agentId: number, batchId?: number): Promise<number> {
  return (await readBlockRows(sql, agentId, batchId)).reduce((n, r) => n + r.vals.length, 0);
}

/**
 * Samples stored for the agents with ids below `belowAgentId` (both layouts), and how many of
 * them repeat an (agent, t0, series) already stored: a bench's lost/duplicated check.
 */
export async function sampleCensus(sql: Sql, belowAgentId: number): Promise<{ stored: number; duplicated: number }> {
  const seen = new Set<string>();
  let stored = 0, duplicated = 0;
  const note = (agent: string, t0: number, series: ArrayLike<number>, nts: number) => {
    stored += series.length * nts;
    for (let j = 0; j < series.length; j++) {
      const k = `${agent}:${t0}:${series[j]}`;
      if (seen.has(k)) duplicated += nts;
      else seen.add(k);
    }
  };
  for await (const rows of sql<{ agent_id: string; t0: number; block: Uint8Array | null; series: number[] | null; n: number | null }[]>`
    select agent_id, (extract(epoch from t0) * 1000)::float8 as t0, block, series, cardinality(ts_off) as n
    from metric_blocks where agent_id < ${belowAgentId}`.cursor(2000)) {
    for (const r of rows) {
      if (r.block) {
        const d = decodeBlock(r.block);
        note(r.agent_id, r.t0, d.sids, d.tsOff.length);
      } else note(r.agent_id, r.t0, r.series!, r.n!);
    }
  }
  return { stored, duplicated };
}
