/**
 * Group commit: frames from all agents join the open batch. The batch is flushed as soon as a
 * writer is free (after the current turn of the event loop, so frames that arrive together
 * commit together), and otherwise when it reaches `maxRows` or `maxBytes`, or `maxAgeMs` (with
 * jitter) after its first frame, whichever comes first. Light load thus gets low latency and
 * heavy load gets large transactions, with no tuning. At most `writers` batches are written at once; finished batches wait their turn in a
 * queue whose size is bounded by `maxPendingBytes` together with the open batch: the gate asks
 * `hasRoom()` before it admits a request, so memory stays bounded and nothing is dropped.
 * A batch the store refuses for its data (`isRefusal`) is split until only the frames at fault
 * are rejected (`store_rejected`), so one agent's bad frame never costs the others theirs.
 */
import { FrameError } from "../ingest/frame/frame.ts";
import { Batch, type FrameStatus, type PendingFrame } from "./batch.ts";

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Runs `fn` after the current turn of the event loop. */
  defer(fn: () => void): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  defer: (fn) => setImmediate(fn),
};

/** Writes one batch in one transaction and returns each frame's status, in order. */
export type BatchWriter = (batch: Batch) => Promise<FrameStatus[]>;

export type FlushReason = "idle" | "rows" | "bytes" | "age";

export interface BatcherOptions {
  write: BatchWriter;
  maxRows: number;
  maxBytes: number;
  maxAgeMs: number;
  maxPendingBytes: number;
  writers: number;
  /** Attempts per batch before its frames are rejected (the agents resend them). */
  attempts?: number;
  /**
   * Whether a write error blames some frames of the batch rather than the store (PostgreSQL
   * refused their data). Such a batch is split in halves, each written on its own, down to the
   * single frames at fault, which are rejected as `store_rejected`; the rest commit.
   */
  isRefusal?: (err: unknown) => boolean;
  /** Told of each frame rejected as `store_rejected`. */
  onRefused?: (frame: PendingFrame, err: unknown) => void;
  clock?: Clock;
  onFlush?: (reason: FlushReason, batch: Batch) => void;
  /** Told of each failed attempt; `last` when the batch's frames are then rejected. */
  onError?: (err: unknown, attempt: number, last: boolean) => void;
}

export class Batcher {
  private open: Batch | undefined;
  private timer: unknown;
  private queue: Batch[] = [];
  private writing = 0;
  private pending = 0;
  private idleWaiters: Array<() => void> = [];
  private deferred = false;
  private readonly clock: Clock;

  constructor(private readonly o: BatcherOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /** Bytes of frames accepted but not yet committed (open batch + queued + being written). */
  get pendingBytes(): number {
    return this.pending;
  }

  get queuedBatches(): number {
    return this.queue.length + this.writing;
  }

  hasRoom(extraBytes = 0): boolean {
    return this.pending + extraBytes <= this.o.maxPendingBytes;
  }

  /** Adds a frame; the promise settles when its batch commits (or finally fails). */
  push(f: Omit<PendingFrame, "accept" | "reject">): Promise<FrameStatus> {
    return new Promise<FrameStatus>((accept, reject) => {
      const frame: PendingFrame = { ...f, accept, reject };
      let b = this.open;
      if (!b) {
        b = this.open = new Batch(this.clock.now());
        const jitter = 0.8 + Math.random() * 0.4;
        this.timer = this.clock.setTimeout(() => this.flush("age"), Math.max(1, this.o.maxAgeMs * jitter));
      }
      b.add(frame);
      this.pending += frame.bytes;
      if (b.rows >= this.o.maxRows) this.flush("rows");
      else if (b.bytes >= this.o.maxBytes) this.flush("bytes");
      else if (this.writing < this.o.writers && !this.deferred) {
        this.deferred = true;
        this.clock.defer(() => {
          this.deferred = false;
          if (this.writing < this.o.writers) this.flush("idle");
        });
      }
    });
  }

  /** Closes the open batch and queues it for writing. */
  flush(reason: FlushReason = "age"): void {
    const b = this.open;
    if (!b) return;
    this.open = undefined;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.o.onFlush?.(reason, b);
    this.queue.push(b);
    this.pump();
  }

  private pump(): void {
    while (this.writing < this.o.writers && this.queue.length > 0) {
      const b = this.queue.shift()!;
      this.writing++;
      void this.writeWithRetry(b).finally(() => {
        this.writing--;
        this.pending -= b.bytes;
        if (this.queue.length === 0 && this.open) this.flush("idle");
        else this.pump();
        if (this.writing === 0 && this.queue.length === 0 && !this.open) {
          for (const w of this.idleWaiters.splice(0)) w();
        }
      });
    }
  }

  private async writeWithRetry(b: Batch): Promise<void> {
    const attempts = this.o.attempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        const statuses = await this.o.write(b);
        b.accept(statuses);
        return;
      } catch (err) {
        // a refusal is no store trouble: onRefused tells of the frames found at fault
        if (this.o.isRefusal?.(err)) return this.split(b, err);
        this.o.onError?.(err, attempt, attempt >= attempts);
        if (attempt >= attempts) {
          b.reject(new Error(`store write failed after ${attempts} attempts: ${err instanceof Error ? err.message : err}`));
          return;
        }
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  /**
   * Bisects a batch PostgreSQL refused: each half is written (and retried) on its own, in this
   * writer's turn, so the frames at fault are found in about 2 log2(n) transactions and every
   * other frame commits. Transient errors of a half are retried as for any batch.
   */
  private async split(b: Batch, err: unknown): Promise<void> {
    if (b.frames.length === 1) {
      const f = b.frames[0]!;
      this.o.onRefused?.(f, err);
      const why = err instanceof Error ? err.message : String(err);
      f.reject(new FrameError("store_rejected", `PostgreSQL refused this frame (${why}); it is not stored and must not be resent`));
      return;
    }
    const mid = b.frames.length >> 1;
    for (const part of [b.frames.slice(0, mid), b.frames.slice(mid)]) {
      const half = new Batch(b.openedAt);
      for (const f of part) half.add(f);
      await this.writeWithRetry(half);
    }
  }

  /** Flushes what is open and resolves when every accepted frame has been written or rejected. */
  async drain(): Promise<void> {
    this.flush("age");
    if (this.writing === 0 && this.queue.length === 0) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }
}
