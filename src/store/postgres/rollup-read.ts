/**
 * Range reads through the rollup tiers (rollups.ts, migration 490). A long range is cut into
 * disjoint intervals, each read from the coarsest source that answers it exactly:
 *   - whole hours that are not dirty: metric_rollup_1h (only when the 1-hour tier was chosen),
 *   - whole minutes of hours that are not dirty: metric_rollup_1m,
 *   - the rest (the partial minutes at both ends, hours the job has not rolled up yet or that
 *     late data made dirty again): metric_blocks.
 * Buckets are `bucketMs` wide, a multiple of the tier's width, counted from `from` rounded down
 * to the tier's width, so no rollup row straddles two buckets; min, max, count and sum per bucket
 * are then the same as raw samples give (avg = sum / count, up to float rounding of the sum).
 * Everything is read in one REPEATABLE READ snapshot, so the dirty marks and the rollup rows
 * agree even while the job commits.
 */
import type { Sql } from "postgres";
import { BucketAgg, readRawSamples } from "./metric-blocks.ts";
import { readRollups } from "./rollup-blocks.ts";

/** queries.ts SeriesPoints (declared here too, so the two modules do not import each other). */
export interface TieredPoints {
  name: string;
  t: number[];
  avg: number[];
  min: number[];
  max: number[];
}

export type Tier = "raw" | "1m" | "1h";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Width of a tier's buckets in ms. */
export function tierWidth(tier: Exclude<Tier, "raw">): number {
  return tier === "1h" ? HOUR : MINUTE;
}

/**
 * The tier a range reads: raw under 6 hours or when buckets would be under a quarter of a
 * minute, 1-minute up to 3 days or while buckets are under a quarter of an hour, 1-hour beyond.
 * (1000 points: 1 h raw, 24 h and 7 d 1-minute, 30 d and 90 d 1-hour.)
 */
export function chooseTier(spanMs: number, bucketMs: number): Tier {
  if (spanMs >= 3 * DAY && bucketMs >= HOUR / 4) return "1h";
  if (spanMs >= 6 * HOUR && bucketMs >= MINUTE / 4) return "1m";
  return "raw";
}

/** The bucket grid of a tiered read: origin on the tier's width, width a multiple of it, at most maxPoints buckets. */
export function tierGrid(from: number, to: number, maxPoints: number, tier: Exclude<Tier, "raw">): { originMs: number; bucketMs: number } {
  const w = tierWidth(tier);
  const originMs = Math.floor(from / w) * w;
  const bucketMs = Math.max(w, Math.ceil((to - originMs) / Math.max(1, maxPoints) / w) * w);
  return { originMs, bucketMs };
}

type Iv = [number, number];

/** `a` minus `b`; both sorted, disjoint. */
export function subtract(a: Iv[], b: Iv[]): Iv[] {
  const out: Iv[] = [];
  for (const [s0, e0] of a) {
    let s = s0;
    for (const [bs, be] of b) {
      if (be <= s || bs >= e0) continue;
      if (bs > s) out.push([s, bs]);
      s = Math.max(s, be);
      if (s >= e0) break;
    }
    if (s < e0) out.push([s, e0]);
  }
  return merge(out);
}

function merge(xs: Iv[]): Iv[] {
  const out: Iv[] = [];
  for (const x of xs) {
    const last = out[out.length - 1];
    if (last && last[1] >= x[0]) last[1] = Math.max(last[1], x[1]);
    else out.push([x[0], x[1]]);
  }
  return out;
}

/**
 * The intervals of [from, to) each source answers: `hour` and `minute` from the rollup tables,
 * `raw` from metric_blocks. `dirtyHours` are the starts of hours the job has not (re)computed.
 */
export function planRead(from: number, to: number, tier: Tier, dirtyHours: number[]): { hour: Iv[]; minute: Iv[]; raw: Iv[] } {
  const all: Iv[] = from < to ? [[from, to]] : [];
  if (tier === "raw") return { hour: [], minute: [], raw: all };
  const dirty: Iv[] = merge([...dirtyHours].sort((x, y) => x - y).map((h) => [h, h + HOUR] as Iv));
  let hour: Iv[] = [];
  if (tier === "1h") {
    const h0 = Math.ceil(from / HOUR) * HOUR;
    const h1 = Math.floor(to / HOUR) * HOUR;
    hour = h0 < h1 ? subtract([[h0, h1]], dirty) : [];
  }
  const m0 = Math.ceil(from / MINUTE) * MINUTE;
  const m1 = Math.floor(to / MINUTE) * MINUTE;
  const minute = m0 < m1 ? subtract(subtract([[m0, m1]], hour), dirty) : [];
  const raw = subtract(subtract(all, hour), minute);
  return { hour, minute, raw };
}

/**
 * One host's series over [from, to) as described in the module comment. `tier` "raw" reads
 * everything from metric_blocks on the same grid (tests compare the two).
 */
export async function seriesRangeTiered(
  sql: Sql,
  agentId: number,
  ids: Array<{ id: number; name: string }>,
  from: Date,
  to: Date,
  grid: { originMs: number; bucketMs: number },
  tier: Tier,
): Promise<TieredPoints[]> {
  const sids = ids.map((r) => r.id);
  // one fold for every source: the grid is the same, and min, max, sum and count combine
  const agg = new BucketAgg(grid.originMs, grid.bucketMs);
  await sql.begin("isolation level repeatable read read only", async (tx) => {
    const dirty = tier === "raw" ? [] : await tx<{ hour: Date }[]>`
      select distinct hour from metric_rollup_dirty
      where agent_id = ${agentId} and hour >= ${new Date(Math.floor(from.getTime() / HOUR) * HOUR)} and hour < ${to}`;
    const plan = planRead(from.getTime(), to.getTime(), tier, dirty.map((d) => d.hour.getTime()));
    // one statement per interval, each with constant bounds: a statement over several intervals
    // would be bounded by the first and last, i.e. scan the whole range (the head and the tail
    // of a 90-day read are 90 days apart)
    for (const [tier, ivs] of [["1h", plan.hour], ["1m", plan.minute]] as const) {
      for (const [a, b] of ivs) await readRollups(tx, tier, agentId, sids, a, b, agg.merge);
    }
    // raw blocks are decoded and bucketed here (metric-blocks.ts)
    for (const [a, b] of plan.raw) await readRawSamples(tx, agentId, sids, a, b, agg.add);
  });
  return ids.map(({ id, name }) => ({ name, ...agg.points(id) }));
}
