/**
 * Compaction (src/store/postgres/compaction.ts), run by the rollup job: a closed hour's raw rows
 * become rows holding the whole hour per series, every stored sample reads back exactly as before
 * (none lost, none added), the table shrinks, frames that cross an hour or hold a timestamp twice
 * stay as they were, rows of the pre-495 layout are converted, and late data is compacted again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { CopyWriter } from "../../../src/store/postgres/copy-binary.ts";
import { copyInto, encodeMetricBlocks, METRIC_BLOCKS_COPY } from "../../../src/store/postgres/writer.ts";
import { rollupStep } from "../../../src/store/postgres/rollups.ts";
import { readRawSamples } from "../../../src/store/postgres/metric-blocks.ts";
import { COMPACTED_BATCH, COMPACTED_TARGET_BYTES } from "../../../src/store/postgres/compaction.ts";
import { readRollups } from "../../../src/store/postgres/rollup-blocks.ts";
import { BLOCK_VERSION_ZSTD, decodeBlock } from "../../../src/store/codec/block.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";

const HOUR = 3_600_000;
const STEP = 10_000;
const NAMES = ["cpu.util", "mem.used", "net.rx.bytes", "disk.free", "noise", "late.series"];
// three closed hours: H0, H1, H2 (H2 ended two hours ago)
const H2 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
const H1 = H2 - HOUR;
const H0 = H1 - HOUR;

let db: TestDb;
let agent: number;
let ids: number[];
let batch = 100;

/** Deterministic shapes: a gauge, a slow gauge, a counter, a constant, full-precision noise, a series that starts mid-hour. */
function value(s: number, t: number): number {
  const i = t / STEP;
  switch (s) {
    case 0: return Math.round(((i * 37) % 1000) / 10) / 10;
    case 1: return 4_000_000 + (i % 50) * 4096;
    case 2: return i * 1500 + (i % 7);
    case 3: return 52.5;
    case 4: return Math.sin(i * 1.37) * Math.E * 1e3;
    default: return (t - H0) % HOUR < HOUR / 2 ? NaN : i % 13;
  }
}

async function writeFrames(frames: Array<{ ts: number[]; batch?: number; v?: (s: number, t: number) => number }>): Promise<void> {
  const w = new CopyWriter().begin();
  for (const f of frames) {
    const values = new Float64Array(NAMES.length * f.ts.length);
    for (let s = 0; s < NAMES.length; s++) for (let k = 0; k < f.ts.length; k++) values[s * f.ts.length + k] = (f.v ?? value)(s, f.ts[k]!);
    encodeMetricBlocks(w, agent, f.batch ?? ++batch, { ts: Float64Array.from(f.ts), names: NAMES, values }, Int32Array.from(ids));
  }
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
}

/** Every stored sample of the agent as sorted "series time value" lines (duplicates kept). */
async function samples(): Promise<string[]> {
  const out: string[] = [];
  await readRawSamples(db.sql, agent, null, H0 - HOUR, H2 + 2 * HOUR, (sid, t, v) => out.push(`${sid} ${t} ${Object.is(v, -0) ? "-0" : v}`));
  return out.sort();
}

async function rowStats(): Promise<{ rows: number; compacted: number; bytes: number }> {
  const [r] = await db.sql`
    select count(*)::int as rows, count(*) filter (where batch_id = ${COMPACTED_BATCH})::int as compacted,
           coalesce(sum(pg_column_size(b.*)), 0)::int as bytes
    from metric_blocks b where agent_id = ${agent}`;
  return { rows: r!.rows, compacted: r!.compacted, bytes: r!.bytes };
}

async function drain(): Promise<number> {
  let hours = 0;
  for (let i = 0; i < 20; i++) {
    const r = await rollupStep({ sql: db.sql, rawDays: 30 });
    hours += r.compacted?.hours ?? 0;
    if (r.pairs === 0) return hours;
  }
  throw new Error("rollup job did not finish in 20 steps");
}

