/**
 * Metric rollups (src/store/postgres/rollups.ts, rollup-read.ts): tiered range reads give the raw
 * answer on the same bucket grid; the job is exactly once (a killed run counts nothing twice),
 * reflects late data and runs on one node at a time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { seriesRange } from "../../../src/store/postgres/queries.ts";
import { chooseTier, planRead, seriesRangeTiered, tierGrid, type Tier } from "../../../src/store/postgres/rollup-read.ts";
import { ROLLUP_LOCK, rollupStep } from "../../../src/store/postgres/rollups.ts";
import { ensurePartitions, listPartitions, timeSeriesTables } from "../../../src/store/postgres/partitions.ts";
import { createPgClient } from "../../../src/store/postgres/client.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { copyInto, METRIC_BLOCKS_COPY } from "../../../src/store/postgres/writer.ts";
import { join } from "node:path";
import type { Sql, TransactionSql } from "postgres";
import { readRollups, type RollupTier } from "../../../src/store/postgres/rollup-blocks.ts";
import { ROLLUP_NAMES, rollupHost, tenMinuteAggregates, wholeValues, type RollupFrame, type RollupHost } from "../../support/rollups.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NAMES = ROLLUP_NAMES;
// 4 days at 30 s, ending on the hour two hours ago; frames of 10 stamps (5 min)
const END = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
const START = END - 4 * DAY;
const STEP = 30_000;

let db: TestDb;
let agent: number;
let ids: Array<{ id: number; name: string }>;
let host: RollupHost;
const now = () => Date.now();

const value = wholeValues(STEP, 11, 101, 20);

const writeFrames = (frames: RollupFrame[]) => host.writeFrames(frames);
const rawCount = () => host.rawCount();

/** The stored aggregates of a tier (both layouts), one entry per (series, bucket). */
async function tierRows(tier: RollupTier, sid: number | null = null, from = 0, to = 4e12): Promise<Array<{ sid: number; t: number; min: number; max: number; sum: number; count: number }>> {
  const out: Array<{ sid: number; t: number; min: number; max: number; sum: number; count: number }> = [];
  await readRollups(db.sql, tier, agent, sid === null ? null : [sid], from, to, (sid, t, min, max, sum, count) => out.push({ sid, t, min, max, sum, count }));
  return out;
}

/** Samples counted by each tier (the 10-minute one: in the hours its rows cover). */
async function tierCounts(): Promise<{ m: number; h: number; t: number; mRows: number }> {
  const m = await tierRows("1m");
  const h = await tierRows("1h");
  const t = await tenMinuteAggregates(db.sql, agent);
  return { m: m.reduce((n, r) => n + r.count, 0), h: h.reduce((n, r) => n + r.count, 0), t: t.reduce((n, r) => n + r.count, 0), mRows: m.length };
}

async function drain(): Promise<void> {
  for (let i = 0; i < 20; i++) if ((await rollupStep({ sql: db.sql, rawDays: 30, now })).pairs === 0) return;
  throw new Error("rollup job did not finish in 20 steps");
}

/** The tiered answer and the raw answer on the same grid, compared value by value. */
async function expectTieredEqualsRaw(from: number, to: number, maxPoints: number, tier: Exclude<Tier, "raw">): Promise<number> {
  const grid = tierGrid(from, to, maxPoints, tier);
  const tiered = await seriesRangeTiered(db.sql, agent, ids, new Date(from), new Date(to), grid, tier);
  const raw = await seriesRangeTiered(db.sql, agent, ids, new Date(from), new Date(to), grid, "raw");
  let points = 0;
  for (let s = 0; s < ids.length; s++) {
    const a = tiered[s]!;
    const b = raw[s]!;
    expect(a.t).toEqual(b.t);
    expect(a.min).toEqual(b.min);
    expect(a.max).toEqual(b.max);
    for (let k = 0; k < a.avg.length; k++) expect(a.avg[k]!).toBeCloseTo(b.avg[k]!, 9);
    points += a.t.length;
  }
  return points;
}

beforeAll(async () => {
  db = await testDatabase();
  host = await rollupHost(db.sql, "rollup-host", 7, NAMES);
  ({ agent, ids } = host);
  const frames = [];
  for (let t = START; t < END; t += 10 * STEP) frames.push({ ts: Array.from({ length: 10 }, (_, k) => t + k * STEP), values: value });
  for (let i = 0; i < frames.length; i += 200) await writeFrames(frames.slice(i, i + 200));
}, 60_000);

