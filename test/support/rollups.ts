/**
 * The rollup tiers' tests' fixtures: a host whose series are stored as the ingest writer stores
 * frames, and the 10-minute rollup tier as stored (rollup-blocks.ts, migration 555).
 */
import type { Sql } from "postgres";
import { CopyWriter } from "../../src/store/postgres/copy-binary.ts";
import { readBlockRows } from "../../src/store/postgres/metric-blocks.ts";
import { readTenMinuteRows, visitRollupBlock } from "../../src/store/postgres/rollup-blocks.ts";
import { copyInto, encodeMetricBlocks, METRIC_BLOCKS_COPY } from "../../src/store/postgres/writer.ts";

/** The series the rollup tests store. */
export const ROLLUP_NAMES = ["cpu.util", "mem.used", "disk.used", "x.1"];

/**
 * Values of series s at time t in whole numbers, so sums are exact whatever order they are added
 * in; series 1 misses a sample (NaN) every `nanEvery` steps of `step` ms.
 */
export function wholeValues(step: number, nanEvery: number, modulus: number, shift: number): (s: number, t: number) => number {
  return (s, t) => {
    const i = t / step;
    if (s === 1 && i % nanEvery === 0) return NaN;
    return ((i * 7 + s * 13) % modulus) - shift;
  };
}

export interface RollupFrame {
  ts: number[];
  /** the value of series s (its index in the host's names) at time t; NaN: no sample */
  values: (s: number, t: number) => number;
}

export interface RollupHost {
  agent: number;
  /** the series ids, in the order of the names */
  ids: Array<{ id: number; name: string }>;
  /** A new batch id (for frames a test writes itself). */
  nextBatch(): number;
  /** Stores frames of every series in one COPY, as the ingest writer encodes them. */
  writeFrames(frames: RollupFrame[]): Promise<void>;
  /** The COPY rows of frames (new batch ids), for a test that stores them on a connection of its own. */
  frameRows(frames: RollupFrame[]): Uint8Array;
  /** The samples metric_blocks holds for the host (missing ones not counted). */
  rawCount(): Promise<number>;
}

/** Enrolls a host (`key` fills its public key) and registers its series `names`. */
export async function rollupHost(sql: Sql, hostname: string, key: number, names: string[]): Promise<RollupHost> {
  const [a] = await sql`insert into agents (hostname, public_key) values (${hostname}, ${Buffer.alloc(32, key)}) returning id`;
  const agent = Number(a!.id);
  const ids = (await sql`insert into metric_series (agent_id, name) select ${agent}, unnest(${names}::text[]) returning id, name`).map((r) => ({ id: Number(r.id), name: String(r.name) }));
  ids.sort((x, y) => names.indexOf(x.name) - names.indexOf(y.name));
  const sids = Int32Array.from(ids.map((r) => r.id));
  let batch = 0;
  function frameRows(frames: RollupFrame[]): Uint8Array {
    const w = new CopyWriter().begin();
    for (const f of frames) {
      const values = new Float64Array(names.length * f.ts.length);
      for (let s = 0; s < names.length; s++) for (let k = 0; k < f.ts.length; k++) values[s * f.ts.length + k] = f.values(s, f.ts[k]!);
      encodeMetricBlocks(w, agent, ++batch, { ts: Float64Array.from(f.ts), names, values }, sids);
    }
    return w.end();
  }
  return {
    agent,
    ids,
    nextBatch: () => ++batch,
    frameRows,
    async writeFrames(frames) {
      const rows = frameRows(frames);
      await sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, rows));
    },
    async rawCount() {
      return (await readBlockRows(sql, agent)).reduce((n, r) => n + r.vals.filter((v) => !Number.isNaN(v)).length, 0);
    },
  };
}

const HOUR = 3_600_000;

export interface StoredAgg {
  sid: number;
  t: number;
  min: number;
  max: number;
  sum: number;
  count: number;
}

export async function tenMinuteAggregates(sql: Sql, agent: number, from = 0, to = 4e12): Promise<StoredAgg[]> {
  const rows = await readTenMinuteRows(sql, agent, null, from, to);
  const bits = new Map<number, number>();
  for (const r of rows) bits.set(r.day, (bits.get(r.day) ?? r.hours) & r.hours);
  const out: StoredAgg[] = [];
  for (const r of rows) {
    visitRollupBlock(r.day, r.block, undefined, from, to, (sid, t, min, max, sum, count) => {
      if (bits.get(r.day)! & (1 << Math.floor((t - r.day) / HOUR))) out.push({ sid, t, min, max, sum, count });
    });
  }
  return out;
}
