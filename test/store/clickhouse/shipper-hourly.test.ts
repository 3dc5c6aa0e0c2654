/**
 * The shipper's time bound (migration 540) under hourly `logs` leaves: the ingest writer records
 * each logs batch's time range, the shipper reads each group of batches with it (PostgreSQL
 * prunes the other leaves, shown by EXPLAIN), lines spread over many hours and days reach
 * ClickHouse exactly once, and batches written before the migration (no range) still ship.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Batch, type PendingFrame } from "../../../src/batch/batch.ts";
import { FrameKind, type LogsBody } from "../../../src/ingest/frame/frame.ts";
import { createClickhouse, type Clickhouse } from "../../../src/store/clickhouse/client.ts";
import { ensureSchema } from "../../../src/store/clickhouse/schema.ts";
import { ensureShipIndexes, logLinesParams, logLinesSql, logReadGroups, Shipper, type LogBatch } from "../../../src/store/clickhouse/shipper.ts";
import { ensurePartitions, listPartitions, plannedRelations } from "../../../src/store/postgres/partitions.ts";
import { createPgWriter, logBounds } from "../../../src/store/postgres/writer.ts";
import { requireComponent } from "../../support/ci.ts";
import { hasClickhouse, startTestClickhouse, type TestClickhouse } from "../../support/clickhouse.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The day with hourly leaves (partition upkeep runs at 23:30 of it). */
const D0 = Date.UTC(2026, 10, 28);
const NOW = D0 + 23.5 * HOUR;

test("logBounds: whole milliseconds around the lines; no lines is an empty range; unusable times give none", () => {
  expect(logBounds(Float64Array.of(D0 + 5.4, D0 - 2.6, D0 + 1))).toEqual([new Date(D0 - 3).toISOString(), new Date(D0 + 6).toISOString()]);
  expect(logBounds(new Float64Array(0))).toEqual(["infinity", "-infinity"]);
  expect(logBounds(Float64Array.of(D0, NaN))).toBeUndefined();
  expect(logBounds(Float64Array.of(D0, 1e16))).toBeUndefined(); // past year 9999
  expect(logBounds(Float64Array.of(-1e15, D0))).toBeUndefined(); // before year 1
});

test("logReadGroups: ranges within an hour of each other share a read, far ones get their own, no range reads unbounded, empty reads nothing", () => {
  const b = (id: number, lo: number | null, hi: number | null, empty = false): LogBatch => ({
    agent_id: "1", batch_id: String(id), ts_min: lo === null ? null : new Date(lo), ts_max: hi === null ? null : new Date(hi), empty,
  });
  const groups = logReadGroups([
    b(1, D0 + 2 * HOUR, D0 + 2.5 * HOUR),
    b(2, D0 - 3 * DAY, D0 - 3 * DAY + 10), // a host sending days late
    b(3, null, null), // written before migration 540
    b(4, D0 + 3.2 * HOUR, D0 + 3.3 * HOUR), // 0.7 h after batch 1 ends: same read
    b(5, null, null, true), // no lines
    b(6, D0 + 5 * HOUR, D0 + 5 * HOUR), // 1.7 h after: a read of its own
  ]);
  expect(groups).toEqual([
    { agents: ["1"], ids: ["3"] },
    { agents: ["1"], ids: ["2"], range: [new Date(D0 - 3 * DAY), new Date(D0 - 3 * DAY + 10)] },
    { agents: ["1", "1"], ids: ["1", "4"], range: [new Date(D0 + 2 * HOUR), new Date(D0 + 3.3 * HOUR)] },
    { agents: ["1"], ids: ["6"], range: [new Date(D0 + 5 * HOUR), new Date(D0 + 5 * HOUR)] },
  ]);
});

const run = requireComponent(hasClickhouse, "clickhouse-server (Debian package) or CLICKHOUSE_URL");

interface Line {
  agent: number;
  batch: number;
  ts: number;
  message: string;
}

