/**
 * The 10-minute rollup tier as stored (rollup-blocks.ts, migration 555), for tests: every
 * aggregate of an agent's rows that lies in an hour its day's rows cover (the hours' bits).
 */
import type { Sql } from "postgres";
import { readTenMinuteRows, visitRollupBlock } from "../../src/store/postgres/rollup-blocks.ts";

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
