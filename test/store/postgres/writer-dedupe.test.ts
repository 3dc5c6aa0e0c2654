/**
 * The writer encodes a batch's metric blocks before its transaction and cuts the rows of frames
 * found duplicate inside it out of the COPY stream: a batch mixing new frames, a frame stored
 * by an earlier batch and a second copy of a frame of the same batch stores each new frame's
 * samples exactly once, bit for bit, and answers ok/dup per frame.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Batch, type PendingFrame } from "../../../src/batch/batch.ts";
import { FrameKind, type MetricsBody } from "../../../src/ingest/frame/frame.ts";
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

function batchOf(frames: PendingFrame[]): Batch {
  const b = new Batch(0);
  for (const f of frames) b.add(f);
  return b;
}

test("new frames around duplicates (stored before, repeated in the batch) are stored once each, exactly", async () => {
  const [a] = await db.sql`insert into agents (hostname, public_key) values ('dedupe', ${Buffer.alloc(32, 9)}) returning id`;
  const agent = Number(a!.id);
  const write = createPgWriter({ sql: db.sql });
  expect(await write(batchOf([frame(agent, 2)]))).toEqual(["ok"]);
  // 1 new, 2 stored before, 3 new, 3 again, 4 new, 2 again
  const statuses = await write(batchOf([frame(agent, 1), frame(agent, 2), frame(agent, 3), frame(agent, 3), frame(agent, 4), frame(agent, 2)]));
  expect(statuses).toEqual(["ok", "dup", "ok", "dup", "ok", "dup"]);
  // a batch of duplicates only writes no rows
  expect(await write(batchOf([frame(agent, 1), frame(agent, 4)]))).toEqual(["dup", "dup"]);
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
