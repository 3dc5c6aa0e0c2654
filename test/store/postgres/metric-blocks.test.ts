/**
 * Compressed metric blocks (migration 495) next to rows stored before it: a database migrated up
 * to 490 gets float8[] rows, then 495 and compressed rows for the next hour; every reader (raw
 * range reads, the rollup job, incident thresholds, the decoded row listing) answers over both
 * exactly as computed here from the values written. Also: rows stay under the TOAST threshold,
 * and a row holds one layout or the other.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { migrate } from "../../../src/store/postgres/migrate.ts";
import { CopyWriter } from "../../../src/store/postgres/copy-binary.ts";
import { copyInto, encodeMetricBlocks, METRIC_BLOCKS_COPY } from "../../../src/store/postgres/writer.ts";
import { BLOCK_TARGET_BYTES, countStoredSamples, readBlockRows } from "../../../src/store/postgres/metric-blocks.ts";
import { rangeBucketMs, seriesRange } from "../../../src/store/postgres/queries.ts";
import { rollupStep } from "../../../src/store/postgres/rollups.ts";
import { readRollups } from "../../../src/store/postgres/rollup-blocks.ts";
import { SeriesCache } from "../../../src/store/postgres/series.ts";
import { gatherSignals } from "../../../src/security/incidents.ts";
import type { ScopedHost } from "../../../src/store/postgres/queries-console.ts";
import { migrateDatabaseTo, testDatabase, type TestDb } from "../../support/db.ts";

const H0 = Date.UTC(2026, 9, 1, 10); // legacy rows in [H0, H0+1h), compressed ones in [H0+1h, H0+2h)
const STEP = 10_000;
const NAMES = ["cpu.usage_pct", "load.1", "net.rx_bytes"];

/** The value of series s at time t (NaN: a missing sample). */
function value(s: number, t: number): number {
  const i = (t - H0) / STEP;
  if (s === 0) return (i * 7) % 101; // 0..100, integers
  if (s === 1) return i % 13 === 0 ? NaN : ((i * 3) % 50) / 10; // one decimal, gaps
  return 1e9 + i * 12_345.678 + (i % 7) * 0.001; // a noisy double
}

let db: TestDb;
let agent: number;
let sids: number[];

