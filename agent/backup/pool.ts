/**
 * A pool of Bun Workers (seal-worker.ts) for the CPU-bound part of the pipeline: sealing chunks
 * for a backup, opening and checking them for a restore. One worker per core
 * (navigator.hardwareConcurrency, at most 8; SERVERMIND_BACKUP_WORKERS overrides, 0 = none).
 * A job's input is copied when it is posted, so the caller may reuse its buffer at once, except
 * input in a SharedArrayBuffer (the chunker's windows): the worker reads it in place, so the
 * caller keeps those bytes unchanged until the job settles (Chunker.hold).
 * Workers that cannot start (or die) make the pool run every job in the calling thread with
 * the same functions: slower, never different bytes. Idle workers do not keep the process alive.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { PackEntry, PackJob, RestoreFileJob } from "./pack-format.ts";
import { BackupError, type BackupErrorCode } from "./error.ts";

export type PoolJob =
  | { seq: number; op: "seal"; key: Uint8Array; aad: string; data: Uint8Array; compress: boolean; level: number }
  | { seq: number; op: "open"; key: Uint8Array; aad: string; data: Uint8Array; idKey?: Uint8Array; id?: string }
  /** seal chunk `id` into the worker's open pack of a run in a local directory (direct.ts): the reply carries only the sealed size */
  | ({ seq: number; op: "packChunk"; id: string; data: Uint8Array } & PackJob)
  /** commit (or with `abort` drop) the worker's open pack of a run and wait for its packs: the reply lists them (direct.ts) */
  | ({ seq: number; op: "packClose"; abort: boolean; data: Uint8Array } & PackJob)
  /** restore a whole file from a local directory (direct.ts); `data` is empty */
  | ({ seq: number; op: "restoreFile"; data: Uint8Array } & RestoreFileJob);
export interface PoolReply {
  seq: number;
  ready?: boolean;
  out?: Uint8Array;
  /** packChunk: the sealed chunk's size */
  stored?: number;
  /** packClose: the packs the worker stored for the run and the index objects naming them */
  packs?: PackEntry[];
  indexes?: string[];
  error?: { code: BackupErrorCode | null; message: string };
}
/** What a job gives back: the output bytes (seal, open), the stored size (packChunk), the packs (packClose), or nothing (restoreFile). */
export interface PoolResult {
  out?: Uint8Array;
  stored?: number;
  packs?: PackEntry[];
  indexes?: string[];
}
type Job = PoolJob extends infer J ? (J extends PoolJob ? Omit<J, "seq"> : never) : never;

interface Slot {
  w: Worker;
  busy: number;
  /** the worker has loaded; until then its jobs wait here, with their own copy of the input */
  ready: boolean;
  queue: PoolJob[];
}
interface Pending {
  slot: Slot;
  /** set while the job waits for its worker to load: then the fallback can still run it here */
  queued?: Job;
  inline: (data: Uint8Array) => PoolResult | Promise<PoolResult>;
  resolve: (v: PoolResult | Promise<PoolResult>) => void;
  reject: (e: unknown) => void;
}

/**
 * The worker's script: beside this file when run from source. A compiled executable embeds it
 * only as an extra entrypoint (agent/build.ts), under its path relative to the entrypoints'
 * common folder, as .js (agent/backup/seal-worker.js for the agent); not found: null.
 */
export function workerUrl(): string | null {
  if (!Bun.main.startsWith("/$bunfs/") && !import.meta.url.startsWith("file:///$bunfs/")) return new URL("./seal-worker.ts", import.meta.url).href;
  const root = dirname(Bun.main);
  for (const rel of ["backup/seal-worker.js", "seal-worker.js", "agent/backup/seal-worker.js"]) if (existsSync(join(root, rel))) return join(root, rel);
  return null;
}

export class CryptoPool {
  private slots: Slot[] = [];
  private pending = new Map<number, Pending>();
  private seq = 0;
  private broken = false;

  /** `url`: the worker script (tests give one that does not load); default workerUrl(). */
  constructor(
    readonly size: number,
    url: string | null = workerUrl(),
  ) {
    if (size < 1) {
      this.broken = true;
      return;
    }
    if (!url) {
      this.broken = true;
      return;
    }
    try {
      for (let i = 0; i < size; i++) this.slots.push(this.spawn(url));
    } catch {
      this.fail();
    }
  }

  private spawn(url: string): Slot {
    const w = new Worker(url);
    const slot: Slot = { w, busy: 0, ready: false, queue: [] };
    w.onmessage = (ev: MessageEvent<PoolReply>) => this.reply(slot, ev.data);
    w.onerror = () => this.fail();
    w.addEventListener("close", () => {
      if (!this.broken) this.fail();
    });
    held(w, false);
    return slot;
  }

  /**
   * Workers that will not start or that died: jobs still waiting for a worker to load run here,
   * jobs a worker had taken fail (their input was handed over), every later job runs here.
   */
  private fail(): void {
    if (this.broken) return;
    this.broken = true;
    for (const s of this.slots) s.w.terminate();
    this.slots = [];
    const held = [...this.pending.values()];
    this.pending.clear();
    for (const p of held) {
      if (!p.queued) {
        p.reject(new Error("a backup worker thread stopped"));
        continue;
      }
      try {
        p.resolve(p.inline(p.queued.data));
      } catch (e) {
        p.reject(e);
      }
    }
  }