afterAll(async () => {
  await db?.drop();
});

describe("tier choice and read plan", () => {
  test("1 h raw, 24 h 1-minute, 7 d, 30 d and 90 d 10-minute, 365 d 1-hour (1000 points)", () => {
    const tier = (span: number) => chooseTier(span, Math.max(1000, Math.ceil(span / 1000 / 1000) * 1000));
    expect([HOUR, DAY, 7 * DAY, 30 * DAY, 90 * DAY, 365 * DAY].map(tier)).toEqual(["raw", "1m", "10m", "10m", "10m", "1h"]);
    expect(chooseTier(DAY, 1000 * 60)).toBe("1m");
    expect(chooseTier(30 * DAY, 5 * 60_000)).toBe("1m"); // 8,640 points asked: the finer tier
    expect(chooseTier(30 * DAY, 1000)).toBe("raw"); // a point a second: only raw has it
  });

  test("the plan covers the range once: hours, minutes of dirty or partial hours, raw edges", () => {
    const from = 10 * HOUR + 90_500;
    const to = 20 * HOUR + 30_250;
    const p = planRead(from, to, "1h", [13 * HOUR]);
    expect(p.hour).toEqual([[11 * HOUR, 13 * HOUR], [14 * HOUR, 20 * HOUR]]);
    expect(p.minute).toEqual([[10 * HOUR + 120_000, 11 * HOUR]]);
    expect(p.raw).toEqual([[from, 10 * HOUR + 120_000], [13 * HOUR, 14 * HOUR], [20 * HOUR, to]]);
    const m = planRead(from, to, "1m", []);
    expect(m).toEqual({ hour: [], ten: [], minute: [[10 * HOUR + 120_000, 20 * HOUR]], raw: [[from, 10 * HOUR + 120_000], [20 * HOUR, to]] });
  });
});

describe("reads", () => {
  test("before the job ran every hour is dirty: tiered reads are raw reads", async () => {
    const p = await db.sql`select count(distinct hour)::int as n from metric_rollup_dirty where agent_id = ${agent}`;
    expect(p[0]!.n).toBeGreaterThanOrEqual(96);
    expect(await expectTieredEqualsRaw(START + 12_345, END - 7_777, 1000, "1h")).toBeGreaterThan(0);
  });

  test("after the job: 1-hour and 1-minute tiers equal raw at every bucket, odd edges included", async () => {
    await drain();
    const c = await tierCounts();
    expect(c.m).toBe(await rawCount());
    expect(c.h).toBe(c.m);
    expect(c.t).toBe(c.m);
    // the minute tier's rows are zstd-wrapped where smaller (version 2), the others' never
    const versions = await db.sql<{ t: string; v: number; n: number }[]>`
      select t, v, count(*)::int as n from (
        select '1m' as t, get_byte(block, 0) as v from metric_rollup_1m_blocks
        union all select '10m', get_byte(block, 0) from metric_rollup_10m_blocks
        union all select '1h', get_byte(block, 0) from metric_rollup_1h_blocks) x
      group by t, v order by t, v`;
    expect(versions.filter((r) => r.v === 2).map((r) => r.t)).toEqual(["1m"]);
    expect(versions.every((r) => r.v === 1 || (r.v === 2 && r.t === "1m"))).toBe(true);
    for (const [from, to, points, tier] of [
      [START + 12_345, END - 7_777, 1000, "1h"],
      [START + 3 * HOUR + 59_999, END - 5 * HOUR - 1, 37, "1h"],
      [START + DAY + 61_001, START + DAY + 13 * HOUR + 29_000, 1000, "1m"],
      [START + 5 * HOUR, START + 29 * HOUR, 300, "1m"],
    ] as const) {
      expect(await expectTieredEqualsRaw(from, to, points, tier)).toBeGreaterThan(ids.length);
    }
  });

  test("seriesRange reads long ranges through the tiers: the same answer with the rollup rows as without", async () => {
    const from = new Date(START + 12_345);
    const to = new Date(END - 7_777);
    const got = await seriesRange(db.sql, agent, ["x.1", "nope", "cpu.util"], from, to, 12);
    expect(got.map((p) => p.name)).toEqual(["x.1", "nope", "cpu.util"]);
    expect(got[1]!.t).toEqual([]);
    expect(got[0]!.t.length).toBeLessThanOrEqual(12);
    expect(got[0]!.t.length).toBeGreaterThan(10);
    expect(chooseTier(to.getTime() - from.getTime(), Math.ceil((to.getTime() - from.getTime()) / 12 / 1000) * 1000)).toBe("1h");
    const grid = tierGrid(from.getTime(), to.getTime(), 12, "1h");
    const raw = await seriesRangeTiered(db.sql, agent, [ids[3]!, ids[0]!], from, to, grid, "raw");
    expect(got[0]!.max).toEqual(raw[0]!.max);
    expect(got[2]!.min).toEqual(raw[1]!.min);
    // the answer really comes from the rollups: a 1-hour row of migration 490's table (still
    // read) shows, and marking its hour dirty makes the read go raw at once and the next step
    // replace it by the recomputed block
    const hour = new Date(START + 10 * HOUR);
    await db.sql`insert into metric_rollup_1h (agent_id, series_id, bucket, min, max, sum, count) values (${agent}, ${ids[3]!.id}, ${hour}, 0, 9999, 0, 1)`;
    expect(Math.max(...(await seriesRange(db.sql, agent, ["x.1"], from, to, 12))[0]!.max)).toBe(9999);
    await db.sql`insert into metric_rollup_dirty (agent_id, hour) values (${agent}, ${hour})`;
    expect((await seriesRange(db.sql, agent, ["x.1"], from, to, 12))[0]!.max).toEqual(raw[0]!.max);
    await drain();
    const rows = await tierRows("1h", ids[3]!.id, hour.getTime(), hour.getTime() + 1);
    expect(rows.length).toBe(1);
    expect(rows[0]!.max).toBeLessThan(9999);
    expect((await seriesRange(db.sql, agent, ["x.1"], from, to, 12))[0]!.max).toEqual(raw[0]!.max);
  });
});