beforeAll(async () => {
  db = await testDatabase(2);
  // the same database as before migration 495
  await migrateDatabaseTo(db, "490");
  const [a] = await db.sql`insert into agents (hostname, public_key) values ('mixed', ${Buffer.alloc(32, 7)}) returning id`;
  agent = Number(a!.id);
  sids = [];
  for (const n of NAMES) sids.push(Number((await db.sql`insert into metric_series (agent_id, name) values (${agent}, ${n}) returning id`)[0]!.id));
  // hour 1: float8[] rows as the writer made them before 495 (10 timestamps, all series in a row)
  for (let f = 0; f < 36; f++) {
    const t0 = H0 + f * 10 * STEP;
    const off = Array.from({ length: 10 }, (_, k) => k * STEP);
    const vals = NAMES.flatMap((_, s) => off.map((o) => value(s, t0 + o)));
    await db.sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals)
      values (${agent}, ${f + 1}, ${new Date(t0)}, ${new Date(t0 + 9 * STEP)}, ${off}, ${sids}, ${vals.map((v) => (Number.isNaN(v) ? "NaN" : String(v)))}::float8[])`;
  }
  expect(await migrate(db.sql)).toContain("495");
  // hour 2: compressed rows through the writer's encoding and COPY
  const w = new CopyWriter().begin();
  for (let f = 0; f < 36; f++) {
    const ts = Float64Array.from({ length: 10 }, (_, k) => H0 + 3_600_000 + (f * 10 + k) * STEP);
    const values = new Float64Array(NAMES.length * 10);
    for (let s = 0; s < NAMES.length; s++) for (let k = 0; k < 10; k++) values[s * 10 + k] = value(s, ts[k]!);
    encodeMetricBlocks(w, agent, 100 + f, { ts, names: NAMES, values }, Int32Array.from(sids));
  }
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
}, 120_000);

afterAll(async () => {
  await db?.drop();
});

/** Expected (min, max, sum, count) per (series, bucket) over [from, to). */
function expected(from: number, to: number, origin: number, width: number) {
  const out = new Map<string, { min: number; max: number; sum: number; count: number }>();
  for (let t = H0; t < H0 + 7_200_000; t += STEP) {
    if (t < from || t >= to) continue;
    for (let s = 0; s < NAMES.length; s++) {
      const v = value(s, t);
      if (Number.isNaN(v)) continue;
      const k = `${s}:${origin + Math.floor((t - origin) / width) * width}`;
      const a = out.get(k);
      if (!a) out.set(k, { min: v, max: v, sum: v, count: 1 });
      else Object.assign(a, { min: Math.min(a.min, v), max: Math.max(a.max, v), sum: a.sum + v, count: a.count + 1 });
    }
  }
  return out;
}

test("migration 525 keeps every series id behind the metric_series view; names are stored once; new series get new ids", async () => {
  const rows = await db.sql`select id, name from metric_series where agent_id = ${agent} order by id`;
  expect(rows.map((r) => [r.id, r.name])).toEqual(sids.map((id, i) => [id, NAMES[i]]));
  // a second agent with two of the same names and a new one, through the ingest writer's cache
  const [b] = await db.sql`insert into agents (hostname, public_key) values ('second', ${Buffer.alloc(32, 8)}) returning id`;
  const other = Number(b!.id);
  const cache = new SeriesCache();
  const names = [NAMES[2]!, NAMES[0]!, "brand.new"];
  await cache.resolve(db.sql, [{ agentId: other, names }]);
  const ids = [...cache.ids(other, names)!];
  expect(new Set([...ids, ...sids]).size).toBe(6);
  expect(ids[1]).toBe(ids[0]! + 1); // handed out in the frame's order
  expect(ids[2]).toBe(ids[1]! + 1);
  expect(Math.min(...ids)).toBeGreaterThan(Math.max(...sids));
  const [n] = await db.sql`select count(*)::int as n, count(distinct name)::int as d from metric_names`;
  expect(n).toEqual({ n: 4, d: 4 });
  // registering again changes nothing
  await new SeriesCache().resolve(db.sql, [{ agentId: other, names }]);
  expect((await db.sql`select count(*)::int as n from metric_series where agent_id = ${other}`)[0]!.n).toBe(3);
});

test("both layouts are listed, decoded, with every sample", async () => {
  const rows = await readBlockRows(db.sql, agent);
  expect(rows.filter((r) => r.batchId <= 36).length).toBe(36); // legacy
  expect(rows.filter((r) => r.batchId > 36).length).toBe(36); // compressed: one row a frame
  expect(await countStoredSamples(db.sql, agent)).toBe(2 * 36 * 10 * NAMES.length);
  for (const r of rows) {
    expect(r.series).toEqual(sids);
    r.tsOff.forEach((o, k) => NAMES.forEach((_, s) => expect(Object.is(r.vals[s * 10 + k], value(s, r.t0 + o))).toBe(true)));
  }
  const [kinds] = await db.sql`select count(*) filter (where block is null)::int as legacy, count(*) filter (where block is not null)::int as compressed from metric_blocks`;
  expect(kinds).toEqual({ legacy: 36, compressed: 36 });
});

test("raw range reads across the migration equal the buckets of the written values", async () => {
  const from = H0 + 30 * 60_000 + 7_000, to = H0 + 90 * 60_000 + 3_000; // cuts frames in both layouts
  const got = await seriesRange(db.sql, agent, NAMES, new Date(from), new Date(to), 500);
  const width = rangeBucketMs(new Date(from), new Date(to), 500);
  const want = expected(from, to, from, width);
  let n = 0;
  got.forEach((p, s) => {
    expect(p.name).toBe(NAMES[s]!);
    p.t.forEach((t, i) => {
      const e = want.get(`${s}:${t}`)!;
      expect(e).toBeDefined();
      expect(p.min[i]).toBe(e.min);
      expect(p.max[i]).toBe(e.max);
      expect(p.avg[i]!).toBeCloseTo(e.sum / e.count, 6);
      n++;
    });
  });
  expect(n).toBe(want.size);
});

test("the rollup job computes minutes from both layouts, once", async () => {
  const step = await rollupStep({ sql: db.sql, rawDays: 100_000, now: () => H0 + 4 * 3_600_000 });
  expect(step.pairs).toBe(2);
  const rows: Array<{ series_id: number; bucket: Date; min: number; max: number; sum: number; count: number }> = [];
  await readRollups(db.sql, "1m", agent, null, 0, 4e12, (sid, t, min, max, sum, count) => rows.push({ series_id: sid, bucket: new Date(t), min, max, sum, count }));
  const want = expected(H0, H0 + 7_200_000, 0, 60_000);
  expect(rows.length).toBe(want.size);
  expect(step.minuteRows).toBe(want.size);
  for (const r of rows) {
    const e = want.get(`${sids.indexOf(r.series_id)}:${r.bucket.getTime()}`)!;
    expect({ min: r.min, max: r.max, count: r.count }).toEqual({ min: e.min, max: e.max, count: e.count });
    expect(r.sum).toBeCloseTo(e.sum, 3);
  }
  const h: number[] = [];
  await readRollups(db.sql, "1h", agent, null, 0, 4e12, (_sid, _t, _min, _max, _sum, count) => h.push(count));
  expect({ n: h.reduce((a, c) => a + c, 0), rows: h.length }).toEqual({ n: [...want.values()].reduce((a, e) => a + e.count, 0), rows: 2 * NAMES.length });
  expect((await rollupStep({ sql: db.sql, rawDays: 100_000, now: () => H0 + 4 * 3_600_000 })).pairs).toBe(0);
});

test("incident thresholds find the breaching minutes in both layouts", async () => {
  const host = { id: agent } as unknown as ScopedHost;
  const signals = await gatherSignals(db.sql, host, { fromMs: H0, toMs: H0 + 7_200_000, thresholds: [{ metric: "cpu.usage_pct", above: 97, severity: 4 }] });
  const metric = signals.filter((s) => s.kind === "metric");
  const minutes = new Map<number, number>();
  for (let t = H0; t < H0 + 7_200_000; t += STEP) {
    const v = value(0, t);
    if (v > 97) minutes.set(Math.floor(t / 60_000) * 60_000, Math.max(minutes.get(Math.floor(t / 60_000) * 60_000) ?? -Infinity, v));
  }
  expect(metric.length).toBe(minutes.size);
  expect(metric.some((s) => s.ts < H0 + 3_600_000)).toBe(true);
  expect(metric.some((s) => s.ts >= H0 + 3_600_000)).toBe(true);
  for (const s of metric) expect((s.ref as { max: number }).max).toBe(minutes.get(s.ts)!);
});

test("a frame of incompressible series is split into rows under the TOAST threshold", async () => {
  const names = Array.from({ length: 100 }, (_, i) => `noisy.${i}`);
  const ids: number[] = [];
  for (const n of names) ids.push(Number((await db.sql`insert into metric_series (agent_id, name) values (${agent}, ${n}) returning id`)[0]!.id));
  const ts = Float64Array.from({ length: 10 }, (_, k) => H0 + 5 * 3_600_000 + k * STEP);
  const values = Float64Array.from({ length: 1000 }, (_, i) => Math.sin(i * 1.7) * 1e6 + i / 7);
  const w = new CopyWriter().begin();
  encodeMetricBlocks(w, agent, 999, { ts, names, values }, Int32Array.from(ids));
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
  const sizes = await db.sql<{ n: number }[]>`select octet_length(block) as n from metric_blocks where agent_id = ${agent} and batch_id = 999`;
  expect(sizes.length).toBeGreaterThan(1);
  for (const s of sizes) expect(s.n).toBeLessThanOrEqual(BLOCK_TARGET_BYTES);
  const rows = await readBlockRows(db.sql, agent, 999);
  expect(rows.flatMap((r) => r.series).sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
  const byId = new Map(rows.flatMap((r) => r.series.map((id, j) => [id, r.vals.slice(j * 10, j * 10 + 10)] as const)));
  ids.forEach((id, j) => expect(byId.get(id)).toEqual(Array.from(values.subarray(j * 10, j * 10 + 10))));
});

test("a row holds one layout: both or neither is refused", async () => {
  const t = new Date(H0);
  await expect(db.sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals, block) values (${agent}, 5000, ${t}, ${t}, '{0}', '{1}', '{1}', '\\x01')`).rejects.toMatchObject({ code: "23514" });
  await expect(db.sql`insert into metric_blocks (agent_id, batch_id, t0, t1) values (${agent}, 5001, ${t}, ${t})`).rejects.toMatchObject({ code: "23514" });
});
