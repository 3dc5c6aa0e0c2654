/**
 * The 10-minute rollup tier (migration 555; rollups.ts, rollup-read.ts): a week read through it
 * gives raw's min, max, avg and count per bucket; late data replaces its hour's buckets in the
 * day's rows (never adds); hours rolled up before the migration are read from the 1-minute tier.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CopyWriter } from "../../../src/store/postgres/copy-binary.ts";
import { copyInto, encodeMetricBlocks, METRIC_BLOCKS_COPY } from "../../../src/store/postgres/writer.ts";
import { seriesRange, rangeBucketMs } from "../../../src/store/postgres/queries.ts";
import { chooseTier, chooseTierWithout10m, planRead, seriesRangeTiered, tenMinuteReaches, tierGrid } from "../../../src/store/postgres/rollup-read.ts";
import { rollupStep } from "../../../src/store/postgres/rollups.ts";
import { BLOCK_TARGET_BYTES } from "../../../src/store/postgres/metric-blocks.ts";
import { migrate } from "../../../src/store/postgres/migrate.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { readTenMinuteRows } from "../../../src/store/postgres/rollup-blocks.ts";
import { ROLLUP_NAMES, rollupHost, tenMinuteAggregates, wholeValues, type RollupFrame, type RollupHost } from "../../support/rollups.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NAMES = ROLLUP_NAMES;
// 9 days at 60 s, ending on the hour two hours ago; frames of 10 stamps
const END = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
const START = END - 9 * DAY;
const STEP = 60_000;

let db: TestDb;
let agent: number;
let ids: Array<{ id: number; name: string }>;
let host: RollupHost;
const now = () => Date.now();

const value = wholeValues(STEP, 13, 97, 30);

const writeFrames = (frames: RollupFrame[]) => host.writeFrames(frames);
const rawCount = () => host.rawCount();

async function drain(): Promise<void> {
  for (let i = 0; i < 40; i++) if ((await rollupStep({ sql: db.sql, rawDays: 30, now, maxPairs: 100 })).pairs === 0) return;
  throw new Error("rollup job did not finish in 40 steps");
}

/** The 10-minute tier's answer and raw's on the same grid, value by value; returns the points compared. */
async function expectTenEqualsRaw(from: number, to: number, maxPoints: number): Promise<number> {
  const grid = tierGrid(from, to, maxPoints, "10m");
  const tiered = await seriesRangeTiered(db.sql, agent, ids, new Date(from), new Date(to), grid, "10m");
  const raw = await seriesRangeTiered(db.sql, agent, ids, new Date(from), new Date(to), grid, "raw");
  let points = 0;
  for (let s = 0; s < ids.length; s++) {
    expect(tiered[s]!.t).toEqual(raw[s]!.t);
    expect(tiered[s]!.min).toEqual(raw[s]!.min);
    expect(tiered[s]!.max).toEqual(raw[s]!.max);
    for (let k = 0; k < raw[s]!.avg.length; k++) expect(tiered[s]!.avg[k]!).toBeCloseTo(raw[s]!.avg[k]!, 9);
    points += raw[s]!.t.length;
  }
  return points;
}

/** The plan of a read as the reader makes it: dirty hours and the hours the 10-minute rows cover. */
async function planOf(from: number, to: number) {
  const dirty = (await db.sql`select distinct hour from metric_rollup_dirty where agent_id = ${agent}`).map((r) => (r.hour as Date).getTime());
  const covered = new Set((await tenMinuteAggregates(db.sql, agent, from, to)).map((a) => Math.floor(a.t / HOUR) * HOUR));
  return planRead(from, to, "10m", dirty, [...covered]);
}

beforeAll(async () => {
  db = await testDatabase();
  host = await rollupHost(db.sql, "rollup-10m-host", 9, NAMES);
  ({ agent, ids } = host);
  const frames = [];
  for (let t = START; t < END; t += 10 * STEP) frames.push({ ts: Array.from({ length: 10 }, (_, k) => t + k * STEP), values: value });
  for (let i = 0; i < frames.length; i += 300) await writeFrames(frames.slice(i, i + 300));
  await drain();
}, 120_000);

afterAll(async () => {
  await db?.drop();
});

