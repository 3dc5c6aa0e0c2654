/**
 * Where the writer encodes a batch's metric blocks: on a worker thread of its own by default,
 * else in the calling thread. The server's event loop reads and answers every request, checks
 * every frame and talks to PostgreSQL; block encoding was the largest single part of its
 * JavaScript (18 % of the server's CPU under bench:ingest), and on a worker it runs beside the
 * loop instead of in it (docs/architecture.md, "Encoding on a worker thread").
 *
 * A job's timestamps and values are copied into buffers of its own, moved to the worker; the
 * frames stay with the caller. The worker gives back the same rows the inline encoder makes,
 * byte for byte (test/store/postgres/block-encoder.test.ts). A worker that cannot start, or
 * dies, makes every job still waiting and every later one run in the calling thread: slower,
 * never different rows. An encoding error (CodecError) comes back as the same error. An idle
 * worker does not keep the process alive.
 * SERVERMIND_ENCODE_THREADS (src/config.ts): 1 (default with two cores or more) or 0 (inline).
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { MetricsBody } from "../../ingest/frame/frame.ts";
import { CodecError } from "../codec/block.ts";
import { BlockRows, encodeMetricBlocks } from "./metric-blocks.ts";

export interface EncodeItem {
  agentId: number;
  batchId: number;
  body: MetricsBody;
  /** the series ids of body.names */
  ids: Int32Array;
}

/** A batch's rows as the writer's statement takes them: comma lists and every block back to back. */
export interface EncodedRows {
  count: number;
  agents: string;
  batches: string;
  t0: string;
  t1: string;
  offsets: string;
  lengths: string;
  blocks: Uint8Array;
}

/** One job as posted: per item 7 numbers (agent, batch, ts start, ts count, values start, values count, ids index). */
export interface EncodeJob {
  seq: number;
  meta: Float64Array;
  ts: Float64Array;
  values: Float64Array;
  ids: Int32Array[];
}

export type EncodeReply = { seq: number; rows: EncodedRows } | { seq: number; error: { name: string; message: string } };

/** Encodes `items` into `rows` (reset first) and returns them as the statement takes them. */
export function encodeRows(items: EncodeItem[], rows: BlockRows): EncodedRows {
  rows.reset();
  for (const it of items) encodeMetricBlocks(rows, it.agentId, it.batchId, it.body, it.ids);
  return {
    count: rows.count,
    agents: rows.agents.join(","),
    batches: rows.batches.join(","),
    t0: rows.t0.join(","),
    t1: rows.t1.join(","),
    offsets: rows.offsets.join(","),
    lengths: rows.lengths.join(","),
    blocks: rows.blockBytes(),
  };
}

/** The job for `items`: their timestamps and values copied into two buffers, the ids arrays once each. */
export function toJob(seq: number, items: EncodeItem[]): EncodeJob {
  let nts = 0;
  let nv = 0;
  for (const it of items) {
    nts += it.body.ts.length;
    nv += it.body.values.length;
  }
  const ts = new Float64Array(nts);
  const values = new Float64Array(nv);
  const meta = new Float64Array(items.length * 7);
  const ids: Int32Array[] = [];
  const idsAt = new Map<Int32Array, number>();
  let pt = 0;
  let pv = 0;
  items.forEach((it, i) => {
    let k = idsAt.get(it.ids);
    if (k === undefined) {
      k = ids.length;
      ids.push(it.ids);
      idsAt.set(it.ids, k);
    }
    ts.set(it.body.ts, pt);
    values.set(it.body.values, pv);
    const m = i * 7;
    meta[m] = it.agentId;
    meta[m + 1] = it.batchId;
    meta[m + 2] = pt;
    meta[m + 3] = it.body.ts.length;
    meta[m + 4] = pv;
    meta[m + 5] = it.body.values.length;
    meta[m + 6] = k;
    pt += it.body.ts.length;
    pv += it.body.values.length;
  });
  return { seq, meta, ts, values, ids };
}

/** The items of a job, as the worker sees them (views into the job's buffers). */
export function fromJob(job: EncodeJob): EncodeItem[] {
  const items: EncodeItem[] = [];
  for (let m = 0; m < job.meta.length; m += 7) {
    const ids = job.ids[job.meta[m + 6]!]!;
    const ts = job.ts.subarray(job.meta[m + 2]!, job.meta[m + 2]! + job.meta[m + 3]!);
    const values = job.values.subarray(job.meta[m + 4]!, job.meta[m + 4]! + job.meta[m + 5]!);
    // encodeMetricBlocks reads names only for their count
    items.push({ agentId: job.meta[m]!, batchId: job.meta[m + 1]!, ids, body: { ts, values, names: new Array<string>(ids.length), namesKey: "" } as unknown as MetricsBody });
  }
  return items;
}

