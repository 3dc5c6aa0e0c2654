/**
 * Worker side of the crypto pool (pool.ts): seals chunks (zstd + AES-256-GCM) for a backup and
 * opens and checks them (AES-256-GCM + zstd + keyed id) for a restore, off the main thread.
 * The same functions as the in-thread path (crypto.ts), so the bytes are identical. For a
 * repository in a local directory it also appends the sealed chunk to its own open pack file
 * (packChunk, packClose) and restores whole files (restoreFile): direct.ts.
 */
import { chunkId, seal, unseal } from "./crypto.ts";
import { closePack, restoreFile, sealIntoPack } from "./direct.ts";
import { BackupError } from "./error.ts";
import type { PoolJob, PoolReply } from "./pool.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent<PoolJob>) => {
  const job = ev.data;
  let reply: PoolReply;
  const transfer: ArrayBuffer[] = [];
  try {
    let out: Uint8Array;
    if (job.op === "packChunk") {
      // in the pack file now; a full pack is committed in the background (closePack waits for it)
      self.postMessage({ seq: job.seq, stored: sealIntoPack(job, job.id, job.data) } satisfies PoolReply);
      return;
    }
    if (job.op === "packClose") {
      closePack(job, job.abort).then(
        (r) => self.postMessage({ seq: job.seq, ...r } satisfies PoolReply),
        (e) => self.postMessage(failure(job.seq, e)),
      );
      return;
    }
    if (job.op === "restoreFile") {
      restoreFile(job);
      self.postMessage({ seq: job.seq } satisfies PoolReply);
      return;
    }
    if (job.op === "seal") {
      out = seal(job.key, job.aad, job.data, job.compress, job.level);
    } else {
      out = unseal(job.key, job.aad, job.data);
      if (job.idKey && chunkId(job.idKey, out) !== job.id) throw new BackupError("corrupt", `${job.aad}: content does not match its id`);
    }
    // Cloning a view would copy its whole underlying buffer: move exactly the result instead.
    if (out.byteOffset !== 0 || out.byteLength !== out.buffer.byteLength) out = out.slice();
    transfer.push(out.buffer as ArrayBuffer);
    reply = { seq: job.seq, out };
  } catch (e) {
    reply = failure(job.seq, e);
  }
  self.postMessage(reply, transfer);
};

function failure(seq: number, e: unknown): PoolReply {
  return { seq, error: { code: e instanceof BackupError ? e.code : null, message: e instanceof Error ? e.message : String(e) } };
}

self.postMessage({ seq: -1, ready: true } satisfies PoolReply);