/** A logs frame holding `lines` (all of one agent and batch), as the ingest decoder hands it over. */
function logsFrame(agentId: number, batchId: number, lines: Line[]): PendingFrame {
  const body: LogsBody = {
    ts: Float64Array.from(lines.map((l) => l.ts)),
    severity: Uint8Array.from(lines.map((_, i) => i % 8)),
    sources: ["sshd", "kernel"],
    sourceIndex: Uint16Array.from(lines.map((_, i) => i % 2)),
    messages: lines.map((l) => l.message),
  };
  return {
    agentId, batchId, seq: batchId, createdMs: NOW, data: { kind: FrameKind.Logs, body } as PendingFrame["data"], bytes: 100 * lines.length,
    rows: lines.length, receivedAt: 0, transport: "test", accept: () => {}, reject: () => {},
  };
}

function batchOf(frames: PendingFrame[]): Batch {
  const b = new Batch(0);
  for (const f of frames) b.add(f);
  return b;
}

describe.if(run)("clickhouse shipper with hourly logs leaves", () => {
  let db: TestDb;
  let server: TestClickhouse;
  let ch: Clickhouse;

  beforeAll(async () => {
    db = await testDatabase();
    server = await startTestClickhouse();
    ch = createClickhouse({ url: `${server.url}/${server.database}` });
    await ensureSchema(ch);
    // as partition upkeep leaves them: days before D0 one table each, D0 and two days ahead in hourly leaves
    await ensurePartitions(db.sql, { table: "logs", column: "ts", retentionDays: 3, hourly: true }, NOW);
    await ensureShipIndexes(db.sql);
  }, 60_000);

  afterAll(async () => {
    await ch?.close();
    await server?.close();
    await db?.drop();
  }, 30_000);

  /** Every line in ClickHouse of the given agents, once per key, and the physical row count. */
  async function shipped(agents: number[]): Promise<{ lines: string[]; raw: number }> {
    const where = `agent_id in (${agents.map(Number).join(",")})`;
    const rows = await ch.rows<{ agent_id: string; batch_id: string; ts: string; message: string }>(
      `select agent_id, batch_id, ts, any(message) as message from ${ch.database}.logs where ${where} group by agent_id, batch_id, ts, n`);
    const [raw] = await ch.rows<{ c: string }>(`select count() as c from ${ch.database}.logs where ${where}`);
    return { lines: rows.map((r) => `${r.agent_id}/${r.batch_id}/${Number(r.ts)}/${r.message}`).sort(), raw: Number(raw!.c) };
  }

  // ClickHouse keeps whole milliseconds (the shipper floors the stored microseconds)
  const key = (l: Line) => `${l.agent}/${l.batch}/${Math.floor(l.ts)}/${l.message}`;

  async function shipAll(s: Shipper): Promise<number> {
    let steps = 0;
    while ((await s.step()).batches > 0) steps++;
    return steps;
  }

  test("lines spread over many hours (and days, and a day without a partition) ship exactly once; each read is pruned to its leaves", async () => {
    expect((await listPartitions(db.sql, `logs_p${new Date(D0).toISOString().slice(0, 10).replace(/-/g, "")}`)).length).toBe(24);
    const write = createPgWriter({ sql: db.sql });
    const all: Line[] = [];
    const frame = (agent: number, batch: number, times: number[]) => {
      const lines = times.map((ts, i) => ({ agent, batch, ts, message: i % 3 === 2 ? "same line" : `line ${i} of ${agent}/${batch} at ${ts}` }));
      all.push(...lines);
      return logsFrame(agent, batch, lines);
    };
    // live lines of three hosts across D0's hours, fractional milliseconds included; one batch
    // spanning three hours; a host sending two days late; lines 10 days ahead (the default
    // partition); a frame without lines
    const spread = (from: number, n: number, stepMs: number) => Array.from({ length: n }, (_, i) => from + i * stepMs + 0.37);
    expect(await write(batchOf([
      frame(501, 1, spread(D0 + 1 * HOUR, 30, 60_000)),
      frame(502, 1, spread(D0 + 1.5 * HOUR, 20, 30_000)),
      frame(501, 2, spread(D0 + 2.9 * HOUR, 40, 270_000)), // 02:54 to 05:49
      logsFrame(503, 9, []),
    ]))).toEqual(["ok", "ok", "ok", "ok"]);
    expect(await write(batchOf([
      frame(503, 1, spread(D0 + 9 * HOUR, 10, 1000)),
      frame(502, 2, spread(D0 - 2 * DAY + 7 * HOUR, 15, 1000)),
      frame(501, 3, spread(D0 + 10 * DAY, 5, 1000)),
      frame(503, 2, spread(D0 + 22 * HOUR, 25, 100_000)),
    ]))).toEqual(["ok", "ok", "ok", "ok"]);
    // the bounds recorded for the batch spanning three hours, and the empty one
    const [b2] = await db.sql<{ lo: Date; hi: Date }[]>`select ts_min as lo, ts_max as hi from ingest_batches where agent_id = 501 and batch_id = 2`;
    expect([b2!.lo.getTime(), b2!.hi.getTime()]).toEqual([D0 + 2.9 * HOUR, D0 + 2.9 * HOUR + 39 * 270_000 + 1]);
    const [empty] = await db.sql<{ e: boolean }[]>`select ts_min > ts_max as e from ingest_batches where agent_id = 503 and batch_id = 9`;
    expect(empty!.e).toBe(true);

    // EXPLAIN of the shipper's read of that batch: only the leaves of 02:00 to 05:00 are scanned
    const g = logReadGroups([{ agent_id: "501", batch_id: "2", ts_min: b2!.lo, ts_max: b2!.hi, empty: false }])[0]!;
    const scanned = (bounded: boolean) =>
      plannedRelations(db.sql, logLinesSql(bounded), logLinesParams(bounded ? g : { agents: g.agents, ids: g.ids }), "logs");
    const day = new Date(D0).toISOString().slice(0, 10).replace(/-/g, "");
    expect(await scanned(true)).toEqual(["02", "03", "04", "05"].map((h) => `logs_p${day}_h${h}`));
    expect((await scanned(false)).length).toBeGreaterThan(24 * 3); // every leaf of D0 and the days ahead, the days before, the default

    // shipped in small steps and slices: every line once, not even a physical copy
    const s = new Shipper({ sql: db.sql, ch, maxBatches: 3, cursorRows: 1 });
    expect(await shipAll(s)).toBe(3);
    const agents = [501, 502, 503];
    const want = all.map(key).sort();
    expect(want.length).toBe(145);
    expect(await shipped(agents)).toEqual({ lines: want, raw: want.length });

    // a lost cursor update: shipped again in other groups (one step), still once as queries see it
    await db.sql`update clickhouse_cursor set xid = '0', agent_id = 0, batch_id = 0`;
    const re = new Shipper({ sql: db.sql, ch, maxBatches: 100 });
    expect(await re.step()).toMatchObject({ batches: 8, lines: want.length });
    expect((await re.step()).batches).toBe(0);
    expect((await shipped(agents)).lines).toEqual(want);
  }, 60_000);

  test("batches written before migration 540 (no time range) ship beside bounded ones, once", async () => {
    const lines: Line[] = [];
    // an old batch: rows written as before the migration, across four hours of D0's leaves
    await db.sql.begin(async (tx) => {
      await tx`insert into ingest_batches (agent_id, batch_id, kind) values (${601}, ${1}, ${FrameKind.Logs})`;
      for (let h = 0; h < 4; h++) {
        const l = { agent: 601, batch: 1, ts: D0 + (6 + 5 * h) * HOUR - 1, message: `old line ${h}` };
        lines.push(l);
        await tx`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${l.agent}, ${l.batch}, ${new Date(l.ts)}, ${6}, ${"cron"}, ${l.message})`;
      }
    });
    const [old] = await db.sql<{ lo: Date | null }[]>`select ts_min as lo from ingest_batches where agent_id = 601`;
    expect(old!.lo).toBeNull();
    // and a new one in the same step
    const fresh = Array.from({ length: 6 }, (_, i) => ({ agent: 602, batch: 1, ts: D0 + 12 * HOUR + i * 1000, message: `new line ${i}` }));
    lines.push(...fresh);
    expect(await createPgWriter({ sql: db.sql })(batchOf([logsFrame(602, 1, fresh)]))).toEqual(["ok"]);
    const r = await new Shipper({ sql: db.sql, ch, maxBatches: 10 }).step();
    expect(r).toMatchObject({ batches: 2, lines: 10, leader: true });
    expect(await shipped([601, 602])).toEqual({ lines: lines.map(key).sort(), raw: 10 });
  }, 60_000);
});
