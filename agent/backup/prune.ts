/**
 * Retention. `forget` deletes the snapshots a policy does not keep; `prune` then removes the
 * chunks no remaining snapshot references (mark and sweep, under an exclusive lock so no
 * backup is reusing a chunk it saw earlier). Chunks live in packs (pack.ts): a pack none of
 * whose chunks is needed is deleted; a pack mostly dead has its needed chunks copied (sealed,
 * as they are) into a new pack, then is deleted; other packs stay whole. Order: new packs, then
 * one new index of everything kept, then the old index objects, then the dropped packs — a
 * prune cut off anywhere leaves every needed chunk indexed in a pack that exists, and running
 * it again finishes the sweep.
 */
import { BackupError } from "./error.ts";
import { Lock } from "./lock.ts";
import { indexName, loadIndex, packName, PackWriter, type IndexFile, type PackEntry } from "./pack.ts";
import { snapshotName, type Repository } from "./repository.ts";
import { randomBytes } from "node:crypto";
import type { Snapshot } from "./snapshot.ts";
import { listSnapshots } from "./snapshots.ts";

export interface Policy {
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

/** Which snapshots a policy keeps (restic's rule: the newest in each of the N newest days/weeks/months that have one). */
export function applyPolicy(snaps: Snapshot[], policy: Policy): { keep: Snapshot[]; remove: Snapshot[] } {
  const newest = [...snaps].sort((a, b) => b.time.localeCompare(a.time));
  const keep = new Set<string>();
  newest.slice(0, policy.last ?? 0).forEach((s) => keep.add(s.id));
  const bucket = (n: number | undefined, key: (d: Date) => string) => {
    if (!n) return;
    const seen = new Set<string>();
    for (const s of newest) {
      const k = key(new Date(s.time));
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      keep.add(s.id);
    }
  };
  bucket(policy.daily, (d) => d.toISOString().slice(0, 10));
  bucket(policy.weekly, (d) => isoWeek(d));
  bucket(policy.monthly, (d) => d.toISOString().slice(0, 7));
  return { keep: newest.filter((s) => keep.has(s.id)), remove: newest.filter((s) => !keep.has(s.id)) };
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(y, 0, 1)) / 86400000 + 1) / 7);
  return `${y}-W${week}`;
}

export async function forget(repo: Repository, policy: Policy): Promise<{ kept: string[]; removed: string[] }> {
  const { keep, remove } = applyPolicy(await listSnapshots(repo), policy);
  if (!keep.length && remove.length) throw new Error("the policy keeps no snapshot; refusing to forget them all");
  for (const s of remove) await repo.dest.delete(snapshotName(s.id));
  return { kept: keep.map((s) => s.id), removed: remove.map((s) => s.id) };
}

export interface PruneResult {
  /** chunks the remaining snapshots reference */
  referenced: number;
  /** unreferenced chunks removed from the repository */
  deleted: number;
  /** packs deleted (wholly dead, repacked, or never indexed) */
  packsDeleted: number;
  /** mostly-dead packs whose needed chunks were copied into new packs */
  repacked: number;
}

/** A pack whose needed chunks take less than this share of its bytes is repacked. */
const REPACK_BELOW = 0.5;

export async function prune(repo: Repository): Promise<PruneResult> {
  const lock = await Lock.take(repo, true);
  try {
    const referenced = new Set<string>();
    for (const s of await listSnapshots(repo)) for (const e of s.entries) for (const c of e.chunks ?? []) referenced.add(c);
    const idx = await loadIndex(repo);
    // one entry per existing pack (an index may name a pack twice after a cut-off prune)
    const packs = new Map<string, PackEntry>();
    for (const { entry } of idx.packs) if (idx.present.has(entry.pack) && !packs.has(entry.pack)) packs.set(entry.pack, entry);
    // where each needed chunk is kept: idx.chunks (the first existing pack naming it)
    const keepIn = new Map<string, string>();
    for (const id of referenced) {
      const at = idx.chunks.get(id);
      if (at) keepIn.set(id, at.pack);
    }
    const kept: PackEntry[] = [];
    const drop: string[] = [];
    const repack: PackEntry[] = [];
    let deleted = 0;
    for (const entry of packs.values()) {
      const total = entry.chunks.reduce((n, c) => n + c[2], 0);
      const live = entry.chunks.filter(([id]) => keepIn.get(id) === entry.pack);
      const liveBytes = live.reduce((n, c) => n + c[2], 0);
      if (!live.length) {
        drop.push(entry.pack);
        deleted += entry.chunks.filter(([id]) => !referenced.has(id)).length;
      } else if (liveBytes < total * REPACK_BELOW) {
        repack.push({ pack: entry.pack, chunks: live });
        deleted += entry.chunks.filter(([id]) => !referenced.has(id)).length;
      } else kept.push(entry);
    }
    const unindexed = [...idx.present].filter((p) => !packs.has(p));
    // copy the needed chunks of mostly-dead packs, sealed as they are, into new packs
    const writer = new PackWriter(repo, 1);
    for (const entry of repack) {
      const data = await repo.dest.get(packName(entry.pack));
      for (const [id, offset, length] of entry.chunks) {
        if (offset + length > data.length) throw new BackupError("corrupt", `pack ${entry.pack} is too short for chunk ${id}; run verify`);
        await writer.add(id, data.slice(offset, offset + length));
      }
    }
    const fresh = await writer.finish();
    const stale = idx.packs.some(({ entry }) => !idx.present.has(entry.pack));
    if (drop.length || repack.length || stale || idx.indexNames.length > 1) {
      const all = [...kept, ...fresh];
      const name = indexName(randomBytes(32).toString("hex"));
      await repo.putJson(name, { version: 1, packs: all } satisfies IndexFile);
      // the new index covers every kept pack and the fresh ones: the old index objects (and the writer's) go
      for (const n of await repo.dest.list("index/")) if (n !== name) await repo.dest.delete(n);
    }
    let packsDeleted = 0;
    for (const pack of [...drop, ...repack.map((r) => r.pack), ...unindexed]) {
      await repo.dest.delete(packName(pack));
      packsDeleted++;
    }
    return { referenced: referenced.size, deleted, packsDeleted, repacked: repack.length };
  } finally {
    await lock.release();
  }
}
