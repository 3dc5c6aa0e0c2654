/**
 * Compaction of raw metric blocks, done by the rollup job (rollups.ts) for each (agent, hour) it
 * recomputes, in the same transaction.
 *
 * An agent's frame carries one timestamp or a few (our agent sends a tick a frame; the benches'
 * fleets 10), so ingest stores blocks of a few samples per series: delta and XOR coding barely
 * start before the block ends, and every row pays its header and index entry. Once an hour is
 * closed, its rows (every frame that lies wholly inside the hour, both layouts: rows stored before
 * migration 495 are converted here) are replaced by rows holding the whole hour per series: one
 * timeline of the hour's timestamps, each series' values over it, as many series a row as stay
 * under COMPACTED_TARGET_BYTES (all of a host's hundred or so). Readers need no change: a
 * compacted row is an ordinary block whose t0..t1 lies within one hour; its `series` column lists
 * the row's series ids when the hour took more than one row, so a read of a few series fetches
 * only their rows. Each row's block is compressed whole with zstd when that makes it smaller
 * (block version 4). Such rows are larger than PostgreSQL's 2 kB TOAST threshold and are stored
 * out of line, not compressed again (the column's storage is EXTERNAL, migration 565): a TOAST
 * chunk costs about 2.5 % of its 1,996 bytes, where inline rows of under 2 kB cost their header,
 * columns and index entry (~7 %) and left pages ~9 % empty (docs/architecture.md, "December 7").
 *
 * Nothing is lost or counted twice:
 * - the rows replaced are the ones read, by (agent, batch_id, t0) in this transaction; the
 *   delete must remove exactly as many rows as were read, else the compaction of this step rolls
 *   back to its savepoint (the rollups still commit);
 * - a frame holding a sample whose (series, timestamp) another frame of the hour also holds (an
 *   agent that sent a timestamp twice under two batch ids) is left as it is, so both values stay;
 * - missing samples (NaN) are not stored; readers skip them already;
 * - a frame whose batch ClickHouse already holds (the tier was on when it came, and is off now)
 *   is left as it is: its samples must not reach ClickHouse a second time as compacted rows;
 * - compacted rows carry batch_id COMPACTED_BATCH (-1, never an agent's batch id): the mark
 *   trigger ignores them (migration 515), so compaction does not dirty the hour it just rolled up;
 *   late data for the hour marks it again, and the next step compacts old and new rows together.
 * The ClickHouse shipper finds rows by their batch ids, so compaction is off while that tier is
 * on (rollups.ts `compact`); each compacted (agent, hour) is logged in metric_compactions, from
 * which the shipper ships compacted rows should the tier be turned on later.
 */
import type { TransactionSql } from "postgres";
import { ByteSink, encodeBlock, decodeBlock, zstdBlock } from "../codec/block.ts";
import { decodeFloat8ArraySend } from "../clickhouse/writer.ts";
import { CopyWriter } from "./copy-binary.ts";
import { fromBase64, packGroups } from "./metric-blocks.ts";
import { copyInto } from "./writer.ts";

/**
 * Bytes of a compacted row's block before zstd, at most (a series that is larger alone is cut in
 * time). An hour of a host's 100 series at 10 s is about 36 kB; a read of a few of them decodes
 * only theirs, after one decompression of the row.
 */
export const COMPACTED_TARGET_BYTES = 64 * 1024;

/**
 * zstd's level for compacted rows. Written once an hour per host by a background job and read
 * many times: on the realistic workload level 19 stores 0.830 bytes a sample where level 3 stores
 * 0.853, for ~3 ms of CPU a host-hour instead of ~0.2 (2,000 hosts: 6 s an hour); decompression
 * costs the same at any level.
 */
export const COMPACTED_ZSTD_LEVEL = 19;

/** batch_id of a compacted row. */
export const COMPACTED_BATCH = -1;
/** A compacted row also lists its series (migration 515) unless it holds all of its hour's; ingest's rows leave it null. */
const COMPACTED_COPY_COLUMNS = "metric_blocks (agent_id, batch_id, t0, t1, block, series)";

