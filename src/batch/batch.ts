/**
 * A Batch holds decoded frames from many agents until one store transaction commits them
 * (group commit). Each frame carries its own accept/reject pair, as in Telegraf's buffer
 * contract: accept("ok" | "dup") after commit, reject(err) if the write failed and nothing of
 * it is stored; the agent keeps the frame in its spool and sends it again.
 */
import type { FrameBody } from "../ingest/frame/frame.ts";

export type FrameStatus = "ok" | "dup";

export interface PendingFrame {
  agentId: number;
  batchId: number;
  seq: number;
  /** When the agent built the batch (ms since the epoch). */
  createdMs: number;
  /** Decoded body with its kind. */
  data: FrameBody;
  /** Bytes of the decoded frame, for memory accounting. */
  bytes: number;
  /** Rows this frame adds to its table. */
  rows: number;
  /** performance.now() at arrival, for ack latency. */
  receivedAt: number;
  transport: string;
  /**
   * Set by a writer that commits this frame apart from the rest of its batch (metrics frames):
   * its outcome, so that a retry of the batch after the rest failed answers it with that and does
   * not write it again.
   */
  committed?: FrameStatus;
  accept(status: FrameStatus): void;
  reject(err: Error): void;
}

export class Batch {
  readonly frames: PendingFrame[] = [];
  rows = 0;
  bytes = 0;
  constructor(readonly openedAt: number) {}

  add(f: PendingFrame): void {
    this.frames.push(f);
    this.rows += f.rows;
    this.bytes += f.bytes;
  }

  accept(statuses: FrameStatus[]): void {
    this.frames.forEach((f, i) => f.accept(statuses[i]!));
  }

  reject(err: Error): void {
    for (const f of this.frames) f.reject(err);
  }
}