  private reply(slot: Slot, r: PoolReply): void {
    if (r.ready) {
      slot.ready = true;
      for (const job of slot.queue) {
        const p = this.pending.get(job.seq);
        if (p) p.queued = undefined;
        slot.w.postMessage(job, moved(job.data));
      }
      slot.queue = [];
      return;
    }
    const p = this.pending.get(r.seq);
    if (!p) return;
    this.pending.delete(r.seq);
    if (--slot.busy === 0) held(slot.w, false);
    if (r.error) p.reject(r.error.code ? new BackupError(r.error.code, r.error.message) : new Error(r.error.message));
    else p.resolve({ out: r.out, stored: r.stored, packs: r.packs, indexes: r.indexes });
  }

  /**
   * Runs `job` on the least busy worker; `inline` computes the same result in this thread (the
   * fallback). With `give`, job.data's buffer may be moved to the worker (left empty here).
   */
  run(job: Job, inline: (data: Uint8Array) => Uint8Array, give = false): Promise<Uint8Array> {
    return this.submit(job, (data) => ({ out: inline(data) }), give).then((r) => r.out!);
  }

  /** `run` for the jobs whose result is not bytes (packChunk, restoreFile: direct.ts). */
  submit(job: Job, inline: (data: Uint8Array) => PoolResult | Promise<PoolResult>, give = false): Promise<PoolResult> {
    if (this.broken) {
      try {
        return Promise.resolve(inline(job.data));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.busy < slot.busy) slot = s;
    return this.post(slot, job, inline, give);
  }

  /**
   * `job` on every worker (packClose: each worker holds its own open pack). Fails when the
   * workers are gone: what they held for the job is lost with them, the caller's run must fail.
   */
  broadcast(job: Job): Promise<PoolResult[]> {
    if (this.broken) return Promise.reject(new Error("a backup worker thread stopped"));
    const lost = () => {
      throw new Error("a backup worker thread stopped");
    };
    return Promise.all(this.slots.map((slot) => this.post(slot, job, lost)));
  }

  private post(slot: Slot, job: Job, inline: (data: Uint8Array) => PoolResult | Promise<PoolResult>, give = false): Promise<PoolResult> {
    const seq = this.seq++;
    // Our own copy of exactly the input (cloning a view would copy its whole underlying buffer),
    // moved to the worker without a second copy.
    // A caller that gives its buffer away (`give`, e.g. an object just fetched) saves the copy.
    // Input in shared memory (the chunker's windows, held until the job settles) is read by the
    // worker where it is: no copy, nothing to move.
    const whole = job.data.byteOffset === 0 && job.data.byteLength === job.data.buffer.byteLength;
    // (a new Uint8Array, not Buffer.slice, which is a view: moving its buffer would empty the caller's)
    const own = { ...job, data: isShared(job.data) || (give && whole) ? job.data : new Uint8Array(job.data) } as Job;
    return new Promise<PoolResult>((resolve, reject) => {
      if (slot.busy++ === 0) held(slot.w, true);
      if (slot.ready) {
        this.pending.set(seq, { slot, inline, resolve, reject });
        slot.w.postMessage({ ...own, seq }, moved(own.data));
      } else {
        this.pending.set(seq, { slot, queued: own, inline, resolve, reject });
        slot.queue.push({ ...own, seq } as PoolJob);
      }
    });
  }

  get threads(): number {
    return this.broken ? 0 : this.slots.length;
  }

  close(): void {
    this.fail();
  }
}

const isShared = (data: Uint8Array) => typeof SharedArrayBuffer !== "undefined" && data.buffer instanceof SharedArrayBuffer;
/** The buffer to move with a job's input: none when it is shared memory. */
const moved = (data: Uint8Array): ArrayBuffer[] => (isShared(data) ? [] : [data.buffer as ArrayBuffer]);

/** Bun's Worker has ref()/unref() (Node's semantics); the DOM typings lack them. */
function held(w: Worker, keepAlive: boolean): void {
  const x = w as unknown as { ref(): void; unref(): void };
  if (keepAlive) x.ref();
  else x.unref();
}

let shared: CryptoPool | null = null;

export function poolSize(): number {
  const env = process.env.SERVERMIND_BACKUP_WORKERS;
  if (env !== undefined && env !== "" && Number.isInteger(Number(env))) return Math.max(0, Math.min(32, Number(env)));
  return Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
}

/** The process's pool, started on first use. */
export function cryptoPool(): CryptoPool {
  shared ??= new CryptoPool(poolSize());
  return shared;
}

let restoring: CryptoPool | null = null;

/**
 * The pool a local repository's restore hands whole files to (direct.ts), started on first use:
 * twice `poolSize()` threads, since a restore worker spends about half its time blocked in the
 * kernel (creating files, copying into the page cache) and a second thread per core runs
 * meanwhile (1 GB bench tree, load 9: restore wall 16-19 s with 2 threads, 11-13 s with 4).
 */
export function restorePool(): CryptoPool {
  restoring ??= new CryptoPool(Math.min(32, poolSize() * 2));
  return restoring;
}
