/**
 * The PostgreSQL store writer. Every frame's (agent, batch id) is recorded in ingest_batches;
 * frames whose batch is already there are duplicates and add no rows. A batch's metrics frames
 * (the bulk of ingest) are one statement that records them and stores the blocks of the new
 * ones, committed on its own; its other frames are one transaction: the dedupe record, then
 * binary COPY (logs, security events) and small statements (inventory). The promise resolves
 * only after both commits, which is what an ack means.
 */
import type { Sql, TransactionSql } from "postgres";
import { createHash } from "node:crypto";
import type { Writable } from "node:stream";
import type { Batch, FrameStatus, PendingFrame } from "../../batch/batch.ts";
import { FrameKind, type LogsBody, type MetricsBody, type SecurityEvent } from "../../ingest/frame/frame.ts";
import { CopyWriter } from "./copy-binary.ts";
import { BlockRows, encodeMetricBlocksCompressed, METRIC_BLOCKS_COPY_COLUMNS } from "./metric-blocks.ts";
import { displayText, jsonForPg, rawText, textFits } from "./pg-text.ts";
import { SeriesCache } from "./series.ts";

/**
 * Series per metric_blocks row before migration 495 (10 series x 10 timestamps = 100 samples);
 * rows now hold a compressed block of up to a whole frame (metric-blocks.ts), and this stays
 * the batcher's weight of a frame (an upper bound of its rows).
 */
export const SERIES_PER_ROW = 10;

/** The COPY targets of the writer, column lists included (benches copy the same rows). */
export const METRIC_BLOCKS_COPY = METRIC_BLOCKS_COPY_COLUMNS;
export const LOGS_COPY = "logs (agent_id, batch_id, ts, severity, source, message, message_raw)";
export const SECURITY_EVENTS_COPY = "security_events (agent_id, batch_id, ts, type, severity, path, data, data_raw)";

export interface LatestSink {
  /** Called after commit with each stored metrics frame, for the latest-values table. */
  metrics(agentId: number, body: MetricsBody): void;
}

export interface PgWriterOptions {
  sql: Sql;
  series?: SeriesCache;
  latest?: LatestSink;
}

/**
 * Binary COPY of `bytes` (a CopyWriter's output) into `target` within the transaction; resolves
 * when PostgreSQL has answered the whole COPY, rejects with its error.
 *
 * postgres.js (3.4) resolves the query with the stream as soon as the COPY starts, and when
 * PostgreSQL refuses the data after the stream has ended, it settles that query again (a no-op)
 * and neither finishes nor destroys the stream: waiting for "finish" then hangs for ever, the
 * transaction stays "idle in transaction (aborted)" and the writer is lost. So the query's own
 * resolve/reject are hooked: the second settle is the COPY's real outcome.
 */
export async function copyInto(tx: TransactionSql, target: string, bytes: Uint8Array): Promise<void> {
  const q = tx.unsafe(`copy ${target} from stdin (format binary)`) as unknown as {
    resolve: (x: unknown) => void;
    reject: (e: unknown) => void;
    writable(): Promise<Writable>;
  };
  let started = false;
  const outcome = new Promise<void>((resolve, reject) => {
    const first = { resolve: q.resolve, reject: q.reject };
    q.resolve = (x) => {
      if (started) return resolve();
      started = true;
      first.resolve(x);
    };
    q.reject = (e) => {
      first.reject(e);
      reject(e);
    };
  });
  outcome.catch(() => {}); // when the COPY cannot even start, writable() throws the same error
  const stream = await q.writable();
  stream.on("error", () => {}); // the error also reaches `outcome`
  stream.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  await outcome;
}

/**
 * SQLSTATE classes that blame the data, not the database: 22 (data exception: a byte sequence,
 * a value out of range) and 54 (program limit: nesting too deep, a row too large). Such an
 * error fails every retry of the same rows, so the batch is split to find the frame at fault.
 */
const DATA_CLASSES = new Set(["22", "54"]);

/** Whether `err` says PostgreSQL refused some rows of the batch rather than failed. */
export function isDataRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.length === 5 && DATA_CLASSES.has(code.slice(0, 2));
}

/** Rows a metrics frame produces in metric_blocks. */
export function metricRows(b: MetricsBody): number {
  return Math.ceil(b.names.length / SERIES_PER_ROW);
}