describe("the job", () => {
  test("late data (a spool resent hours later) is read at once and rolled up on the next step", async () => {
    const hour = START + 20 * HOUR;
    const before = await tierCounts();
    const rawBefore = await rawCount();
    // samples between the existing ones (t + 15 s), one of them far above anything else
    await writeFrames([{ ts: Array.from({ length: 10 }, (_, k) => hour + 15_000 + k * STEP), values: (s, t) => (t === hour + 15_000 ? 5000 + s : value(s, t - 15_000)) }]);
    const from = START + 7_000;
    const to = END - 3_000;
    const grid = tierGrid(from, to, 1000, "1h");
    const read = await seriesRangeTiered(db.sql, agent, ids, new Date(from), new Date(to), grid, "1h");
    expect(Math.max(...read[0]!.max)).toBe(5000);
    await expectTieredEqualsRaw(from, to, 1000, "1h");
    const [dirty] = await db.sql`select count(*)::int as n from metric_rollup_dirty where agent_id = ${agent} and hour = ${new Date(hour)}`;
    expect(dirty!.n).toBe(1);
    await drain();
    const after = await tierCounts();
    expect(after.m).toBe(await rawCount());
    expect(after.t).toBe(after.m);
    expect(after.m - before.m).toBe((await rawCount()) - rawBefore);
    expect(after.m - before.m).toBeGreaterThanOrEqual(10 * NAMES.length - 1);
    const rows = await tierRows("1h", ids[3]!.id, hour, hour + 1);
    expect(rows.map((r) => r.max)).toEqual([5003]);
    await expectTieredEqualsRaw(from, to, 1000, "1h");
  });

  test("a run killed before commit (its process SIGKILLed) changes nothing; the next run counts everything once", async () => {
    // make three hours dirty again with new samples
    const hours = [START + 30 * HOUR, START + 31 * HOUR, START + 50 * HOUR];
    await writeFrames(hours.map((h) => ({ ts: [h + 20_000, h + 50_000], values: (s: number) => s + 1 })));
    const before = await tierCounts();
    // a real kill: a child process runs a step and is SIGKILLed inside its transaction
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "rollup-kill-child.ts"), db.url], { stdout: "pipe", stderr: "inherit" });
    try {
      const reader = child.stdout.getReader();
      let out = "";
      const deadline = Date.now() + 30_000;
      while (!out.includes("rewritten") && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      expect(out).toContain("rewritten");
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    // PostgreSQL sees the connection drop and rolls the transaction back; wait until its lock is gone
    for (let i = 0; i < 100; i++) {
      const [l] = await db.sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${ROLLUP_LOCK}`;
      if (l!.n === 0) break;
      await Bun.sleep(100);
    }
    expect(await tierCounts()).toEqual(before);
    const [marks] = await db.sql`select count(distinct hour)::int as n from metric_rollup_dirty where agent_id = ${agent}`;
    expect(marks!.n).toBe(3);
    // an error thrown by the job itself (not the database) rolls back too
    await expect(rollupStep({ sql: db.sql, rawDays: 30, now, beforeCommit: async () => { throw new Error("boom"); } })).rejects.toThrow("boom");
    expect(await tierCounts()).toEqual(before);
    await drain();
    const after = await tierCounts();
    expect(after.m).toBe(await rawCount());
    expect(after.m - before.m).toBe(3 * 2 * NAMES.length);
    expect(after.h).toBe(after.m);
    expect(after.t).toBe(after.m);
    // steps with nothing dirty change nothing; forcing a recompute of rolled-up hours neither
    await db.sql`insert into metric_rollup_dirty (agent_id, hour) select ${agent}, unnest(${hours.map((h) => new Date(h).toISOString())}::timestamptz[])`;
    await drain();
    expect(await tierCounts()).toEqual(after);
  });

  test("one node at a time: while another holds the rollup lock a step does nothing", async () => {
    await writeFrames([{ ts: [START + 40 * HOUR + 1000], values: () => 1 }]);
    const other = createPgClient(db.url, 1);
    try {
      const before = await tierCounts();
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const holder = other.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(${ROLLUP_LOCK})`;
        locked();
        await held;
      });
      await isLocked;
      const r = await rollupStep({ sql: db.sql, rawDays: 30, now });
      expect(r).toEqual({ leader: false, pairs: 0, minuteRows: 0, expired: 0 });
      expect(await tierCounts()).toEqual(before);
      release();
      await holder;
      // two nodes stepping at once: never both leaders of the same work, and no double counts
      const second = createPgClient(db.url, 2);
      try {
        const rs = await Promise.all([rollupStep({ sql: db.sql, rawDays: 30, now }), rollupStep({ sql: second, rawDays: 30, now })]);
        expect(rs.reduce((n, x) => n + x.pairs, 0)).toBe(1);
      } finally {
        await second.end();
      }
      const after = await tierCounts();
      expect(after.m).toBe(await rawCount());
      expect(after.m - before.m).toBe(NAMES.length);
    } finally {
      await other.end();
    }
  });

  test("marks of hours raw no longer holds are dropped, not recomputed into empty rollups", async () => {
    const old = new Date(START - 40 * DAY);
    await db.sql`insert into metric_rollup_dirty (agent_id, hour) values (${agent}, ${old})`;
    const before = await tierCounts();
    const r = await rollupStep({ sql: db.sql, rawDays: 30, now });
    expect(r.expired).toBe(1);
    expect(await tierCounts()).toEqual(before);
  });
});

