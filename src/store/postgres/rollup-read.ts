/**
 * Range reads through the rollup tiers (rollups.ts, migration 490). A long range is cut into
 * disjoint intervals, each read from the coarsest source that answers it exactly:
 *   - whole hours that are not dirty: metric_rollup_1h (only when the 1-hour tier was chosen),
 *   - whole 10 minutes of hours that are not dirty and whose bit the day's 10-minute rows have
 *     set: metric_rollup_10m_blocks (only when the 10-minute tier was chosen; hours rolled up
 *     before migration 555 have no bit),
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
import { readRollups, readTenMinuteRows, visitRollupBlock } from "./rollup-blocks.ts";

/** queries.ts SeriesPoints (declared here too, so the two modules do not import each other). */
export interface TieredPoints {
  name: string;
  t: number[];
  avg: number[];
  min: number[];
  max: number[];
}

export type Tier = "raw" | "1m" | "10m" | "1h";

const MINUTE = 60_000;
const TEN_MINUTES = 600_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Width of a tier's buckets in ms. */
export function tierWidth(tier: Exclude<Tier, "raw">): number {
  return tier === "1h" ? HOUR : tier === "10m" ? TEN_MINUTES : MINUTE;
}

/**
 * The tier a range reads: raw under 6 hours or when buckets would be under a quarter of a
 * minute; from 6 hours the 1-minute tier while buckets are under 10 minutes, then the 10-minute
 * tier, and the 1-hour tier once buckets are 6 hours or more (ranges of 3 days and more). A
 * 10-minute row holds a day, a 1-hour row an hour, so the 10-minute tier reads 24 times fewer
 * rows and is the faster one at 90 days (bench:queries); the 1-hour tier is for ranges of about
 * a year. A tier's buckets are whole multiples of its width, so a coarser tier costs resolution:
 * 7 d at 1000 points (10.08-minute buckets) comes in 20-minute buckets.
 * (1000 points: 1 h raw, 24 h 1-minute, 7 d, 30 d and 90 d 10-minute, 365 d 1-hour.)
 */
export function chooseTier(spanMs: number, bucketMs: number): Tier {
  if (spanMs >= 3 * DAY && bucketMs >= 6 * HOUR) return "1h";
  if (spanMs >= 6 * HOUR && bucketMs >= TEN_MINUTES) return "10m";
  if (spanMs >= 6 * HOUR && bucketMs >= MINUTE / 4) return "1m";
  return "raw";
}

/** chooseTier before the 10-minute tier (migration 555): 1-hour from quarter-hour buckets over 3 days. */
export function chooseTierWithout10m(spanMs: number, bucketMs: number): Tier {
  if (spanMs >= 3 * DAY && bucketMs >= HOUR / 4) return "1h";
  return chooseTier(spanMs, bucketMs) === "raw" ? "raw" : "1m";
}

/**
 * Whether the 10-minute tier reaches back to `fromMs` for an agent: false when the 1-hour tier
 * holds hours in [fromMs, toMs) from before the agent's first 10-minute hour. Those are hours
 * rolled up before migration 555 (or kept longer by the 1-hour tier's retention): the 1-minute
 * tier may no longer hold them either, so such a range reads the tiers as it did before. Later
 * hours always have their bits (the job writes all tiers of an hour at once), apart from ones late
 * data brought, which lie within raw retention, so the 1-minute tier holds them.
 */