/** The metric_blocks rows of one frame (compressed blocks, metric-blocks.ts), as COPY rows or statement parameters. */
export function encodeMetricBlocks(w: CopyWriter | BlockRows, agentId: number, batchId: number, b: MetricsBody, sids: Int32Array): void {
  const nts = b.ts.length;
  if (nts === 0 || b.names.length === 0) return;
  let t0 = b.ts[0]!;
  let t1 = t0;
  for (let i = 1; i < nts; i++) {
    const t = b.ts[i]!;
    if (t < t0) t0 = t;
    if (t > t1) t1 = t;
  }
  const off = new Int32Array(nts);
  for (let i = 0; i < nts; i++) off[i] = b.ts[i]! - t0;
  encodeMetricBlocksCompressed(w, agentId, batchId, t0, t1, off, sids, b.values);
}

/** 0001-01-01 and 10000-01-01 UTC: the years toISOString writes as four digits, which PostgreSQL reads. */
const BOUND_FIRST_MS = -62_135_596_800_000;
const BOUND_END_MS = 253_402_300_800_000;

/**
 * The time range of a logs frame's lines as ingest_batches records it (ts_min, ts_max): whole
 * milliseconds around them (floor, ceil), so every line's stored microseconds fall inside.
 * A frame without lines gets an empty range (infinity to -infinity: nothing to read); one with
 * a time outside years 1-9999 (or not a number) gets none, and the shipper reads it unbounded.
 */
export function logBounds(ts: Float64Array): [string, string] | undefined {
  if (ts.length === 0) return ["infinity", "-infinity"];
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    if (Number.isNaN(t)) return undefined;
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  if (!(lo >= BOUND_FIRST_MS && hi < BOUND_END_MS - 1)) return undefined;
  return [new Date(Math.floor(lo)).toISOString(), new Date(Math.ceil(hi)).toISOString()];
}

export function encodeLogs(w: CopyWriter, agentId: number, batchId: number, b: LogsBody): void {
  for (let i = 0; i < b.messages.length; i++) {
    const m = b.messages[i]!;
    w.row(7);
    w.int8(agentId);
    w.int8(batchId);
    w.timestamptz(b.ts[i]!);
    w.int2(b.severity[i]!);
    w.text(b.sources[b.sourceIndex[i]!]!);
    if (textFits(m)) {
      w.text(m);
      w.null();
    } else {
      // U+0000 is real log data: a display form in `message`, the exact line in `message_raw`
      w.text(displayText(m));
      w.bytes(rawText(m));
    }
  }
}

const JSONB_V1 = Uint8Array.of(1);

export function encodeSecurity(w: CopyWriter, agentId: number, batchId: number, events: SecurityEvent[]): void {
  for (const e of events) {
    w.row(8);
    w.int8(agentId);
    w.int8(batchId);
    w.timestamptz(e.ts);
    w.text(e.type);
    w.int2(e.severity);
    if (e.path === undefined) w.null();
    else w.text(e.path);
    if (e.data === undefined) {
      w.null();
      w.null();
    } else {
      const j = jsonForPg(e.data);
      w.bytes(Buffer.concat([JSONB_V1, Buffer.from(j.text)]));
      if (j.raw) w.bytes(j.raw);
      else w.null();
    }
  }
}

/** Keys are sorted so the same inventory always hashes the same. */
function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === "object" && !Array.isArray(val) && !(val instanceof Uint8Array)
      ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, (val as Record<string, unknown>)[k]]))
      : val instanceof Uint8Array ? Buffer.from(val).toString("base64") : val,
  );
}

