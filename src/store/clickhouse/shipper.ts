/**
 * Feeds ClickHouse from what PostgreSQL committed, never from the ingest path itself, so agent
 * acks never wait for ClickHouse and nothing acknowledged is lost while it is down or slow.
 *
 * The cursor. ingest_batches records, per batch, the id of the transaction that wrote it
 * (migration 300). Transaction ids are handed out when a transaction starts writing, not when it
 * commits: the ingest writer runs several transactions at once, so batch rows with a smaller xid
 * can become visible after rows with a larger one, and a plain `id > cursor` would skip them for
 * good. A step therefore only takes batches whose xid is below the xmin of the current snapshot:
 * every transaction below xmin has ended (committed, and visible to this statement, or aborted),
 * and every new transaction gets an xid above it, so the set of batches below the bound is final.
 * The cursor walks (xid, agent_id, batch_id) in order over that set and cannot skip anything.
 *
 * Exactly once, as queries see it. One step: read the cursor, take up to `maxBatches` batches
 * after it, read their rows, insert them into ClickHouse, then move the cursor, all inside one
 * PostgreSQL transaction that also holds an advisory lock, so only one node ships at a time.
 * A crash or error before the cursor commits means the chunk is shipped again; its rows have the
 * same ReplacingMergeTree keys as the first copies, and the queries read through a GROUP BY over
 * that key, so the copy is never visible (schema.ts, queries.ts). The cursor never moves past a
 * chunk ClickHouse did not confirm.
 *
 * Time-bounded: rows are found by (agent, batch), and `logs` is partitioned by time down to
 * hourly leaves (partitions.ts), where a read without a time bound touches every leaf of every
 * retained day. The ingest writer records each logs batch's time range in ingest_batches
 * (ts_min, ts_max, migration 540); a step reads its log lines in groups of batches whose ranges
 * lie close together (logReadGroups), each with `ts between` the group's range, so PostgreSQL
 * prunes the leaves the lines cannot be in. Batches written before migration 540 have no range
 * and are read as before, unbounded.
 *
 * Bounded: a step covers at most `maxBatches` batches, and their rows are read through a
 * PostgreSQL cursor, `cursorRows` at a time, each slice inserted before the next is read (a
 * partly shipped step that fails is shipped again whole, which the keys make harmless); so
 * memory holds one slice, whatever the frames' sizes. Errors back off up to 30 s.
 */
import type { Sql, TransactionSql } from "postgres";
import { FrameKind } from "../../ingest/frame/frame.ts";
import { Counter, Gauge, Histogram } from "../../metrics/registry.ts";
import type { Clickhouse } from "./client.ts";
import { decodeFloat8ArraySend, writeLogLines, writeMetricSamples, type LogRow, type MetricBlockRow } from "./writer.ts";
import { decodeBlock } from "../codec/block.ts";

const SHIP_LOCK = 0x5e7e300;

export interface ShipperOptions {
  sql: Sql;
  ch: Clickhouse;
  /** Batches (frames) per step. */
  maxBatches?: number;
  /**
   * metric_blocks rows read and inserted at a time (default 2,000: 200,000 samples of typical
   * frames, a few MB); log lines at a time are 40x this. A row holds at most 10 series of one
   * frame, so the frame limits bound a slice in the worst case.
   */
  cursorRows?: number;
  /** Pause when there was nothing to ship. */
  idleMs?: number;
  maxBackoffMs?: number;
  /** The registry's store_write_errors_total, so the family is rendered once. */
  writeErrors?: Counter;
  log?: (s: string) => void;
  /** Runs (and is retried like a step) before the first step: schema creation. */
  prepare?: () => Promise<void>;
}

export interface StepResult {
  batches: number;
  samples: number;
  lines: number;
  /** false when another node holds the shipping lock */
  leader: boolean;
  /** ms spent reading rows from PostgreSQL / encoding and inserting into ClickHouse */
  readMs?: number;
  insertMs?: number;
}

interface CursorRow {
  xid: string;
  agent_id: string;
  batch_id: string;
}

