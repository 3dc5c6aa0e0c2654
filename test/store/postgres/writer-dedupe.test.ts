/**
 * A batch's metrics frames are one statement (the dedupe record and the blocks together), its
 * other frames one transaction. A batch mixing new frames, a frame stored by an earlier batch and
 * a second copy of a frame of the same batch stores each new frame's samples exactly once, bit
 * for bit, and answers ok/dup per frame, alone or beside other kinds; the statement stores the
 * rows a COPY of the same frames stores; and when the rest of a batch fails after its metrics
 * committed, the retry neither stores nor reports them twice.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Batch, type FrameStatus, type PendingFrame } from "../../../src/batch/batch.ts";
import { FrameKind, type FrameError, type LogsBody, type MetricsBody } from "../../../src/ingest/frame/frame.ts";
import { readBlockRows } from "../../../src/store/postgres/metric-blocks.ts";
import { copyInto, createPgWriter, encodeMetricBlocks, isDataRefusal, METRIC_BLOCKS_COPY } from "../../../src/store/postgres/writer.ts";
import { CopyWriter } from "../../../src/store/postgres/copy-binary.ts";
import { SeriesCache } from "../../../src/store/postgres/series.ts";
import { Batcher } from "../../../src/batch/batcher.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(2);
});
afterAll(async () => {
  await db?.drop();
});

const T0 = Date.UTC(2026, 5, 1, 12);
const NAMES = Array.from({ length: 40 }, (_, i) => `m${i}`);

/** A metrics frame of batch `batchId`: 40 series x 10 timestamps, values that depend on the batch. */
function frame(agentId: number, batchId: number): PendingFrame {
  const ts = Float64Array.from({ length: 10 }, (_, k) => T0 + (batchId * 10 + k) * 10_000);
  const values = Float64Array.from({ length: NAMES.length * 10 }, (_, i) => (i % 3 === 0 ? batchId * 1000 + i : Math.sin(batchId + i) * 1e3));
  const body: MetricsBody = { ts, names: NAMES, values };
  return {
    agentId, batchId, seq: batchId, createdMs: T0, data: { kind: FrameKind.Metrics, body } as PendingFrame["data"], bytes: 1000, rows: 4,
    receivedAt: 0, transport: "test", accept: () => {}, reject: () => {},
  };
}

/** A logs frame: in a batch, it sends the metrics frames beside it down the transaction path. */
function logFrame(agentId: number, batchId: number): PendingFrame {
  const body: LogsBody = { ts: Float64Array.of(T0), severity: Uint8Array.of(6), sources: ["test"], sourceIndex: Uint16Array.of(0), messages: ["hello"] };
  return {
    agentId, batchId, seq: batchId, createdMs: T0, data: { kind: FrameKind.Logs, body } as PendingFrame["data"], bytes: 100, rows: 1,
    receivedAt: 0, transport: "test", accept: () => {}, reject: () => {},
  };
}

function batchOf(frames: PendingFrame[]): Batch {
  const b = new Batch(0);
  for (const f of frames) b.add(f);
  return b;
}

for (const path of ["alone", "beside a logs frame"] as const) test(`metrics frames ${path}: new frames around duplicates (stored before, repeated in the batch) are stored once each, exactly`, async () => {
  const [a] = await db.sql`insert into agents (hostname, public_key) values (${`dedupe-${path}`}, ${Buffer.alloc(32, path === "alone" ? 9 : 8)}) returning id`;
  const agent = Number(a!.id);
  const write = createPgWriter({ sql: db.sql });
  // a logs frame rides along (batch ids 100+), first in the batch: it commits in its own transaction
  const extra = (n: number) => (path === "alone" ? [] : [logFrame(agent, 100 + n)]);
  const tail = (n: number): FrameStatus[] => (path === "alone" ? [] : (["ok"] as FrameStatus[])).slice(0, n);
  expect(await write(batchOf([...extra(0), frame(agent, 2)]))).toEqual([...tail(1), "ok"]);
  // 1 new, 2 stored before, 3 new, 3 again, 4 new, 2 again
  const statuses = await write(batchOf([...extra(1), frame(agent, 1), frame(agent, 2), frame(agent, 3), frame(agent, 3), frame(agent, 4), frame(agent, 2)]));
  expect(statuses).toEqual([...tail(1), "ok", "dup", "ok", "dup", "ok", "dup"]);
  // a batch of duplicates only writes no rows
  expect(await write(batchOf([...extra(2), frame(agent, 1), frame(agent, 4)]))).toEqual([...tail(1), "dup", "dup"]);
  const [c] = await db.sql`select count(*)::int as n from ingest_batches where agent_id = ${agent}`;
  expect(c!.n).toBe(path === "alone" ? 4 : 7);
  const rows = await readBlockRows(db.sql, agent);
  const byBatch = new Map<number, Map<number, number[]>>();
  for (const r of rows) {
    const m = byBatch.get(r.batchId) ?? new Map<number, number[]>();
    byBatch.set(r.batchId, m);
    r.series.forEach((sid, j) => {
      expect(m.has(sid)).toBe(false); // no series twice for the same batch
      m.set(sid, r.vals.slice(j * r.tsOff.length, (j + 1) * r.tsOff.length));
    });
  }
  expect([...byBatch.keys()].sort()).toEqual([1, 2, 3, 4]);
  for (const [batchId, m] of byBatch) {
    const want = (frame(agent, batchId).data.body as MetricsBody).values;
    const sids = [...m.keys()].sort((x, y) => x - y);
    expect(sids.length).toBe(NAMES.length);
    const got = Float64Array.from(sids.flatMap((sid) => m.get(sid)!));
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  }
}, 60_000);