export function createPgWriter(o: PgWriterOptions) {
  const series = o.series ?? new SeriesCache();
  // One set of buffers per concurrent write, reused.
  const spare: Array<{ rows: BlockRows; logs: CopyWriter; security: CopyWriter }> = [];

  /**
   * A batch's metrics frames, in one statement: the dedupe record and the blocks of the frames
   * it found new, committed together when the statement ends (no BEGIN, no COPY, no COMMIT: one
   * round trip where a transaction took five). On two shared cores each round trip waits for a
   * busy event loop, and this gave 17-21 % more samples/s at a third less ack latency
   * (docs/architecture.md). The first copy of an (agent, batch) is the one stored; later copies
   * are duplicates. Each frame keeps its outcome (`committed`), so a retry of the batch, when
   * the rest of it fails, neither writes nor counts it twice.
   */
  async function writeMetrics(frames: PendingFrame[], rows: BlockRows): Promise<void> {
    await series.resolve(
      o.sql,
      frames.map((f) => {
        const b = f.data.body as MetricsBody;
        return { agentId: f.agentId, names: b.names, namesKey: b.namesKey };
      }),
    );
    const keys = frames.map((f) => `${f.agentId}:${f.batchId}`);
    const firsts = new Map<string, PendingFrame>();
    frames.forEach((f, i) => firsts.has(keys[i]!) || firsts.set(keys[i]!, f));
    const first = [...firsts.values()];
    rows.reset();
    for (const f of first) {
      const b = f.data.body as MetricsBody;
      const ids = series.ids(f.agentId, b.names, b.namesKey);
      if (!ids) throw new Error(`series of agent ${f.agentId} vanished from the cache during a write`);
      encodeMetricBlocks(rows, f.agentId, f.batchId, b, ids);
    }
    // Comma lists instead of array parameters: integers need no escaping, and this is the
    // hottest statement of the ingest path. The blocks travel as one bytea, each row naming its
    // offset and length in it.
    // The frames found new come back as one string of agent:batch keys, not a row each: a
    // result row costs postgres.js more to parse than the key costs to split (0.9 % of the
    // machine under bench:ingest went to its row parser).
    const [fresh] = await o.sql<{ keys: string }[]>`
      with fresh as (
        insert into ingest_batches (agent_id, batch_id, kind)
        select a, b, ${FrameKind.Metrics}::int2
        from unnest(string_to_array(${first.map((f) => f.agentId).join(",")}, ',')::int8[],
                    string_to_array(${first.map((f) => f.batchId).join(",")}, ',')::int8[]) as f(a, b)
        on conflict do nothing
        returning agent_id, batch_id
      ), stored as (
        insert into metric_blocks (agent_id, batch_id, t0, t1, block)
        select r.a, r.b, timestamptz 'epoch' + r.t0 * interval '1 millisecond', timestamptz 'epoch' + r.t1 * interval '1 millisecond',
               substring(${rows.blocks()}::bytea from r.o + 1 for r.l)
        from unnest(string_to_array(${rows.agents.join(",")}, ',')::int8[], string_to_array(${rows.batches.join(",")}, ',')::int8[],
                    string_to_array(${rows.t0.join(",")}, ',')::int8[], string_to_array(${rows.t1.join(",")}, ',')::int8[],
                    string_to_array(${rows.offsets.join(",")}, ',')::int4[], string_to_array(${rows.lengths.join(",")}, ',')::int4[]) as r(a, b, t0, t1, o, l)
        join fresh on fresh.agent_id = r.a and fresh.batch_id = r.b
      )
      select coalesce(string_agg(agent_id || ':' || batch_id, ','), '') as keys from fresh`;
    const isNew = new Set(fresh!.keys === "" ? [] : fresh!.keys.split(","));
    frames.forEach((f, i) => {
      f.committed = firsts.get(keys[i]!) === f && isNew.has(keys[i]!) ? "ok" : "dup";
      if (f.committed === "ok") o.latest?.metrics(f.agentId, f.data.body as MetricsBody);
    });
  }

  /**
   * A batch's other frames (logs, security events, inventory) in one transaction: the dedupe
   * record, then binary COPY (logs, security events) and small statements (inventory).
   * Returns the frames found new.
   */
  async function writeOthers(frames: PendingFrame[], bufs: { logs: CopyWriter; security: CopyWriter }): Promise<Set<PendingFrame>> {
    const stored = new Set<PendingFrame>();
    await o.sql.begin(async (tx) => {
      const agentIds = frames.map((f) => f.agentId).join(",");
      const batchIds = frames.map((f) => f.batchId).join(",");
      const kinds = frames.map((f) => f.data.kind).join(",");
      // logs batches: the time range of their lines, the ClickHouse shipper's bound (migration 540)
      const bounds = frames.map((f) => (f.data.kind === FrameKind.Logs ? logBounds(f.data.body.ts) : undefined));
      const tsMin = bounds.map((b) => b?.[0] ?? "").join(",");
      const tsMax = bounds.map((b) => b?.[1] ?? "").join(",");
      const fresh = await tx<{ agent_id: string; batch_id: string }[]>`
        insert into ingest_batches (agent_id, batch_id, kind, ts_min, ts_max)
        select * from unnest(string_to_array(${agentIds}, ',')::int8[], string_to_array(${batchIds}, ',')::int8[],
                             string_to_array(${kinds}, ',')::int2[],
                             string_to_array(${tsMin}, ',', '')::timestamptz[], string_to_array(${tsMax}, ',', '')::timestamptz[])
        on conflict do nothing returning agent_id, batch_id`;
      const isNew = new Set(fresh.map((r) => `${r.agent_id}:${r.batch_id}`));
      for (const f of frames) {
        const k = `${f.agentId}:${f.batchId}`;
        if (isNew.has(k)) {
          isNew.delete(k); // a second copy of the same batch in this transaction is a duplicate
          stored.add(f);
        }
      }
      const l = bufs.logs.begin();
      const s = bufs.security.begin();
      let nl = 0, ns = 0;
      const inventories: PendingFrame[] = [];
      for (const f of stored) {
        switch (f.data.kind) {
          case FrameKind.Logs:
            encodeLogs(l, f.agentId, f.batchId, f.data.body);
            nl++;
            break;
          case FrameKind.SecurityEvents:
            encodeSecurity(s, f.agentId, f.batchId, f.data.body.events);
            ns++;
            break;
          case FrameKind.Inventory:
            inventories.push(f);
            break;
          default:
            break; // heartbeats are applied to agents.status by the agent-state flusher
        }
      }
      // One COPY at a time: a transaction is one connection, and two COPYs started on it at
      // once break the protocol (CONNECTION_CLOSED) when a batch holds logs and security events.
      if (nl) await copyInto(tx, LOGS_COPY, l.end());
      if (ns) await copyInto(tx, SECURITY_EVENTS_COPY, s.end());
      for (const f of inventories) {
        const exact = stableJson(f.data.body);
        const j = jsonForPg(f.data.body);
        const json = j.raw ? j.text : exact;
        const raw = j.raw ? Buffer.from(j.raw) : null;
        const hash = createHash("sha256").update(exact).digest();
        const at = new Date(f.createdMs);
        // a refusal like PostgreSQL's datetime_field_overflow: only this frame is at fault
        if (Number.isNaN(at.getTime())) throw Object.assign(new Error(`inventory created at ${f.createdMs} ms is not a time`), { code: "22008" });
        const changed = await tx`
          insert into inventory_current (agent_id, collected_at, hash, data, data_raw)
          values (${f.agentId}, ${at}, ${hash}, (${json}::text)::jsonb, ${raw})
          on conflict (agent_id) do update set collected_at = excluded.collected_at, hash = excluded.hash, data = excluded.data, data_raw = excluded.data_raw
            where inventory_current.hash is distinct from excluded.hash
          returning 1`;
        if (changed.length) {
          await tx`insert into inventory_history (agent_id, collected_at, hash, data, data_raw) values (${f.agentId}, ${at}, ${hash}, (${json}::text)::jsonb, ${raw})`;
        } else {
          await tx`update inventory_current set collected_at = ${at} where agent_id = ${f.agentId}`;
        }
      }
    });
    return stored;
  }

  /**
   * Metrics frames first (their own statement), then the rest (one transaction). A frame already
   * committed by an earlier attempt of this batch answers with that outcome and is not written
   * again.
   */
  return async function writeBatch(batch: Batch): Promise<FrameStatus[]> {
    const frames = batch.frames;
    const bufs = spare.pop() ?? { rows: new BlockRows(), logs: new CopyWriter(1 << 16), security: new CopyWriter(1 << 12) };
    try {
      const metrics = frames.filter((f) => f.data.kind === FrameKind.Metrics && !f.committed);
      if (metrics.length > 0) await writeMetrics(metrics, bufs.rows);
      const others = frames.filter((f) => f.data.kind !== FrameKind.Metrics);
      const stored = others.length > 0 ? await writeOthers(others, bufs) : new Set<PendingFrame>();
      return frames.map((f) => f.committed ?? (stored.has(f) ? "ok" : "dup"));
    } finally {
      spare.push(bufs);
    }
  };
}