/** A logs batch of a step with the time range of its lines (ingest_batches.ts_min/ts_max). */
export interface LogBatch {
  agent_id: string;
  batch_id: string;
  /** null: no range recorded (written before migration 540): read without a time bound */
  ts_min: Date | null;
  ts_max: Date | null;
  /** recorded without lines (an empty range): nothing to read */
  empty: boolean;
}

/** Batches read by one query; `range` bounds their lines' ts (inclusive), absent for unbounded. */
export interface LogReadGroup {
  agents: string[];
  ids: string[];
  range?: [Date, Date];
}

/**
 * Groups a step's logs batches for reading: the batches with a range, sorted by its start, are
 * merged while the next starts within `gapMs` of the group's end (an hour: a leaf more or less is
 * cheaper than a query more), so lines arriving live make one group and a host sending hours or
 * days late makes its own; batches without a range form one unbounded group; empty ones none.
 */
export function logReadGroups(batches: LogBatch[], gapMs = 3_600_000): LogReadGroup[] {
  const groups: LogReadGroup[] = [];
  const unbounded = batches.filter((b) => !b.empty && (b.ts_min === null || b.ts_max === null));
  if (unbounded.length) groups.push({ agents: unbounded.map((b) => b.agent_id), ids: unbounded.map((b) => b.batch_id) });
  const ranged = batches.filter((b) => !b.empty && b.ts_min !== null && b.ts_max !== null).sort((a, b) => a.ts_min!.getTime() - b.ts_min!.getTime());
  let cur: { agents: string[]; ids: string[]; lo: number; hi: number } | undefined;
  for (const b of ranged) {
    const lo = b.ts_min!.getTime();
    const hi = b.ts_max!.getTime();
    if (cur && lo <= cur.hi + gapMs) {
      cur.agents.push(b.agent_id);
      cur.ids.push(b.batch_id);
      cur.hi = Math.max(cur.hi, hi);
      continue;
    }
    if (cur) groups.push({ agents: cur.agents, ids: cur.ids, range: [new Date(cur.lo), new Date(cur.hi)] });
    cur = { agents: [b.agent_id], ids: [b.batch_id], lo, hi };
  }
  if (cur) groups.push({ agents: cur.agents, ids: cur.ids, range: [new Date(cur.lo), new Date(cur.hi)] });
  return groups;
}

/**
 * The shipper's read of the log lines of batches ($1 agents, $2 batch ids), with `bounded` also
 * between $3 and $4 (timestamptz): one text for the step and for EXPLAIN (tests, bench:logs).
 *
 * n numbers a batch's lines in content order (byte order: fast and locale-free), so a re-shipped
 * line gets the same key whatever order the heap returns it in (rows move when a day's partition
 * is created) and whichever group its batch is read in; identical lines are interchangeable.
 * This order is part of the dedupe key: changing it would make re-shipped lines look new.
 */
export function logLinesSql(bounded: boolean): string {
  return `
    select lg.agent_id, lg.batch_id, floor(extract(epoch from lg.ts) * 1000)::int8 as ts,
      row_number() over (partition by lg.agent_id, lg.batch_id order by lg.ts, lg.severity, lg.source collate "C", lg.message collate "C") - 1 as n,
      lg.severity, lg.source, lg.message
    from logs lg
    join unnest($1::int8[], $2::int8[]) as b(agent_id, batch_id)
      on lg.agent_id = b.agent_id and lg.batch_id = b.batch_id${bounded ? `
    where lg.ts between $3::timestamptz and $4::timestamptz` : ""}`;
}

/** The parameters of logLinesSql for a group. */
export function logLinesParams(g: LogReadGroup): Array<string[] | Date> {
  return g.range ? [g.agents, g.ids, g.range[0], g.range[1]] : [g.agents, g.ids];
}

