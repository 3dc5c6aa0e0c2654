/**
 * The writer's two paths store the same rows. A batch of metrics frames only is one statement
 * (dedupe record and blocks together); any other batch is a transaction that encodes the blocks
 * before it begins and cuts the rows of frames found duplicate inside it out of the COPY stream.
 * Either way, a batch mixing new frames, a frame stored by an earlier batch and a second copy of
 * a frame of the same batch stores each new frame's samples exactly once, bit for bit, and
 * answers ok/dup per frame.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Batch, type FrameStatus, type PendingFrame } from "../../../src/batch/batch.ts";
import { FrameKind, type LogsBody, type MetricsBody } from "../../../src/ingest/frame/frame.ts";
import { readBlockRows } from "../../../src/store/postgres/metric-blocks.ts";
import { createPgWriter } from "../../../src/store/postgres/writer.ts";
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

for (const path of ["one statement", "transaction"] as const) test(`${path}: new frames around duplicates (stored before, repeated in the batch) are stored once each, exactly`, async () => {
  const [a] = await db.sql`insert into agents (hostname, public_key) values (${`dedupe-${path}`}, ${Buffer.alloc(32, path === "transaction" ? 8 : 9)}) returning id`;
  const agent = Number(a!.id);
  const write = createPgWriter({ sql: db.sql });
  // the transaction path: a logs frame rides along (batch ids 100+), answered first
  const extra = (n: number) => (path === "transaction" ? [logFrame(agent, 100 + n)] : []);
  const tail = (n: number): FrameStatus[] => (path === "transaction" ? (["ok"] as FrameStatus[]) : []).slice(0, n);
  expect(await write(batchOf([...extra(0), frame(agent, 2)]))).toEqual([...tail(1), "ok"]);
  // 1 new, 2 stored before, 3 new, 3 again, 4 new, 2 again
  const statuses = await write(batchOf([...extra(1), frame(agent, 1), frame(agent, 2), frame(agent, 3), frame(agent, 3), frame(agent, 4), frame(agent, 2)]));
  expect(statuses).toEqual([...tail(1), "ok", "dup", "ok", "dup", "ok", "dup"]);
  // a batch of duplicates only writes no rows
  expect(await write(batchOf([...extra(2), frame(agent, 1), frame(agent, 4)]))).toEqual([...tail(1), "dup", "dup"]);
  const [c] = await db.sql`select count(*)::int as n from ingest_batches where agent_id = ${agent}`;
  expect(c!.n).toBe(path === "transaction" ? 7 : 4);
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

test("both paths write the same rows: times to the microsecond, the same block sizes, samples bit for bit", async () => {
  const ids: number[] = [];
  for (const [k, name] of ["same-statement", "same-transaction"].entries()) {
    const [a] = await db.sql`insert into agents (hostname, public_key) values (${name}, ${Buffer.alloc(32, 6 - k)}) returning id`;
    ids.push(Number(a!.id));
  }
  const write = createPgWriter({ sql: db.sql });
  const batches = [5, 6, 7];
  expect(await write(batchOf(batches.map((b) => frame(ids[0]!, b))))).toEqual(["ok", "ok", "ok"]);
  expect(await write(batchOf([...batches.map((b) => frame(ids[1]!, b)), logFrame(ids[1]!, 99)]))).toEqual(["ok", "ok", "ok", "ok"]);
  // series ids differ between the two agents, so the blocks are compared decoded to names
  const rowsOf = async (agent: number) =>
    (await db.sql`select batch_id::int as b, t0, t1, (extract(epoch from t0) * 1e6)::int8::text as t0us, length(block) as len
                  from metric_blocks where agent_id = ${agent} order by batch_id, t0`).map((r) => ({ b: r.b, t0us: r.t0us, t1: String(r.t1), len: r.len }));
  const one = await rowsOf(ids[0]!);
  expect(one.length).toBeGreaterThanOrEqual(3);
  expect(await rowsOf(ids[1]!)).toEqual(one);
  expect(one[0]!.t0us).toBe(String((T0 + 50 * 10_000) * 1000));
  for (const b of batches) {
    const [x, y] = await Promise.all(ids.map((agent) => readBlockRows(db.sql, agent, b)));
    expect(y!.map((r) => [r.t0, r.tsOff, r.vals])).toEqual(x!.map((r) => [r.t0, r.tsOff, r.vals]));
    expect(Buffer.from(Float64Array.from(x!.flatMap((r) => r.vals)).buffer).equals(Buffer.from((frame(ids[0]!, b).data.body as MetricsBody).values.buffer))).toBe(true);
  }
}, 60_000);