export interface CompactionResult {
  /** (agent, hour) pairs rewritten */
  hours: number;
  /** rows replaced, rows written */
  rowsIn: number;
  rowsOut: number;
  /** frames left as they were (a timestamp of a series held twice) */
  framesKept: number;
}

interface Part {
  tsOff: ArrayLike<number>;
  sids: ArrayLike<number>;
  /** series-major over tsOff; NaN for a missing sample */
  values: Float64Array;
}

interface Frame {
  batch: string;
  /** t0 as PostgreSQL printed it, so the delete matches it to the microsecond */
  t0s: string;
  t0: number;
  parts: Part[];
  /** in ClickHouse under its batch id already: left as it is, or ClickHouse would get it twice */
  shipped?: boolean;
}

interface RowIn {
  a: string;
  h: number;
  batch: string;
  t0s: string;
  t0: number;
  /** base64 */
  block: string | null;
  ts_off: number[] | null;
  series: number[] | null;
  vals: Uint8Array | null;
  /** the row's batch is in ClickHouse already (the tier was on when it came) */
  shipped: boolean;
}

const sink = new ByteSink(1 << 14);

/**
 * Rewrites the rows of the given (agent, hour) pairs that lie wholly inside their hour (see the
 * module comment). Call inside a transaction (rollups.ts uses a savepoint).
 */
export async function compactHours(tx: TransactionSql, agents: string[], hours: string[], lo: Date, hi: Date): Promise<CompactionResult> {
  const rows = await tx<RowIn[]>`
    select b.agent_id::text as a, (extract(epoch from p.h) * 1000)::float8 as h, b.batch_id::text as batch, b.t0::text as t0s,
           (extract(epoch from b.t0) * 1000)::float8 as t0, encode(b.block, 'base64') as block,
           case when b.block is null then b.ts_off end as ts_off, case when b.block is null then b.series end as series,
           case when b.block is null then array_send(b.vals) end as vals,
           exists (select 1 from ingest_batches ib, clickhouse_cursor k
                   where ib.agent_id = b.agent_id and ib.batch_id = b.batch_id and k.id = 1
                     and (ib.xid, ib.agent_id, ib.batch_id) <= (k.xid, k.agent_id, k.batch_id)) as shipped
    from unnest(${agents}::int8[], ${hours}::timestamptz[]) p(a, h)
    join metric_blocks b on b.agent_id = p.a and b.t0 >= p.h and b.t0 < p.h + interval '1 hour' and b.t1 < p.h + interval '1 hour'
    where b.agent_id = any(${agents}::int8[]) and b.t0 >= ${lo} and b.t0 < ${hi}`;
  const pairs = new Map<string, Map<string, Frame>>();
  for (const r of rows) {
    const pk = `${r.a}|${r.h}`;
    let frames = pairs.get(pk);
    if (!frames) pairs.set(pk, (frames = new Map()));
    const fk = `${r.batch}|${r.t0s}`;
    let f = frames.get(fk);
    if (!f) frames.set(fk, (f = { batch: r.batch, t0s: r.t0s, t0: r.t0, parts: [], shipped: r.shipped }));
    if (r.block) {
      const d = decodeBlock(fromBase64(r.block));
      f.parts.push({ tsOff: d.tsOff, sids: d.sids, values: d.values });
    } else {
      f.parts.push({ tsOff: r.ts_off!, sids: r.series!, values: decodeFloat8ArraySend(r.vals!) });
    }
  }
  const w = new CopyWriter(1 << 16).begin();
  const del = { agents: [] as string[], batches: [] as string[], t0s: [] as string[] };
  const result: CompactionResult = { hours: 0, rowsIn: 0, rowsOut: 0, framesKept: 0 };
  const done = { agents: [] as string[], hours: [] as string[] };
  for (const [pk, frames] of pairs) {
    if (frames.size < 2) continue; // one frame (or one compacted hour): nothing to merge
    const agent = pk.slice(0, pk.indexOf("|"));
    const merged = mergeFrames([...frames.values()]);
    if (merged.consumed.length < 2) continue;
    result.framesKept += frames.size - merged.consumed.length;
    result.hours++;
    for (const f of merged.consumed) {
      del.agents.push(agent);
      del.batches.push(f.batch);
      del.t0s.push(f.t0s);
      result.rowsIn += f.parts.length;
    }
    result.rowsOut += emitRows(w, Number(agent), merged);
    done.agents.push(agent);
    done.hours.push(new Date(Number(pk.slice(pk.indexOf("|") + 1))).toISOString());
  }
  if (result.hours === 0) return result;
  const gone = await tx`
    delete from metric_blocks b using unnest(${del.agents}::int8[], ${del.batches}::int8[], ${del.t0s}::timestamptz[]) d(a, bt, t)
    where b.agent_id = d.a and b.batch_id = d.bt and b.t0 = d.t
      and b.agent_id = any(${agents}::int8[]) and b.t0 >= ${lo} and b.t0 < ${hi}`;
  if (gone.count !== result.rowsIn) {
    throw new Error(`compaction read ${result.rowsIn} metric_blocks rows but would delete ${gone.count}`);
  }
  if (result.rowsOut) await copyInto(tx, COMPACTED_COPY_COLUMNS, w.end());
  // what the ClickHouse shipper must ship, should the tier be turned on (migration 530)
  await tx`insert into metric_compactions (agent_id, hour) select * from unnest(${done.agents}::int8[], ${done.hours}::timestamptz[])`;
  return result;
}