/**
 * The worker's script: beside this file when run from source. A compiled server embeds it as an
 * extra entrypoint (scripts/release.ts), as .js under its path from the entrypoints' common
 * folder; not found: null (inline).
 */
export function encodeWorkerUrl(): string | null {
  if (!Bun.main.startsWith("/$bunfs/") && !import.meta.url.startsWith("file:///$bunfs/")) return new URL("./block-encode-worker.ts", import.meta.url).href;
  const root = dirname(Bun.main);
  for (const rel of ["store/postgres/block-encode-worker.js", "src/store/postgres/block-encode-worker.js", "block-encode-worker.js"]) {
    if (existsSync(join(root, rel))) return join(root, rel);
  }
  return null;
}

interface Pending {
  items: EncodeItem[];
  resolve: (r: EncodedRows) => void;
  reject: (e: unknown) => void;
}

export interface BlockEncoder {
  encode(items: EncodeItem[]): Promise<EncodedRows>;
  /** worker threads encoding (0: inline) */
  readonly threads: number;
  close(): void;
}

/** Encodes in the calling thread. */
export function inlineEncoder(): BlockEncoder {
  const rows = new BlockRows();
  return {
    encode: async (items) => encodeRows(items, rows),
    threads: 0,
    close() {},
  };
}

/** Encodes on one worker thread, falling back to the calling thread when the worker is gone. */
export class ThreadEncoder implements BlockEncoder {
  private w: Worker | undefined;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly rows = new BlockRows();
  private broken = false;

  /** `url`: the worker script (tests give one that does not load); default encodeWorkerUrl(). */
  constructor(url: string | null = encodeWorkerUrl(), private readonly log: (line: string) => void = (l) => console.error(l)) {
    if (!url) {
      this.broken = true;
      this.log("the block encoder's thread script is not in this build; metric blocks are encoded on the main thread");
      return;
    }
    try {
      const w = new Worker(url);
      w.onmessage = (ev: MessageEvent<EncodeReply>) => this.reply(ev.data);
      w.onerror = (ev) => this.fail(`the block encoder's thread failed: ${(ev as ErrorEvent).message ?? "error"}`);
      w.addEventListener("close", () => this.fail("the block encoder's thread stopped"));
      this.w = w;
      this.hold(false);
    } catch (e) {
      this.fail(`the block encoder's thread did not start: ${e instanceof Error ? e.message : e}`);
    }
  }

  get threads(): number {
    return this.broken ? 0 : 1;
  }

  encode(items: EncodeItem[]): Promise<EncodedRows> {
    if (this.broken || !this.w) return this.inline(items);
    const seq = this.seq++;
    const job = toJob(seq, items);
    return new Promise<EncodedRows>((resolve, reject) => {
      if (this.pending.size === 0) this.hold(true);
      this.pending.set(seq, { items, resolve, reject });
      this.w!.postMessage(job, [job.meta.buffer, job.ts.buffer, job.values.buffer]);
    });
  }

  close(): void {
    this.fail();
  }

  private inline(items: EncodeItem[]): Promise<EncodedRows> {
    try {
      return Promise.resolve(encodeRows(items, this.rows));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private reply(r: EncodeReply): void {
    const p = this.pending.get(r.seq);
    if (!p) return;
    this.pending.delete(r.seq);
    if (this.pending.size === 0) this.hold(false);
    if ("rows" in r) p.resolve(r.rows);
    else p.reject(r.error.name === "CodecError" ? new CodecError(r.error.message) : new Error(r.error.message));
  }

  /** The worker is gone (or closed): what it held runs here, as does every later job. */
  private fail(why?: string): void {
    if (this.broken) return;
    this.broken = true;
    if (why) this.log(`${why}; metric blocks are encoded on the main thread from now on`);
    const w = this.w;
    this.w = undefined;
    w?.terminate();
    const held = [...this.pending.values()];
    this.pending.clear();
    for (const p of held) this.inline(p.items).then(p.resolve, p.reject);
  }

  private hold(keepAlive: boolean): void {
    const x = this.w as unknown as { ref(): void; unref(): void } | undefined;
    if (keepAlive) x?.ref();
    else x?.unref();
  }
}

/** The encoder for `threads` (config.encodeThreads): 1, a thread of its own; 0, the calling thread. */
export function blockEncoder(threads: number): BlockEncoder {
  return threads >= 1 ? new ThreadEncoder() : inlineEncoder();
}
