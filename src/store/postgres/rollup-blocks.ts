/**
 * The rollup tiers' rows (migration 520): one row of metric_rollup_1m_blocks / _1h_blocks holds
 * an (agent, hour) and a group of series, its `block` the aggregates of those series over the
 * hour's minutes (1m) or over the hour (1h). A row of metric_rollup_10m_blocks (migration 555)
 * holds an (agent, day) and a group of series over the day's 10-minute buckets, and in `hours`
 * the day's hours it was computed from (bit i: hour i); see rollups.ts and rollup-read.ts.
 *
 *   u8 version (1) | 4 times: u32 little-endian length, then a block of src/store/codec/block.ts
 *   or, for the minute tier when smaller, that whole row compressed:
 *   u8 version (2) | varint length of the version-1 row | one zstd frame of it (block.ts zstdWrap)
 *
 * The four blocks are min, max, sum and count, each over the same timestamps (ms after the row's
 * hour) and series ids, NaN where a series has no sample in a minute. Every value round-trips bit
 * for bit, so tiered reads give what the row-per-bucket tables (migration 490) gave. Rows are
 * packed a few series at a time under BLOCK_TARGET_BYTES, like raw blocks (compaction.ts), so
 * they stay below PostgreSQL's TOAST threshold unless one series alone is larger.
 */
import type { Sql, TransactionSql } from "postgres";
import { ByteSink, CodecError, decodeBlock, encodeBlock, zstdUnwrap, zstdWrap } from "../codec/block.ts";
import type { CopyWriter } from "./copy-binary.ts";
import { BLOCK_TARGET_BYTES, fromBase64, packGroups } from "./metric-blocks.ts";

export type RollupTier = "1m" | "1h";
export const ROLLUP_BLOCK_TABLES = { "1m": "metric_rollup_1m_blocks", "1h": "metric_rollup_1h_blocks" } as const;
export const ROLLUP_10M_TABLE = "metric_rollup_10m_blocks";
export const ROLLUP_10M_COPY_COLUMNS = "(agent_id, day, hours, block, series)";
/** The row-per-bucket tables of migration 490: read until their rows are recomputed or expire. */
export const ROLLUP_LEGACY_TABLES = { "1m": "metric_rollup_1m", "1h": "metric_rollup_1h" } as const;
export const ROLLUP_BLOCKS_COPY_COLUMNS = "(agent_id, hour, block, series)";

const VERSION = 1;
/** A version-1 row compressed whole with zstd (the minute tier's, where smaller: encodeRollupRows). */
const VERSION_ZSTD = 2;
const HOUR = 3_600_000;
const DAY = 86_400_000;