interface Merged {
  consumed: Frame[];
  /** absolute timestamps (ms), ascending */
  times: number[];
  sids: number[];
  /** series-major over times, NaN where missing */
  values: Float64Array;
}

/**
 * One timeline and one value matrix for the hour's frames. Compacted rows go first (they are the
 * oldest data), then frames by t0; a frame that would write a slot already written is not consumed.
 */
export function mergeFrames(frames: Frame[]): Merged {
  frames.sort((x, y) => Number(x.batch !== String(COMPACTED_BATCH)) - Number(y.batch !== String(COMPACTED_BATCH)) || x.t0 - y.t0);
  const timeSet = new Set<number>();
  const sidSet = new Set<number>();
  for (const f of frames) {
    for (const p of f.parts) {
      for (let i = 0; i < p.tsOff.length; i++) timeSet.add(f.t0 + p.tsOff[i]!);
      for (let j = 0; j < p.sids.length; j++) sidSet.add(p.sids[j]!);
    }
  }
  const allTimes = [...timeSet].sort((x, y) => x - y);
  const allSids = [...sidSet].sort((x, y) => x - y);
  const col = new Map(allTimes.map((t, i) => [t, i]));
  const row = new Map(allSids.map((s, j) => [s, j]));
  const nT = allTimes.length;
  const vals = new Float64Array(allSids.length * nT).fill(NaN);
  const filled = new Uint8Array(allSids.length * nT);
  const consumed: Frame[] = [];
  // slot indexes of one part, -1 for a missing sample
  const slotsOf = (f: Frame, p: Part): Int32Array => {
    const nts = p.tsOff.length;
    const cols = Array.from(p.tsOff, (o) => col.get(f.t0 + o)!);
    const out = new Int32Array(p.sids.length * nts);
    for (let j = 0; j < p.sids.length; j++) {
      const base = row.get(p.sids[j]!)! * nT;
      for (let i = 0; i < nts; i++) {
        const v = p.values[j * nts + i]!;
        out[j * nts + i] = v === v ? base + cols[i]! : -1;
      }
    }
    return out;
  };
  for (const f of frames) {
    if (f.shipped) continue;
    const slots = f.parts.map((p) => slotsOf(f, p));
    let clash = false;
    const mine = new Set<number>();
    for (const s of slots) {
      for (const k of s) {
        if (k < 0) continue;
        if (filled[k] || mine.has(k)) clash = true;
        mine.add(k);
      }
    }
    if (clash) continue;
    consumed.push(f);
    f.parts.forEach((p, n) => {
      const s = slots[n]!;
      for (let k = 0; k < s.length; k++) {
        if (s[k]! < 0) continue;
        filled[s[k]!] = 1;
        vals[s[k]!] = p.values[k]!;
      }
    });
  }
  // keep the timestamps and series that hold a sample
  const usedCol = new Uint8Array(nT);
  const usedRow = new Uint8Array(allSids.length);
  for (let j = 0; j < allSids.length; j++) {
    for (let i = 0; i < nT; i++) {
      if (filled[j * nT + i]) {
        usedCol[i] = 1;
        usedRow[j] = 1;
      }
    }
  }
  const cols: number[] = [];
  for (let i = 0; i < nT; i++) if (usedCol[i]) cols.push(i);
  const rowsKept: number[] = [];
  for (let j = 0; j < allSids.length; j++) if (usedRow[j]) rowsKept.push(j);
  const values = new Float64Array(rowsKept.length * cols.length);
  rowsKept.forEach((j, jj) => {
    for (let ii = 0; ii < cols.length; ii++) values[jj * cols.length + ii] = vals[j * nT + cols[ii]!]!;
  });
  return { consumed, times: cols.map((i) => allTimes[i]!), sids: rowsKept.map((j) => allSids[j]!), values };
}