beforeAll(async () => {
  db = await testDatabase();
  const [a] = await db.sql`insert into agents (hostname, public_key) values ('compaction-host', ${Buffer.alloc(32, 9)}) returning id`;
  agent = Number(a!.id);
  ids = (await db.sql`insert into metric_series (agent_id, name) select ${agent}, unnest(${NAMES}::text[]) returning id`).map((r) => Number(r.id));
}, 60_000);

afterAll(async () => {
  await db?.drop();
});

test("a closed hour's frames become hour-long rows; every sample reads back the same; the table shrinks; the job then rests", async () => {
  // frames of 10 stamps at 10 s over H0 and H1; the frame at the end of H0 crosses into H1
  const frames = [];
  for (let t = H0 + 5 * STEP; t < H2 - 5 * STEP; t += 10 * STEP) frames.push({ ts: Array.from({ length: 10 }, (_, k) => t + k * STEP) });
  await writeFrames(frames);
  // a timestamp sent twice under two batch ids (a different value): both must stay
  await writeFrames([{ ts: [H1 + 20 * STEP, H1 + 21 * STEP], v: (s, t) => value(s, t) + 1 }]);
  const before = await samples();
  const rowsBefore = await rowStats();
  expect(rowsBefore.compacted).toBe(0);

  expect(await drain()).toBe(2);
  const after = await rowStats();
  expect(await samples()).toEqual(before);
  expect(after.compacted).toBeGreaterThan(0);
  expect(after.rows).toBeLessThan(rowsBefore.rows / 5);
  console.log(`compaction: ${rowsBefore.rows} rows, ${rowsBefore.bytes} bytes -> ${after.rows} rows (${after.compacted} compacted), ${after.bytes} bytes`);
  expect(after.bytes).toBeLessThan(rowsBefore.bytes * 0.7); // most of what is left is the full-precision noise series
  // what stayed raw: the frame across H0/H1, and the second frame holding the same timestamps
  // (the first was compacted; both values read back, above)
  const raw = await db.sql`select batch_id::int as b, t0, t1 from metric_blocks where agent_id = ${agent} and batch_id <> ${COMPACTED_BATCH} order by t0`;
  expect(raw.length).toBe(2);
  expect(raw.some((r) => (r.t0 as Date).getTime() < H1 && (r.t1 as Date).getTime() >= H1)).toBe(true);
  expect(raw.some((r) => r.b === batch && (r.t0 as Date).getTime() === H1 + 20 * STEP)).toBe(true);
  // compacted rows stay inside their hour, one row an hour for this host's series (under
  // COMPACTED_TARGET_BYTES), kept out of line by PostgreSQL as written: not compressed a second time
  const rows = await db.sql`select t0, t1, octet_length(block) as n, block, series, pg_column_compression(block) as pgc from metric_blocks where agent_id = ${agent} and batch_id = ${COMPACTED_BATCH}`;
  expect(rows.length).toBe(2);
  for (const r of rows) {
    // a row holding every series of its hour lists none: readers look inside, as for ingest's rows
    expect(r.series).toBeNull();
    expect([...decodeBlock(r.block as Uint8Array).sids]).toEqual([...ids].sort((a, b) => a - b));
    const t0 = (r.t0 as Date).getTime(), t1 = (r.t1 as Date).getTime();
    expect(Math.floor(t0 / HOUR)).toBe(Math.floor(t1 / HOUR));
    expect(r.n).toBeGreaterThan(2000); // above the TOAST threshold
    expect(r.n).toBeLessThanOrEqual(COMPACTED_TARGET_BYTES);
    expect(r.pgc).toBeNull();
  }
  const storage = await db.sql`select c.relname::text as t, a.attstorage::text as s from pg_attribute a join pg_class c on c.oid = a.attrelid
    where a.attname = 'block' and c.relkind in ('r', 'p') and (c.relname = 'metric_blocks' or pg_partition_root(c.oid) = 'metric_blocks'::regclass)`;
  expect(storage.length).toBeGreaterThan(1);
  for (const r of storage) expect(`${r.t} ${r.s}`).toBe(`${r.t} e`);
  // an hour's rows are zstd-wrapped (block version 4) where that is smaller
  const wrapped = rows.filter((r) => (r.block as Uint8Array)[0] === BLOCK_VERSION_ZSTD).length;
  expect(wrapped).toBeGreaterThan(0);
  // a read of one series gives exactly that series' samples
  const one: string[] = [];
  await readRawSamples(db.sql, agent, [ids[4]!], H0 - HOUR, H2 + 2 * HOUR, (sid, t, v) => one.push(`${sid} ${t} ${v}`));
  expect(one.sort()).toEqual(before.filter((l) => l.startsWith(`${ids[4]} `)));
  // compacted rows do not mark their hour dirty again: nothing left to do
  expect((await db.sql`select count(*)::int as n from metric_rollup_dirty where agent_id = ${agent}`)[0]!.n).toBe(0);
  // the rollups equal raw: count of the minute tier is every sample of the compacted hours, once
  const m = { n: 0 };
  await readRollups(db.sql, "1m", agent, null, H0, H2, (_s, _t, _mn, _mx, _sm, count) => (m.n += count));
  const inHours = before.filter((l) => {
    const t = Number(l.split(" ")[1]);
    return t >= H0 && t < H2;
  }).length;
  expect(m.n).toBe(inHours);
}, 60_000);