describe("tier choice", () => {
  test("10-minute from 10-minute buckets, 1-hour from 6-hour buckets over 3 days or more", () => {
    expect(chooseTier(6 * HOUR, 10 * MINUTE)).toBe("10m");
    expect(chooseTier(6 * HOUR, 10 * MINUTE - 1000)).toBe("1m");
    expect(chooseTier(6 * HOUR - 1, 10 * MINUTE)).toBe("raw");
    expect(chooseTier(3 * DAY, 6 * HOUR)).toBe("1h");
    expect(chooseTier(3 * DAY, 6 * HOUR - 1000)).toBe("10m");
    expect(chooseTier(3 * DAY - 1, 6 * HOUR)).toBe("10m");
    expect(chooseTier(90 * DAY, rangeBucketMs(new Date(0), new Date(90 * DAY), 1000))).toBe("10m");
    // a week at 1000 points: 10.08-minute buckets, answered in 20-minute ones
    const week = rangeBucketMs(new Date(0), new Date(7 * DAY), 1000);
    expect(chooseTier(7 * DAY, week)).toBe("10m");
    expect(tierGrid(12_345, 7 * DAY + 12_345, 1000, "10m")).toEqual({ originMs: 0, bucketMs: 20 * MINUTE });
    // the choice before migration 555, for ranges reaching back before the tier
    const at1000 = (span: number) => chooseTierWithout10m(span, rangeBucketMs(new Date(0), new Date(span), 1000));
    expect([HOUR, DAY, 7 * DAY, 30 * DAY, 90 * DAY].map(at1000)).toEqual(["raw", "1m", "1m", "1h", "1h"]);
  });

  test("the plan reads covered, clean hours from 10-minute rows, the rest from 1-minute rows and raw", () => {
    const from = 10 * HOUR + 7 * MINUTE + 500;
    const to = 16 * HOUR + 25 * MINUTE + 250;
    // 10..15 covered; 13 dirty; 16 not covered
    const p = planRead(from, to, "10m", [13 * HOUR], [10, 11, 12, 13, 14, 15].map((h) => h * HOUR));
    expect(p.ten).toEqual([[10 * HOUR + 10 * MINUTE, 13 * HOUR], [14 * HOUR, 16 * HOUR]]);
    expect(p.minute).toEqual([[10 * HOUR + 8 * MINUTE, 10 * HOUR + 10 * MINUTE], [16 * HOUR, 16 * HOUR + 25 * MINUTE]]);
    expect(p.raw).toEqual([[from, 10 * HOUR + 8 * MINUTE], [13 * HOUR, 14 * HOUR], [16 * HOUR + 25 * MINUTE, to]]);
    expect(p.hour).toEqual([]);
    // nothing covered: what the 1-minute tier would read
    const none = planRead(from, to, "10m", [], []);
    expect(none.ten).toEqual([]);
    expect(none.minute).toEqual([[10 * HOUR + 8 * MINUTE, 16 * HOUR + 25 * MINUTE]]);
  });
});

describe("reads", () => {
  test("a week through the 10-minute tier equals raw at every bucket, odd edges included", async () => {
    const total = (await tenMinuteAggregates(db.sql, agent)).reduce((n, a) => n + a.count, 0);
    expect(total).toBe(await rawCount());
    // every hour was rolled up with the tier: seriesRange reads it, in 20-minute buckets
    expect(await tenMinuteReaches(db.sql, agent, START, END)).toBe(true);
    const week = await seriesRange(db.sql, agent, ["cpu.util"], new Date(END - 7 * DAY), new Date(END));
    expect(week[0]!.t[1]! - week[0]!.t[0]!).toBe(20 * MINUTE);
    for (const [from, to, points] of [
      [END - 7 * DAY, END, 1000],
      [END - 7 * DAY + 12_345, END - 7_777, 1000],
      [START + 3 * HOUR + 599_999, END - 5 * HOUR - 1, 300],
      [START + DAY + 61_001, START + DAY + 13 * HOUR + 29_000, 50],
    ] as const) {
      expect(await expectTenEqualsRaw(from, to, points)).toBeGreaterThan(ids.length * 20);
    }
  });

  test("the answer comes from the 10-minute rows: without the day's 1-minute rows it is the same", async () => {
    const day = Math.floor(START / DAY) * DAY + 3 * DAY;
    const plan = await planOf(day, day + DAY);
    expect(plan.ten).toEqual([[day, day + DAY]]);
    const before = await seriesRange(db.sql, agent, NAMES, new Date(END - 7 * DAY), new Date(END));
    await db.sql`delete from metric_rollup_1m_blocks where agent_id = ${agent} and hour >= ${new Date(day)} and hour < ${new Date(day + DAY)}`;
    expect(await seriesRange(db.sql, agent, NAMES, new Date(END - 7 * DAY), new Date(END))).toEqual(before);
    await expectTenEqualsRaw(day - 5 * HOUR, day + DAY + 5 * HOUR, 500);
    // marking the day's hours brings the 1-minute rows back (and replaces the 10-minute buckets)
    await db.sql`insert into metric_rollup_dirty (agent_id, hour) select ${agent}, generate_series(${new Date(day)}::timestamptz, ${new Date(day + DAY - HOUR)}::timestamptz, interval '1 hour')`;
    await drain();
    const [m] = await db.sql`select count(distinct hour)::int as n from metric_rollup_1m_blocks where agent_id = ${agent} and hour >= ${new Date(day)} and hour < ${new Date(day + DAY)}`;
    expect(m!.n).toBe(24);
    expect((await tenMinuteAggregates(db.sql, agent)).reduce((n, a) => n + a.count, 0)).toBe(await rawCount());
  });
});