/**
 * COPY rows of the merged hour: consecutive series packed while their blocks stay under
 * COMPACTED_TARGET_BYTES; a series too large alone is cut in time. Returns the rows written.
 */
function emitRows(w: CopyWriter, agent: number, m: Merged): number {
  const nT = m.times.length;
  if (nT === 0 || m.sids.length === 0) return 0;
  const t0 = m.times[0]!;
  const tsOff = m.times.map((t) => t - t0);
  let rows = 0;
  const write = (rowT0: number, rowT1: number, from: number, n: number): void => {
    w.row(6);
    w.int8(agent);
    w.int8(COMPACTED_BATCH);
    w.timestamptz(rowT0);
    w.timestamptz(rowT1);
    w.bytes(zstdBlock(sink.bytes(), COMPACTED_ZSTD_LEVEL)); // zstd-wrapped when smaller (block.ts, version 4)
    // the row's series, so a read of a few series skips the other rows; none when the row holds
    // every series of the hour (readers then look inside, as for ingest's rows): 424 bytes of a
    // host's hundred ids saved on a ~21 kB row
    if (n === m.sids.length) w.null();
    else w.int4Array(m.sids, from, n);
    rows++;
  };
  // one series over columns [c0, c1): values are contiguous, so a time slice is a sub-block
  const oneSeries = (j: number, c0: number, c1: number): void => {
    const off = tsOff.slice(c0, c1).map((o) => o - tsOff[c0]!);
    sink.reset();
    encodeBlock(sink, off, m.sids, j, 1, m.values, j * nT + c0);
    if (sink.pos > COMPACTED_TARGET_BYTES && c1 - c0 > 1) {
      const mid = c0 + Math.ceil((c1 - c0) / 2);
      oneSeries(j, c0, mid);
      oneSeries(j, mid, c1);
      return;
    }
    write(t0 + tsOff[c0]!, t0 + tsOff[c1 - 1]!, j, 1);
  };
  const encode = (from: number, n: number): number => {
    sink.reset();
    encodeBlock(sink, tsOff, m.sids, from, n, m.values, from * nT);
    return sink.pos;
  };
  packGroups(m.sids.length, COMPACTED_TARGET_BYTES, encode, (from, n) => write(t0, t0 + tsOff[nT - 1]!, from, n), (j) => oneSeries(j, 0, nT));
  return rows;
}
