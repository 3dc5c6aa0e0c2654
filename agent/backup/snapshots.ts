/** Reading snapshots back. */
import { BackupError } from "./error.ts";
import { snapshotName, type Repository } from "./repository.ts";
import type { Snapshot } from "./snapshot.ts";

/** Every snapshot, oldest first. A snapshot that fails to open is an error (verify reports it). */
export async function listSnapshots(repo: Repository): Promise<Snapshot[]> {
  const names = await repo.dest.list("snapshots/");
  const snaps = await Promise.all(names.map((n) => repo.getJson<Snapshot>(n)));
  return snaps.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
}

/** A snapshot by id, a unique id prefix, or "latest". */
export async function loadSnapshot(repo: Repository, ref: string): Promise<Snapshot> {
  if (ref === "latest") {
    const all = await listSnapshots(repo);
    if (!all.length) throw new BackupError("not_found", "the repository has no snapshots");
    return all.at(-1)!;
  }
  const names = (await repo.dest.list("snapshots/")).filter((n) => n.slice("snapshots/".length).startsWith(ref));
  if (names.length !== 1) throw new BackupError("not_found", names.length ? `snapshot id ${ref} is ambiguous` : `no snapshot ${ref}`);
  return repo.getJson<Snapshot>(snapshotName(names[0]!.slice("snapshots/".length)));
}