export interface RollupAgg {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** A visitor of stored aggregates: series id, bucket start (ms), its aggregate. */
export type RollupVisitor = (sid: number, t: number, min: number, max: number, sum: number, count: number) => void;

const sink = new ByteSink(1 << 14);
const part = new ByteSink(1 << 12);

/**
 * COPY rows (agent_id, hour, block, series) of one (agent, hour) of a tier: `by` series id -> bucket start
 * (ms, inside [hour, hour + 1 h)) -> aggregate. Returns the rows written.
 */
export function encodeRollupRows(w: CopyWriter, agent: number, hour: number, by: Map<number, Map<number, RollupAgg>>, tier: RollupTier): number {
  let rows = 0;
  // Only the minute tier's rows are compressed: they are most of the tiers' bytes (0.84 of 1.03
  // bytes per raw sample on the realistic workload, 13 % less with zstd) and a read takes few of
  // them (a day: 24 per group of series). Unwrapping costs ~16 µs a row; the hour tier would save
  // 0.015 bytes per raw sample and a year's read takes 8,760 of its rows, and the ten-minute
  // tier's rows (encodeTenMinuteRows) saved 14 % of a small tier and took 30-day reads from ~2 to
  // ~6 ms of decoding.
  packRollupBlocks(hour, by, (block, sids) => {
    w.row(4);
    w.int8(agent);
    w.timestamptz(hour);
    w.bytes(block);
    w.int4Array(sids);
    rows++;
  }, HOUR, tier === "1m");
  return rows;
}

/**
 * COPY rows (agent_id, day, hours, block, series) of one (agent, day) of the 10-minute tier: `by`
 * series id -> bucket start (inside [day, day + 1 d)) -> aggregate, `hours` the bit set of the
 * day's hours the rows cover. Returns the rows written.
 */
export function encodeTenMinuteRows(w: CopyWriter, agent: number, day: number, hours: number, by: Map<number, Map<number, RollupAgg>>): number {
  let rows = 0;
  packRollupBlocks(day, by, (block, sids) => {
    w.row(5);
    w.int8(agent);
    w.timestamptz(day);
    w.int4(hours);
    w.bytes(block);
    w.int4Array(sids);
    rows++;
  }, DAY);
  return rows;
}

/**
 * The blocks of one (agent, hour) of a tier (see encodeRollupRows), or of one (agent, day) with
 * `spanMs` a day (a series too large for one row then cut in time), each passed to `emit` (a view
 * into a reused buffer: copy it to keep it); with `compress`, as version 2 where that is smaller.
 */
export function packRollupBlocks(
  hour: number, by: Map<number, Map<number, RollupAgg>>, emit: (block: Uint8Array, sids: number[]) => void, spanMs = HOUR, compress = false,
): void {
  const sids = [...by.keys()].sort((x, y) => x - y);
  if (sids.length === 0) return;
  const times = new Set<number>();
  for (const m of by.values()) for (const t of m.keys()) times.add(t);
  const ts = [...times].sort((x, y) => x - y);
  const col = new Map(ts.map((t, i) => [t, i]));
  const nT = ts.length;
  const tsOff = Int32Array.from(ts, (t) => t - hour);
  if (tsOff[0]! < 0 || tsOff[nT - 1]! >= spanMs) throw new Error("a rollup bucket lies outside its row's span");
  const stats = [0, 1, 2, 3].map(() => new Float64Array(sids.length * nT).fill(NaN));
  sids.forEach((sid, j) => {
    for (const [t, a] of by.get(sid)!) {
      const k = j * nT + col.get(t)!;
      stats[0]![k] = a.min;
      stats[1]![k] = a.max;
      stats[2]![k] = a.sum;
      stats[3]![k] = a.count;
    }
  });
  // series from..from+n over `ts`, each stat's values series-major from valFrom
  const row = (ts: Int32Array, from: number, n: number, values: Float64Array[], valFrom: number): number => {
    sink.reset();
    sink.ensure(1);
    sink.buf[sink.pos++] = VERSION;
    for (const v of values) {
      part.reset();
      encodeBlock(part, ts, sids, from, n, v, valFrom);
      sink.ensure(4 + part.pos);
      new DataView(sink.buf.buffer, sink.buf.byteOffset).setUint32(sink.pos, part.pos, true);
      sink.buf.set(part.bytes(), sink.pos + 4);
      sink.pos += 4 + part.pos;
    }
    return sink.pos;
  };
  const encode = (from: number, n: number): number => row(tsOff, from, n, stats, from * nT);
  // the row just encoded, zstd-wrapped when smaller
  const packed = (): Uint8Array => (compress && zstdWrap(VERSION_ZSTD, sink.bytes())) || sink.bytes();
  // a day of one series may not fit a row (144 buckets of full-precision doubles): it is cut in
  // time, into rows of the same (agent, day) that share the series; readers and the job take
  // every row of a day
  const cutInTime = (j: number): void => {
    const own: number[] = [];
    for (let i = 0; i < nT; i++) if (!Number.isNaN(stats[3]![j * nT + i]!)) own.push(i);
    const piece = (a: number, b: number): void => {
      const cols = own.slice(a, b);
      const size = row(Int32Array.from(cols, (i) => tsOff[i]!), j, 1, stats.map((v) => Float64Array.from(cols, (i) => v[j * nT + i]!)), 0);
      if (size > BLOCK_TARGET_BYTES && b - a > 1) {
        const mid = (a + b) >> 1;
        piece(a, mid);
        piece(mid, b);
        return;
      }
      emit(packed(), [sids[j]!]);
    };
    piece(0, own.length);
  };
  packGroups(sids.length, BLOCK_TARGET_BYTES, encode, (from, n) => emit(packed(), sids.slice(from, from + n)), spanMs > HOUR ? cutInTime : undefined);
}

/** Visits the aggregates of one row's block in [fromMs, toMs) of the wanted series (all when `want` is undefined). */
export function visitRollupBlock(hour: number, block: Uint8Array, want: Set<number> | undefined, fromMs: number, toMs: number, visit: RollupVisitor): void {
  if (block.length > 0 && block[0] === VERSION_ZSTD) block = zstdUnwrap(block);
  if (block.length < 1 || block[0] !== VERSION) throw new CodecError("unknown rollup block version");
  let p = 1;
  const parts = [];
  for (let k = 0; k < 4; k++) {
    if (p + 4 > block.length) throw new CodecError("rollup block truncated");
    const len = (block[p]! | (block[p + 1]! << 8) | (block[p + 2]! << 16) | (block[p + 3]! << 24)) >>> 0;
    if (p + 4 + len > block.length) throw new CodecError("rollup block truncated");
    parts.push(decodeBlock(block.subarray(p + 4, p + 4 + len), want));
    p += 4 + len;
  }
  const [mn, mx, sm, ct] = parts as [ReturnType<typeof decodeBlock>, ReturnType<typeof decodeBlock>, ReturnType<typeof decodeBlock>, ReturnType<typeof decodeBlock>];
  const nT = mn.tsOff.length;
  for (const d of [mx, sm, ct]) {
    if (d.tsOff.length !== nT || d.sids.length !== mn.sids.length) throw new CodecError("rollup block parts disagree");
  }
  for (let j = 0; j < mn.sids.length; j++) {
    const sid = mn.sids[j]!;
    for (let i = 0; i < nT; i++) {
      const t = hour + mn.tsOff[i]!;
      const k = j * nT + i;
      const c = ct.values[k]!;
      if (t >= fromMs && t < toMs && c === c) visit(sid, t, mn.values[k]!, mx.values[k]!, sm.values[k]!, c);
    }
  }
}

/**
 * Visits the stored aggregates of a tier for `agentId` with bucket starts in [fromMs, toMs), of
 * the series in `sids` (all when null), from both layouts. Order is unspecified.
 */
export async function readRollups(
  sql: Sql | TransactionSql, tier: RollupTier, agentId: number, sids: number[] | null, fromMs: number, toMs: number, visit: RollupVisitor,
): Promise<void> {
  const want = sids ? new Set(sids) : undefined;
  const blocks = await sql<{ hour: number; block: string }[]>`
    select (extract(epoch from hour) * 1000)::float8 as hour, encode(block, 'base64') as block from ${sql(ROLLUP_BLOCK_TABLES[tier])}
    where agent_id = ${agentId} and hour >= ${new Date(Math.floor(fromMs / HOUR) * HOUR)} and hour < ${new Date(toMs)}
      ${sids ? sql`and series && ${sids}::int4[]` : sql``}`;
  for (const r of blocks) visitRollupBlock(r.hour, fromBase64(r.block), want, fromMs, toMs, visit);
  const legacy = await sql<{ sid: number; t: number; min: number; max: number; sum: number; count: number }[]>`
    select series_id as sid, (extract(epoch from bucket) * 1000)::float8 as t, min, max, sum, count::float8 as count
    from ${sql(ROLLUP_LEGACY_TABLES[tier])}
    where agent_id = ${agentId} ${sids ? sql`and series_id = any(${sids}::int4[])` : sql``}
      and bucket >= ${new Date(fromMs)} and bucket < ${new Date(toMs)}`;
  for (const r of legacy) visit(r.sid, r.t, r.min, r.max, r.sum, r.count);
}

/** A row of the 10-minute tier as read: its day, the hours it covers, its block. */
export interface TenMinuteRow {
  day: number;
  hours: number;
  block: Uint8Array;
}

/**
 * The 10-minute rows of `agentId` whose day overlaps [fromMs, toMs) and that hold one of `sids`
 * (all when null). A day none of whose rows holds an asked series comes back empty, as if not
 * covered: the reader then asks the 1-minute tier, which is exact too (and the series has no
 * samples there either, unless the day is one rolled up before migration 555).
 */
export async function readTenMinuteRows(sql: Sql | TransactionSql, agentId: number, sids: number[] | null, fromMs: number, toMs: number): Promise<TenMinuteRow[]> {
  const rows = await sql<{ day: number; hours: number; block: string }[]>`
    select (extract(epoch from day) * 1000)::float8 as day, hours, encode(block, 'base64') as block
    from ${sql(ROLLUP_10M_TABLE)}
    where agent_id = ${agentId} and day >= ${new Date(Math.floor(fromMs / DAY) * DAY)} and day < ${new Date(toMs)}
      ${sids ? sql`and series && ${sids}::int4[]` : sql``}`;
  return rows.map((r) => ({ day: r.day, hours: r.hours, block: fromBase64(r.block) }));
}
