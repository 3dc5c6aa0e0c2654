/**
 * Reads back every object: each chunk is fetched, authenticated, decompressed and its keyed id
 * recomputed; each snapshot must open and every chunk it references must exist.
 */
import { chunkId } from "./crypto.ts";
import { BackupError } from "./error.ts";
import { chunkIdOf, type Repository } from "./repository.ts";
import type { Snapshot } from "./snapshot.ts";

export interface VerifyResult {
  ok: boolean;
  chunks: number;
  snapshots: number;
  /** one line per problem: the object and what is wrong (and which files it hurts) */
  errors: string[];
}

export async function verify(repo: Repository, opts: { concurrency?: number } = {}): Promise<VerifyResult> {
  const errors: string[] = [];
  const chunkNames = await repo.dest.list("data/");
  const present = new Set<string>();
  const bad = new Set<string>();
  const queue = [...chunkNames];
  const worker = async () => {
    for (let name = queue.pop(); name; name = queue.pop()) {
      const id = chunkIdOf(name);
      try {
        const plain = await repo.getObject(name);
        if (chunkId(repo.idKey, plain) !== id) throw new BackupError("corrupt", `${name}: content does not match its id`);
        present.add(id);
      } catch (e) {
        if (!(e instanceof BackupError)) throw e;
        bad.add(id);
        errors.push(e.message);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));

  const snapNames = await repo.dest.list("snapshots/");
  for (const name of snapNames) {
    let snap: Snapshot;
    try {
      snap = await repo.getJson<Snapshot>(name);
    } catch (e) {
      if (!(e instanceof BackupError)) throw e;
      errors.push(e.message);
      continue;
    }
    for (const entry of snap.entries) {
      for (const id of entry.chunks ?? []) {
        if (bad.has(id)) errors.push(`snapshot ${snap.id}: ${entry.path}: chunk ${id} is corrupted`);
        else if (!present.has(id)) errors.push(`snapshot ${snap.id}: ${entry.path}: chunk ${id} is missing`);
      }
    }
  }
  return { ok: errors.length === 0, chunks: chunkNames.length, snapshots: snapNames.length, errors };
}