describe("the job", () => {
  test("late data is read raw at once, then replaces its hour's buckets in the day's rows", async () => {
    const hour = START + 4 * DAY + 7 * HOUR;
    const rawBefore = await rawCount();
    const tenBefore = (await tenMinuteAggregates(db.sql, agent)).reduce((n, a) => n + a.count, 0);
    // samples between the existing ones (t + 30 s), one far above anything else
    await writeFrames([{ ts: Array.from({ length: 10 }, (_, k) => hour + 30_000 + k * STEP), values: (s, t) => (t === hour + 30_000 ? 7000 + s : value(s, t - 30_000)) }]);
    expect((await planOf(hour - DAY, hour + DAY)).raw).toContainEqual([hour, hour + HOUR]);
    const week = await seriesRange(db.sql, agent, ["x.1"], new Date(END - 7 * DAY), new Date(END));
    expect(Math.max(...week[0]!.max)).toBe(7003);
    await expectTenEqualsRaw(END - 7 * DAY, END, 1000);
    await drain();
    expect((await planOf(hour - DAY, hour + DAY)).ten).toContainEqual([hour - DAY, hour + DAY]);
    const rows = (await tenMinuteAggregates(db.sql, agent, hour, hour + 10 * MINUTE)).filter((a) => a.sid === ids[3]!.id);
    expect(rows.map((r) => r.max)).toEqual([7003]);
    const added = (await rawCount()) - rawBefore;
    expect(added).toBeGreaterThanOrEqual(10 * NAMES.length - 1);
    expect((await tenMinuteAggregates(db.sql, agent)).reduce((n, a) => n + a.count, 0) - tenBefore).toBe(added);
    await expectTenEqualsRaw(END - 7 * DAY, END, 1000);
    // recomputing the hour again replaces, never adds
    await db.sql`insert into metric_rollup_dirty (agent_id, hour) values (${agent}, ${new Date(hour)})`;
    await drain();
    expect((await tenMinuteAggregates(db.sql, agent)).reduce((n, a) => n + a.count, 0)).toBe(await rawCount());
  });
});

test("a series only one day holds: the other days are read from the 1-minute tier, exactly", async () => {
  const [row] = await db.sql`insert into metric_series (agent_id, name) values (${agent}, 'only.one.day') returning id`;
  const extra = { id: Number(row!.id), name: "only.one.day" };
  const hour = END - 2 * DAY + 3 * HOUR;
  const w = new CopyWriter().begin();
  encodeMetricBlocks(w, agent, host.nextBatch(), { ts: Float64Array.from([hour + 1000, hour + 61_000]), names: [extra.name], values: Float64Array.from([5, 9]) }, Int32Array.from([extra.id]));
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
  await drain();
  expect(new Set((await readTenMinuteRows(db.sql, agent, [extra.id], END - 7 * DAY, END)).map((r) => r.day))).toEqual(new Set([Math.floor(hour / DAY) * DAY]));
  const grid = tierGrid(END - 7 * DAY, END, 1000, "10m");
  const pair = [extra, ids[0]!];
  const tiered = await seriesRangeTiered(db.sql, agent, pair, new Date(END - 7 * DAY), new Date(END), grid, "10m");
  expect(tiered).toEqual(await seriesRangeTiered(db.sql, agent, pair, new Date(END - 7 * DAY), new Date(END), grid, "raw"));
  expect(tiered[0]).toEqual({ name: extra.name, t: [Math.floor(hour / grid.bucketMs) * grid.bucketMs], avg: [7], min: [5], max: [9] });
  expect(tiered[1]!.t.length).toBeGreaterThan(500);
});