test("the statement stores the rows a COPY of the same frames stores: times to the microsecond, samples bit for bit", async () => {
  const ids: number[] = [];
  for (const [k, name] of ["same-statement", "same-copy"].entries()) {
    const [a] = await db.sql`insert into agents (hostname, public_key) values (${name}, ${Buffer.alloc(32, 6 - k)}) returning id`;
    ids.push(Number(a!.id));
  }
  const batches = [5, 6, 7];
  const series = new SeriesCache();
  const write = createPgWriter({ sql: db.sql, series });
  expect(await write(batchOf(batches.map((b) => frame(ids[0]!, b))))).toEqual(["ok", "ok", "ok"]);
  // the same frames of the second agent by COPY, as the benches' ceiling and the tests' fixtures write them
  await series.resolve(db.sql, [{ agentId: ids[1]!, names: NAMES }]);
  const w = new CopyWriter().begin();
  for (const b of batches) encodeMetricBlocks(w, ids[1]!, b, frame(ids[1]!, b).data.body as MetricsBody, series.ids(ids[1]!, NAMES)!);
  await db.sql.begin((tx) => copyInto(tx, METRIC_BLOCKS_COPY, w.end()));
  // series ids differ between the two agents, so blocks are compared by size and decoded
  const rowsOf = async (agent: number) =>
    (await db.sql`select batch_id::int as b, (extract(epoch from t0) * 1e6)::int8::text as t0us, (extract(epoch from t1) * 1e6)::int8::text as t1us, length(block) as len
                  from metric_blocks where agent_id = ${agent} order by batch_id, t0, length(block)`).map((r) => ({ ...r }));
  const one = await rowsOf(ids[0]!);
  expect(one.length).toBeGreaterThanOrEqual(3);
  expect(await rowsOf(ids[1]!)).toEqual(one);
  expect(one[0]!.t0us).toBe(String((T0 + 50 * 10_000) * 1000));
  expect(one[0]!.t1us).toBe(String((T0 + 59 * 10_000) * 1000));
  for (const b of batches) {
    const [x, y] = await Promise.all(ids.map((agent) => readBlockRows(db.sql, agent, b)));
    expect(y!.map((r) => [r.t0, r.tsOff, r.vals])).toEqual(x!.map((r) => [r.t0, r.tsOff, r.vals]));
    expect(Buffer.from(Float64Array.from(x!.flatMap((r) => r.vals)).buffer).equals(Buffer.from((frame(ids[0]!, b).data.body as MetricsBody).values.buffer))).toBe(true);
  }
}, 60_000);

test("the rest of a batch refused after its metrics committed: the retries store and report the metrics once, and refuse only the frame at fault", async () => {
  const [a] = await db.sql`insert into agents (hostname, public_key) values ('retry', ${Buffer.alloc(32, 4)}) returning id`;
  const agent = Number(a!.id);
  const latest: number[] = [];
  const write = createPgWriter({ sql: db.sql, latest: { metrics: (_agent, body) => latest.push(body.ts[0]!) } });
  let attempts = 0;
  const batcher = new Batcher({
    write: (b) => (attempts++, write(b)), maxRows: 1000, maxBytes: 1 << 20, maxAgeMs: 5, maxPendingBytes: 1 << 24, writers: 1, isRefusal: isDataRefusal,
  });
  // an inventory frame whose time PostgreSQL cannot hold fails the transaction (22008, a refusal)
  const bad: PendingFrame = { ...logFrame(agent, 50), data: { kind: FrameKind.Inventory, body: { os: "x" } } as PendingFrame["data"], createdMs: NaN };
  const outcomes = await Promise.allSettled([frame(agent, 20), frame(agent, 21), bad, frame(agent, 22)].map((f) => batcher.push(f)));
  expect(outcomes.map((x) => (x.status === "fulfilled" ? x.value : (x.reason as FrameError).code))).toEqual(["ok", "ok", "store_rejected", "ok"]);
  expect(attempts).toBeGreaterThan(1); // the batch was split to find the inventory frame
  expect(latest.sort()).toEqual([20, 21, 22].map((b) => (frame(agent, b).data.body as MetricsBody).ts[0]!));
  const [c] = await db.sql`select count(distinct batch_id)::int as batches, count(*)::int as rows from metric_blocks where agent_id = ${agent}`;
  const [n] = await db.sql`select count(*)::int as n from ingest_batches where agent_id = ${agent}`;
  expect(c!.batches).toBe(3);
  expect(n!.n).toBe(3);
  const stored = await readBlockRows(db.sql, agent);
  expect(stored.reduce((k, r) => k + r.series.length, 0)).toBe(3 * NAMES.length); // no series twice
}, 60_000);