// Migration 570: a statement adds a mark only when it cannot lock one of the same (agent, hour).
describe("marks, one per (agent, hour)", () => {
  /** The host's marks of `hour`, as `q` (a transaction's own view, or committed ones) sees them. */
  const marks = async (hour: number, q: Sql | TransactionSql = db.sql): Promise<number> =>
    (await q<{ n: number }[]>`select count(*)::int as n from metric_rollup_dirty where agent_id = ${agent} and hour = ${new Date(hour)}`)[0]!.n;
  /** Resolves once some statement waits for a lock, rejects after 10 s. */
  async function someoneWaits(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const [w] = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_locks where not granted`;
      if (w!.n > 0) return;
      await Bun.sleep(50);
    }
    throw new Error("no statement waited for a lock within 10 s");
  }

  test("statements storing more blocks of a marked hour add no mark", async () => {
    await drain();
    const hour = START + 60 * HOUR;
    for (let i = 0; i < 5; i++) await writeFrames([{ ts: [hour + 1_000 + i * 1_000], values: () => i }]);
    expect(await marks(hour)).toBe(1);
    await drain();
    expect(await marks(hour)).toBe(0);
    expect((await tierCounts()).m).toBe(await rawCount());
  });

  test("a writer that reused a mark holds the job's delete of it until the writer commits; the step then counts its blocks", async () => {
    await drain();
    const hour = START + 61 * HOUR;
    await writeFrames([{ ts: [hour + 5_000], values: () => 3 }]);
    expect(await marks(hour)).toBe(1);
    const other = createPgClient(db.url, 1);
    try {
      let commit!: () => void;
      const go = new Promise<void>((r) => (commit = r));
      let written!: (n: number) => void;
      const isWritten = new Promise<number>((r) => (written = r));
      const writer = other.begin(async (tx) => {
        await copyInto(tx, METRIC_BLOCKS_COPY, host.frameRows([{ ts: [hour + 6_000], values: () => 4 }]));
        // the writer's own view: it locked the existing mark instead of adding one
        written(await marks(hour, tx));
        await go;
      });
      expect(await isWritten).toBe(1);
      const step = rollupStep({ sql: db.sql, rawDays: 30, now });
      await someoneWaits();
      commit();
      await writer;
      expect((await step).pairs).toBe(1);
      // the step's recompute came after the writer's commit: every block of the hour is counted, and no mark is left
      expect(await marks(hour)).toBe(0);
      expect((await tierCounts()).m).toBe(await rawCount());
      await expectTieredEqualsRaw(hour - HOUR, hour + 2 * HOUR, 1000, "1h");
    } finally {
      await other.end();
    }
  });

  test("a writer does not wait for a job holding the hour's mark: it adds a mark of its own, which the next step consumes", async () => {
    await drain();
    const hour = START + 62 * HOUR;
    await writeFrames([{ ts: [hour + 5_000], values: () => 3 }]);
    const other = createPgClient(db.url, 1);
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let inStep!: () => void;
      const isInStep = new Promise<void>((r) => (inStep = r));
      const step = rollupStep({ sql: db.sql, rawDays: 30, now, beforeCommit: async () => { inStep(); await held; } });
      await isInStep;
      // the job has deleted the mark and recomputed the hour, not yet committed
      const rows = host.frameRows([{ ts: [hour + 6_000], values: () => 4 }]);
      const wrote = other.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, rows));
      const waited = await Promise.race([wrote.then(() => false), Bun.sleep(10_000).then(() => true)]);
      release();
      await step;
      await wrote;
      expect(waited).toBe(false);
      expect(await marks(hour)).toBe(1);
      expect((await tierCounts()).m).toBe((await rawCount()) - NAMES.length);
      await drain();
      expect(await marks(hour)).toBe(0);
      expect((await tierCounts()).m).toBe(await rawCount());
    } finally {
      await other.end();
    }
  });
});

test("rollup tiers get their own partitions and retention", async () => {
  const t = timeSeriesTables(3, 3, { minuteDays: 14, tenMinuteDays: 65, hourDays: 65 });
  for (const p of t.filter((x) => x.table.startsWith("metric_rollup_"))) await ensurePartitions(db.sql, p);
  // the block tables (migrations 520, 555) and migration 490's, still read until they empty
  for (const [m, h] of [["metric_rollup_1m_blocks", "metric_rollup_1h_blocks"], ["metric_rollup_1m", "metric_rollup_1h"], ["metric_rollup_1m_blocks", "metric_rollup_10m_blocks"]]) {
    const minute = await listPartitions(db.sql, m!);
    const hour = await listPartitions(db.sql, h!);
    // 14 days back + 2 ahead in 7-day partitions; 65 days back in 30-day ones (10-minute and 1-hour; plus the defaults)
    expect(minute.length - 1).toBeGreaterThanOrEqual(3);
    expect(minute.length - 1).toBeLessThanOrEqual(4);
    expect(hour.length - 1).toBeGreaterThanOrEqual(3);
    expect(hour.length - 1).toBeLessThanOrEqual(4);
  }
  const [inDefault] = await db.sql`select count(*)::int as n from metric_rollup_1m_blocks_default`;
  expect(inDefault!.n).toBe(0);
  // rows moved out of the default partition, none lost
  const c = await tierCounts();
  expect(c.m).toBe(await rawCount());
  expect(c.h).toBe(c.m);
  expect(c.t).toBe(c.m);
});