test("a day of one series too large for a row (full-precision noise) is cut in time: rows stay under the target, reads stay exact", async () => {
  const [row] = await db.sql`insert into metric_series (agent_id, name) values (${agent}, 'noisy.full') returning id`;
  const noisy = { id: Number(row!.id), name: "noisy.full" };
  const day = Math.floor(START / DAY) * DAY + 5 * DAY;
  const ts = Array.from({ length: 1440 }, (_, k) => day + k * MINUTE + 7_000);
  const w = new CopyWriter().begin();
  for (let i = 0; i < ts.length; i += 60) {
    const part = ts.slice(i, i + 60);
    encodeMetricBlocks(w, agent, host.nextBatch(), { ts: Float64Array.from(part), names: [noisy.name], values: Float64Array.from(part, (t) => Math.sin(t / 7e4) * 1e3 + t / 3e9) }, Int32Array.from([noisy.id]));
  }
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
  await drain();
  const rows = await db.sql`select octet_length(block) as n, hours from metric_rollup_10m_blocks where agent_id = ${agent} and day = ${new Date(day)} and series && ${[noisy.id]}::int4[]`;
  expect(rows.length).toBeGreaterThan(1);
  for (const r of rows) expect(r.n).toBeLessThanOrEqual(BLOCK_TARGET_BYTES);
  expect(new Set(rows.map((r) => r.hours))).toEqual(new Set([0xffffff]));
  const from = day - 3 * HOUR + 12_345;
  const to = day + DAY + 2 * HOUR;
  const grid = tierGrid(from, to, 300, "10m");
  const tiered = await seriesRangeTiered(db.sql, agent, [noisy], new Date(from), new Date(to), grid, "10m");
  const raw = await seriesRangeTiered(db.sql, agent, [noisy], new Date(from), new Date(to), grid, "raw");
  expect(tiered[0]!.t).toEqual(raw[0]!.t);
  expect(tiered[0]!.t.length).toBeGreaterThan(70);
  expect(tiered[0]!.min).toEqual(raw[0]!.min);
  expect(tiered[0]!.max).toEqual(raw[0]!.max);
  tiered[0]!.avg.forEach((a, k) => expect(a).toBeCloseTo(raw[0]!.avg[k]!, 6));
  expect((await tenMinuteAggregates(db.sql, agent)).reduce((n, a) => n + a.count, 0)).toBe(await rawCount());
});

test("migration 555 on a database rolled up before it: reads stay exact and use the 1-minute tier until hours are recomputed", async () => {
  // the state before the migration: hours rolled up into the 1-minute and 1-hour tiers, no 10-minute table
  await db.sql`drop table metric_rollup_10m_blocks`;
  await db.sql`delete from schema_migrations where version = '555'`;
  expect(await migrate(db.sql)).toEqual(["555"]);
  const [n] = await db.sql`select count(*)::int as n from metric_rollup_10m_blocks`;
  expect(n!.n).toBe(0);
  const plan = await planOf(END - 7 * DAY, END);
  expect(plan.ten).toEqual([]);
  // seriesRange reads such a week as before the migration: the 1-minute tier, 11-minute buckets
  expect(await tenMinuteReaches(db.sql, agent, END - 7 * DAY, END)).toBe(false);
  const spacing = async (from: number, points = 1000) => {
    const p = (await seriesRange(db.sql, agent, ["cpu.util"], new Date(from), new Date(END), points))[0]!;
    return p.t[1]! - p.t[0]!;
  };
  expect(await spacing(END - 7 * DAY)).toBe(11 * MINUTE);
  expect(plan.raw.reduce((s, [a, b]) => s + b - a, 0)).toBeLessThan(HOUR);
  await expectTenEqualsRaw(END - 7 * DAY, END, 1000);
  await expectTenEqualsRaw(END - 7 * DAY + 12_345, END - 7_777, 1000);
  // late data in one hour: the job writes that hour's day rows with only that hour's bit
  const hour = END - 3 * DAY + 5 * HOUR;
  const day = Math.floor(hour / DAY) * DAY;
  await writeFrames([{ ts: [hour + 45_000], values: () => -500 }]);
  await drain();
  const after = await planOf(day, day + DAY);
  expect(after.ten).toEqual([[hour, hour + HOUR]]);
  // a range from that hour on reads the tier (later hours without bits from the 1-minute one); one
  // reaching further back still reads as before the migration
  expect(await tenMinuteReaches(db.sql, agent, hour, END)).toBe(true);
  expect(await spacing(hour, 300)).toBe(20 * MINUTE);
  expect(await tenMinuteReaches(db.sql, agent, hour - HOUR, END)).toBe(false);
  expect(await spacing(END - 7 * DAY)).toBe(11 * MINUTE);
  const week = await seriesRange(db.sql, agent, ["cpu.util"], new Date(END - 7 * DAY), new Date(END));
  expect(Math.min(...week[0]!.min)).toBe(-500);
  await expectTenEqualsRaw(END - 7 * DAY, END, 1000);
  await expectTenEqualsRaw(day + 10 * MINUTE, day + DAY - 10 * MINUTE, 144);
});