export async function tenMinuteReaches(sql: Sql, agentId: number, fromMs: number, toMs: number): Promise<boolean> {
  const [first] = await sql<{ day: number; hours: number }[]>`
    select (extract(epoch from day) * 1000)::float8 as day, hours from metric_rollup_10m_blocks
    where agent_id = ${agentId} order by day limit 1`;
  const firstHour = first ? first.day + Math.log2(first.hours & -first.hours) * HOUR : toMs;
  if (fromMs >= firstHour) return true;
  const lo = new Date(Math.floor(fromMs / HOUR) * HOUR);
  const hi = new Date(Math.min(toMs, firstHour));
  const [older] = await sql<{ x: boolean }[]>`
    select exists (select 1 from metric_rollup_1h_blocks where agent_id = ${agentId} and hour >= ${lo} and hour < ${hi})
      or exists (select 1 from metric_rollup_1h where agent_id = ${agentId} and bucket >= ${lo} and bucket < ${hi}) as x`;
  return !older!.x;
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

/** The hours (starts) as sorted, merged intervals. */
function hoursOf(starts: number[]): Iv[] {
  return merge([...starts].sort((x, y) => x - y).map((h) => [h, h + HOUR] as Iv));
}

/** Whole multiples of `w` inside [from, to), as one interval or none. */
function aligned(from: number, to: number, w: number): Iv[] {
  const a = Math.ceil(from / w) * w;
  const b = Math.floor(to / w) * w;
  return a < b ? [[a, b]] : [];
}

/**
 * The intervals of [from, to) each source answers: `hour`, `ten` and `minute` from the rollup
 * tables, `raw` from metric_blocks. `dirtyHours` are the starts of hours the job has not
 * (re)computed, `tenHours` those the 10-minute rows cover.
 */
export function planRead(
  from: number, to: number, tier: Tier, dirtyHours: number[], tenHours: number[] = [],
): { hour: Iv[]; ten: Iv[]; minute: Iv[]; raw: Iv[] } {
  const all: Iv[] = from < to ? [[from, to]] : [];
  if (tier === "raw") return { hour: [], ten: [], minute: [], raw: all };
  const dirty = hoursOf(dirtyHours);
  const hour = tier === "1h" ? subtract(aligned(from, to, HOUR), dirty) : [];
  let ten: Iv[] = [];
  if (tier === "10m") {
    const span = aligned(from, to, TEN_MINUTES);
    // span within the covered hours: span minus what is not covered
    ten = subtract(subtract(span, subtract(span, hoursOf(tenHours))), dirty);
  }
  const minute = subtract(subtract(subtract(aligned(from, to, MINUTE), hour), ten), dirty);
  const raw = subtract(subtract(subtract(all, hour), ten), minute);
  return { hour, ten, minute, raw };
}

/** Whether `t` lies in one of the sorted, disjoint intervals. */
function within(ivs: Iv[], t: number): boolean {
  let lo = 0, hi = ivs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ivs[mid]![1] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo < ivs.length && ivs[lo]![0] <= t;
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
    // the 10-minute rows come first: their bits say which hours the tier covers (of the days
    // holding an asked series); a day's rows are few, so they are read in one statement and
    // visited by the plan's intervals
    const tens = tier === "10m" ? await readTenMinuteRows(tx, agentId, sids, from.getTime(), to.getTime()) : [];
    const plan = planRead(from.getTime(), to.getTime(), tier, dirty.map((d) => d.hour.getTime()), coveredHours(tens));
    if (plan.ten.length > 0) {
      const want = new Set(sids);
      const inTen = (sid: number, t: number, min: number, max: number, sum: number, count: number) => {
        if (within(plan.ten, t)) agg.merge(sid, t, min, max, sum, count);
      };
      for (const r of tens) visitRollupBlock(r.day, r.block, want, plan.ten[0]![0], plan.ten[plan.ten.length - 1]![1], inTen);
    }
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

/** The hours (starts) every 10-minute row of their day covers. */
function coveredHours(rows: Array<{ day: number; hours: number }>): number[] {
  const byDay = new Map<number, number>();
  for (const r of rows) byDay.set(r.day, (byDay.get(r.day) ?? r.hours) & r.hours);
  const out: number[] = [];
  for (const [day, bits] of byDay) for (let i = 0; i < 24; i++) if (bits & (1 << i)) out.push(day + i * HOUR);
  return out;
}