/** Indexes the shipper needs to find a batch's rows; created when the tier is enabled. */
export async function ensureShipIndexes(sql: Sql): Promise<void> {
  // Nodes starting together would race on `if not exists` (a unique violation in pg_class).
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${SHIP_LOCK + 1})`;
    await tx`create index if not exists metric_blocks_agent_batch on metric_blocks (agent_id, batch_id)`;
    await tx`create index if not exists logs_agent_batch on logs (agent_id, batch_id)`;
  });
}

/**
 * The metric_blocks rows of the given batches: compressed blocks as stored (migration 495), rows
 * stored before with their values in binary (decodeFloat8ArraySend).
 */
function metricBlocksQuery(sql: Sql | TransactionSql, agents: Array<string | number>, batches: Array<string | number>) {
  return sql<Array<Omit<MetricBlockRow, "vals"> & { vals: Uint8Array | null; block: Uint8Array | null }>>`
    select mb.agent_id, mb.batch_id, floor(extract(epoch from mb.t0) * 1000)::int8 as t0, mb.ts_off, mb.series,
           case when mb.block is null then array_send(mb.vals) end as vals, mb.block
    from metric_blocks mb
    join unnest(${agents as string[]}::int8[], ${batches as string[]}::int8[]) as b(agent_id, batch_id)
      on mb.agent_id = b.agent_id and mb.batch_id = b.batch_id`;
}

/**
 * The compacted rows (batch_id -1) of the given (agent, hour) pairs, in metricBlocksQuery's shape.
 * Compaction (src/store/postgres/compaction.ts) replaced the hour's rows, whatever their batches.
 */
function compactedBlocksQuery(sql: Sql | TransactionSql, agents: string[], hours: Date[]) {
  const lo = new Date(Math.min(...hours.map((h) => h.getTime())));
  const hi = new Date(Math.max(...hours.map((h) => h.getTime())) + 3_600_000);
  return sql<Array<Omit<MetricBlockRow, "vals"> & { vals: Uint8Array | null; block: Uint8Array | null }>>`
    select mb.agent_id, mb.batch_id, floor(extract(epoch from mb.t0) * 1000)::int8 as t0, null::int4[] as ts_off, null::int4[] as series,
           null::bytea as vals, mb.block
    from metric_blocks mb
    join unnest(${agents}::int8[], ${hours.map((h) => h.toISOString())}::timestamptz[]) as c(agent_id, hour)
      on mb.agent_id = c.agent_id and mb.t0 >= c.hour and mb.t0 < c.hour + interval '1 hour'
    where mb.batch_id = -1 and mb.agent_id = any(${agents}::int8[]) and mb.t0 >= ${lo} and mb.t0 < ${hi}`;
}

/** A row of metricBlocksQuery as the ClickHouse writer takes it (blocks decoded here). */
function blockRow(r: Omit<MetricBlockRow, "vals"> & { vals: Uint8Array | null; block: Uint8Array | null }): MetricBlockRow {
  if (r.block) {
    const d = decodeBlock(r.block);
    return { agent_id: r.agent_id, batch_id: r.batch_id, t0: r.t0, ts_off: Array.from(d.tsOff), series: Array.from(d.sids), vals: d.values };
  }
  return { agent_id: r.agent_id, batch_id: r.batch_id, t0: r.t0, ts_off: r.ts_off, series: r.series, vals: decodeFloat8ArraySend(r.vals!) };
}

export async function readMetricBlocks(sql: Sql | TransactionSql, agents: Array<string | number>, batches: Array<string | number>): Promise<MetricBlockRow[]> {
  const rows = await metricBlocksQuery(sql, agents, batches);
  return rows.map(blockRow);
}

export function createShipperMetrics(writeErrors?: Counter) {
  return {
    writeErrors: writeErrors ?? new Counter("store_write_errors_total", "Failed batch writes, by store."),
    batches: new Counter("clickhouse_shipped_batches_total", "Committed batches shipped to ClickHouse."),
    rows: new Counter("clickhouse_shipped_rows_total", "Rows inserted into ClickHouse, by table."),
    seconds: new Histogram("clickhouse_ship_seconds", "Duration of one shipping step (read, insert, cursor).", [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  };
}

export class Shipper {
  readonly metrics: ReturnType<typeof createShipperMetrics>;
  /** Age of the oldest committed batch not yet shipped, in seconds (0 when caught up). */
  lagSeconds = 0;
  /** Committed batches not yet shipped, as of the last step (capped at 1e5 to stay cheap). */
  pendingBatches = 0;
  private running = false;
  private prepared = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly maxBatches: number;
  private readonly log: (s: string) => void;

  constructor(private readonly o: ShipperOptions) {
    this.maxBatches = o.maxBatches ?? 256;
    this.metrics = createShipperMetrics(o.writeErrors);
    this.log = o.log ?? ((s) => console.error(s));
  }

  gauges(): Gauge[] {
    return [
      new Gauge("clickhouse_ship_lag_seconds", "Age of the oldest committed batch not yet in ClickHouse.", () => this.lagSeconds),
      new Gauge("clickhouse_ship_pending_batches", "Committed batches not yet in ClickHouse (capped at 1e5).", () => this.pendingBatches),
    ];
  }

  /** Ships one chunk. Throws when PostgreSQL or ClickHouse fails (nothing is then marked shipped). */
  async step(): Promise<StepResult> {
    const { sql, ch } = this.o;
    const t = performance.now();
    const r = await sql.begin(async (tx) => {
      const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${SHIP_LOCK}) as ok`;
      if (!lock!.ok) return { batches: 0, samples: 0, lines: 0, leader: false };
      const [cur] = await tx<CursorRow[]>`select xid::text as xid, agent_id, batch_id from clickhouse_cursor where id = 1`;
      const batches = await tx<Array<CursorRow & Omit<LogBatch, "agent_id" | "batch_id"> & { kind: number }>>`
        select xid::text as xid, agent_id, batch_id, kind,
          case when ts_min <= ts_max then ts_min end as ts_min, case when ts_min <= ts_max then ts_max end as ts_max,
          coalesce(ts_min > ts_max, false) as empty
        from ingest_batches
        where (xid, agent_id, batch_id) > (${cur!.xid}::xid8, ${cur!.agent_id}::int8, ${cur!.batch_id}::int8)
          and xid < pg_snapshot_xmin(pg_current_snapshot())
        order by xid, agent_id, batch_id
        limit ${this.maxBatches}`;
      if (batches.length === 0) return { batches: 0, samples: 0, lines: 0, leader: true };
      const pick = (kind: number) => {
        const b = batches.filter((x) => x.kind === kind);
        return { agents: b.map((x) => x.agent_id), ids: b.map((x) => x.batch_id) };
      };
      const m = pick(FrameKind.Metrics);
      const logGroups = logReadGroups(batches.filter((x) => x.kind === FrameKind.Logs));
      const slice = this.o.cursorRows ?? 2000;
      let samples = 0;
      let lines = 0;
      let readMs = 0;
      let insertMs = 0;
      let t1 = performance.now();
      if (m.agents.length) {
        for await (const rows of metricBlocksQuery(tx, m.agents, m.ids).cursor(slice)) {
          const blocks = rows.map(blockRow);
          const t2 = performance.now();
          readMs += t2 - t1;
          samples += await writeMetricSamples(ch, blocks);
          t1 = performance.now();
          insertMs += t1 - t2;
        }
      }
      for (const g of logGroups) {
        const q = tx.unsafe<LogRow[]>(logLinesSql(g.range !== undefined), logLinesParams(g));
        for await (const rows of q.cursor(slice * 40)) {
          const t2 = performance.now();
          readMs += t2 - t1;
          lines += await writeLogLines(ch, rows);
          t1 = performance.now();
          insertMs += t1 - t2;
        }
      }
      const last = batches[batches.length - 1]!;
      await tx`
        update clickhouse_cursor set xid = ${last.xid}::xid8, agent_id = ${last.agent_id}::int8, batch_id = ${last.batch_id}::int8,
          shipped_batches = shipped_batches + ${batches.length}, updated_at = now()
        where id = 1`;
      return { batches: batches.length, samples, lines, leader: true, readMs, insertMs };
    });
    this.metrics.seconds.observe((performance.now() - t) / 1000);
    if (r.batches) {
      this.metrics.batches.inc({}, r.batches);
      this.metrics.rows.inc({ table: "metric_samples" }, r.samples);
      this.metrics.rows.inc({ table: "logs" }, r.lines);
    }
    return r;
  }

  /**
   * Ships the compacted rows of up to `maxBatches` hours logged in metric_compactions after the
   * cursor: hours compacted while the tier was off (compaction is off while it is on), whose
   * frames' batches no longer hold rows. Same transaction discipline as step().
   */
  async stepCompacted(): Promise<{ hours: number; samples: number; leader: boolean }> {
    const { sql, ch } = this.o;
    return await sql.begin(async (tx) => {
      const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${SHIP_LOCK}) as ok`;
      if (!lock!.ok) return { hours: 0, samples: 0, leader: false };
      const hours = await tx<{ id: string; agent_id: string; hour: Date }[]>`
        select c.id, c.agent_id, c.hour from metric_compactions c, clickhouse_cursor k
        where k.id = 1 and c.id > k.compaction_id order by c.id limit ${this.maxBatches}`;
      if (hours.length === 0) return { hours: 0, samples: 0, leader: true };
      let samples = 0;
      for await (const rows of compactedBlocksQuery(tx, hours.map((h) => h.agent_id), hours.map((h) => h.hour)).cursor(this.o.cursorRows ?? 2000)) {
        samples += await writeMetricSamples(ch, rows.map(blockRow));
      }
      await tx`update clickhouse_cursor set compaction_id = ${hours[hours.length - 1]!.id}::int8, updated_at = now() where id = 1`;
      this.metrics.rows.inc({ table: "metric_samples" }, samples);
      return { hours: hours.length, samples, leader: true };
    });
  }

  /** Ships one chunk of batches, or when there are none, of compacted hours (see stepCompacted). */
  async stepAll(): Promise<StepResult> {
    const r = await this.step();
    if (r.batches > 0 || !r.leader) return r;
    const c = await this.stepCompacted();
    return { ...r, batches: c.hours, samples: c.samples };
  }

  /** Refreshes the lag gauges from the cursor (one index range scan, capped). */
  async measureLag(): Promise<void> {
    const [row] = await this.o.sql<{ lag: number | null; pending: string }[]>`
      with c as (select xid, agent_id, batch_id from clickhouse_cursor where id = 1),
      p as (
        select b.committed_at from ingest_batches b, c
        where (b.xid, b.agent_id, b.batch_id) > (c.xid, c.agent_id, c.batch_id)
        order by b.xid, b.agent_id, b.batch_id limit 100000)
      select extract(epoch from now() - min(committed_at))::float8 as lag, count(*) as pending from p`;
    // compacted hours not shipped yet count as lag since their hour: until they are in ClickHouse
    // the router keeps ranges PostgreSQL still holds on PostgreSQL
    const [comp] = await this.o.sql<{ lag: number | null }[]>`
      select extract(epoch from now() - min(c.hour))::float8 as lag
      from (select hour from metric_compactions c, clickhouse_cursor k where k.id = 1 and c.id > k.compaction_id order by c.id limit 1000) c`;
    this.lagSeconds = Math.max(0, row?.lag ?? 0, comp?.lag ?? 0);
    this.pendingBatches = Number(row?.pending ?? 0);
  }

  /** Ships until caught up, then polls every idleMs; backs off on errors. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      let backoff = 0;
      let lastLag = 0;
      while (this.running) {
        let pause = this.o.idleMs ?? 200;
        try {
          if (!this.prepared) {
            await this.o.prepare?.();
            this.prepared = true;
          }
          const r = await this.stepAll();
          if (r.batches >= this.maxBatches) pause = 0;
          if (!r.leader) pause = Math.max(pause, 1000);
          if (backoff) this.log(`clickhouse shipper: recovered, shipping again`);
          backoff = 0;
        } catch (e) {
          this.metrics.writeErrors.inc({ store: "clickhouse" });
          backoff = Math.min(this.o.maxBackoffMs ?? 30_000, backoff ? backoff * 2 : 500);
          pause = backoff;
          this.log(`clickhouse shipper: step failed, retrying in ${backoff} ms (nothing marked shipped): ${e instanceof Error ? e.message.split("\n")[0] : e}`);
        }
        if (performance.now() - lastLag > 1000 || pause > 0) {
          lastLag = performance.now();
          await this.measureLag().catch(() => {});
        }
        if (pause > 0 && this.running) await new Promise<void>((r) => {
          const timer = setTimeout(r, pause);
          this.wake = () => {
            clearTimeout(timer);
            r();
          };
        });
        this.wake = undefined;
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }
}