test("an hour too large for one row takes several, each listing its series; a read of one series gets exactly its samples", async () => {
  // 40 series of full-precision noise (~2.9 kB an hour each): more than COMPACTED_TARGET_BYTES together
  const [a] = await db.sql`insert into agents (hostname, public_key) values ('compaction-wide', ${Buffer.alloc(32, 10)}) returning id`;
  const wide = Number(a!.id);
  const names = Array.from({ length: 40 }, (_, j) => `noise.${j}`);
  const sids = (await db.sql`insert into metric_series (agent_id, name) select ${wide}, unnest(${names}::text[]) returning id`).map((r) => Number(r.id));
  const noise = (j: number, t: number) => Math.sin((t / STEP) * (1.1 + j / 7)) * 1e4 + j;
  const w = new CopyWriter().begin();
  for (let t = H0; t < H1; t += 10 * STEP) {
    const ts = Array.from({ length: 10 }, (_, k) => t + k * STEP);
    const values = new Float64Array(names.length * 10);
    for (let j = 0; j < names.length; j++) for (let k = 0; k < 10; k++) values[j * 10 + k] = noise(j, ts[k]!);
    encodeMetricBlocks(w, wide, ++batch, { ts: Float64Array.from(ts), names, values }, Int32Array.from(sids));
  }
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
  await drain();
  const rows = await db.sql`select block, series from metric_blocks where agent_id = ${wide} and batch_id = ${COMPACTED_BATCH}`;
  expect(rows.length).toBeGreaterThan(1);
  const listed: number[] = [];
  for (const r of rows) {
    expect(r.series).not.toBeNull();
    expect([...decodeBlock(r.block as Uint8Array).sids]).toEqual(r.series as number[]);
    expect((r.block as Uint8Array).length).toBeLessThanOrEqual(COMPACTED_TARGET_BYTES);
    listed.push(...(r.series as number[]));
  }
  expect(listed.sort((x, y) => x - y)).toEqual([...sids].sort((x, y) => x - y));
  expect((await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${wide} and batch_id <> ${COMPACTED_BATCH}`)[0]!.n).toBe(0);
  const got: string[] = [];
  await readRawSamples(db.sql, wide, [sids[17]!], H0, H1, (sid, t, v) => got.push(`${sid} ${t} ${v}`));
  const want = Array.from({ length: 360 }, (_, i) => `${sids[17]} ${H0 + i * STEP} ${noise(17, H0 + i * STEP)}`);
  expect(got.sort()).toEqual(want.sort());
});

test("late data for a compacted hour is read at once and compacted with it on the next run", async () => {
  const late = [H1 + 100 * STEP + 3, H1 + 101 * STEP + 3]; // between the regular stamps
  await writeFrames([{ ts: late }]);
  const before = await samples();
  expect(await drain()).toBe(1);
  expect(await samples()).toEqual(before);
  const raw = await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agent} and batch_id <> ${COMPACTED_BATCH} and t0 >= ${new Date(H1 + 99 * STEP)} and t0 < ${new Date(H1 + 102 * STEP)}`;
  expect(raw[0]!.n).toBe(0);
}, 60_000);

test("rows of the pre-495 layout are converted, value for value", async () => {
  // float8[] rows as stored before migration 495, in H2: three frames, one with a missing sample
  for (let f = 0; f < 3; f++) {
    const t0 = H2 + f * 10 * STEP;
    const off = Array.from({ length: 10 }, (_, k) => k * STEP);
    const vals = ids.flatMap((_, s) => off.map((o) => (s === 1 && o === 0 ? NaN : value(s, t0 + o))));
    await db.sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals)
      values (${agent}, ${5000 + f}, ${new Date(t0)}, ${new Date(t0 + 9 * STEP)}, ${off}::int4[], ${ids}::int4[], ${vals.map(String)}::float8[])`;
  }
  const before = await samples();
  expect(await drain()).toBe(1);
  expect(await samples()).toEqual(before);
  const legacy = await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agent} and block is null`;
  expect(legacy[0]!.n).toBe(0);
}, 60_000);

test("with compaction off (the ClickHouse tier on) the rollups still run and the rows stay", async () => {
  const t = H2 + 40 * STEP;
  await writeFrames([{ ts: Array.from({ length: 10 }, (_, k) => t + k * STEP) }, { ts: Array.from({ length: 10 }, (_, k) => t + (10 + k) * STEP) }]);
  const r = await rollupStep({ sql: db.sql, rawDays: 30, compact: false });
  expect(r.pairs).toBe(1);
  expect(r.compacted).toBeUndefined();
  const raw = await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agent} and batch_id <> ${COMPACTED_BATCH} and t0 >= ${new Date(t)}`;
  expect(raw[0]!.n).toBe(2);
}, 60_000);

test("a compaction that fails rolls back alone: the rollups commit, the raw rows stay, the failure is logged", async () => {
  const t = H2 + 100 * STEP;
  await writeFrames([{ ts: Array.from({ length: 10 }, (_, k) => t + k * STEP) }, { ts: Array.from({ length: 10 }, (_, k) => t + (10 + k) * STEP) }]);
  const before = await samples();
  // the test database's owner makes deletes from metric_blocks fail for a while
  await db.sql.unsafe(`create function refuse_delete() returns trigger language plpgsql as $$ begin raise exception 'deletes refused by the test'; end $$`);
  await db.sql.unsafe(`create trigger refuse_delete before delete on metric_blocks for each row execute function refuse_delete()`);
  const logged: string[] = [];
  try {
    const r = await rollupStep({ sql: db.sql, rawDays: 30, log: (s) => logged.push(s) });
    expect(r.pairs).toBe(1);
    expect(r.minuteRows).toBeGreaterThan(0);
    expect(r.compacted).toBeUndefined();
  } finally {
    await db.sql.unsafe(`drop trigger refuse_delete on metric_blocks; drop function refuse_delete()`);
  }
  expect(logged.join("\n")).toContain("metric compaction skipped: deletes refused by the test");
  expect(await samples()).toEqual(before);
  let minutes = 0;
  await readRollups(db.sql, "1m", agent, null, t, t + HOUR, () => minutes++);
  expect(minutes).toBeGreaterThan(0);
  const raw = await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agent} and batch_id <> ${COMPACTED_BATCH} and t0 >= ${new Date(t)}`;
  expect(raw[0]!.n).toBe(2);
}, 60_000);
