/**
 * Reads back everything: every pack is fetched whole and every chunk the index places in it is
 * authenticated, decompressed and its keyed id recomputed; each snapshot must open and every
 * chunk it references must be indexed in a pack that holds it intact. Packs no index names
 * (left by a cut-off run) are not errors: prune removes them.
 */
import { BackupError } from "./error.ts";
import { loadIndex, openChunk, packName } from "./pack.ts";
import type { Repository } from "./repository.ts";
import type { Snapshot } from "./snapshot.ts";

export interface VerifyResult {
  ok: boolean;
  /** chunks checked */
  chunks: number;
  /** packs read */
  packs: number;
  /** packs no index names (garbage of an interrupted run, for prune) */
  unindexed: number;
  /** packs an index names that the destination lacks: their chunks count as missing unless another pack holds them */
  missingPacks: number;
  snapshots: number;
  /** one line per problem: the object and what is wrong (and which files it hurts) */
  errors: string[];
}

export async function verify(repo: Repository, opts: { concurrency?: number } = {}): Promise<VerifyResult> {
  const errors: string[] = [];
  const idx = await loadIndex(repo);
  const good = new Set<string>();
  const bad = new Set<string>();
  // every pack the index names, with its chunks (a pack named twice is read once)
  const byPack = new Map<string, Map<string, [number, number]>>();
  for (const { entry } of idx.packs) {
    let m = byPack.get(entry.pack);
    if (!m) byPack.set(entry.pack, (m = new Map()));
    for (const [id, offset, length] of entry.chunks) m.set(`${id}@${offset}`, [offset, length]);
  }
  let chunks = 0;
  let packs = 0;
  let missingPacks = 0;
  const queue = [...byPack.keys()];
  const worker = async () => {
    for (let pack = queue.pop(); pack; pack = queue.pop()) {
      const entries = byPack.get(pack)!;
      let data: Uint8Array;
      try {
        data = await repo.dest.get(packName(pack));
        packs++;
      } catch (e) {
        if (!(e instanceof BackupError) || e.code !== "not_found") throw e;
        missingPacks++; // what a snapshot needs from it is reported below, per file
        continue;
      }
      await Promise.all(
        [...entries].map(async ([key, [offset, length]]) => {
          const id = key.slice(0, key.indexOf("@"));
          chunks++;
          try {
            await openChunk(repo, id, data, { pack, offset, length }, true);
            good.add(id);
          } catch (e) {
            if (!(e instanceof BackupError)) throw e;
            bad.add(id);
            errors.push(`pack ${pack}: ${e.message}`);
          }
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  const unindexed = [...idx.present].filter((p) => !byPack.has(p)).length;

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
        if (good.has(id)) continue;
        if (bad.has(id)) errors.push(`snapshot ${snap.id}: ${entry.path}: chunk ${id} is corrupted`);
        else errors.push(`snapshot ${snap.id}: ${entry.path}: chunk ${id} is missing`);
      }
    }
  }
  return { ok: errors.length === 0, chunks, packs, unindexed, missingPacks, snapshots: snapNames.length, errors };
}
