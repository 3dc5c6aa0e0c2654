/**
 * Retention. `forget` deletes the snapshots a policy does not keep; `prune` then deletes the
 * chunks no remaining snapshot references (mark and sweep, under an exclusive lock so no
 * backup is reusing a chunk it saw earlier). Snapshots go first, chunks after: a prune cut off
 * anywhere leaves every remaining snapshot whole, and running it again finishes the sweep.
 */
import { Lock } from "./lock.ts";
import { chunkIdOf, snapshotName, type Repository } from "./repository.ts";
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

export async function prune(repo: Repository): Promise<{ referenced: number; deleted: number }> {
  const lock = await Lock.take(repo, true);
  try {
    const referenced = new Set<string>();
    for (const s of await listSnapshots(repo)) for (const e of s.entries) for (const c of e.chunks ?? []) referenced.add(c);
    let deleted = 0;
    for (const name of await repo.dest.list("data/")) {
      if (referenced.has(chunkIdOf(name))) continue;
      await repo.dest.delete(name);
      deleted++;
    }
    return { referenced: referenced.size, deleted };
  } finally {
    await lock.release();
  }
}
