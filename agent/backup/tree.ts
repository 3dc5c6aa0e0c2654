/**
 * One directory level of a snapshot, for browsing it before a restore: the entries directly
 * under a directory as backed up. The snapshot holds absolute paths (and no entries for the
 * parents of its roots), so a parent that is only implied by deeper paths is listed as a
 * directory too. Reads the snapshot through loadSnapshot (authenticated like every read).
 */
import type { Repository } from "./repository.ts";
import type { Entry } from "./snapshot.ts";
import { loadSnapshot } from "./snapshots.ts";

export interface TreeItem {
  /** absolute path as backed up */
  path: string;
  name: string;
  type: Entry["type"];
  size: number;
  mtimeMs: number | null;
  /** files below it (directories) */
  files: number;
}

export interface TreeLevel {
  snapshot: string;
  time: string;
  /** the directory listed (normalised, no trailing slash but "/") */
  dir: string;
  items: TreeItem[];
  /** more children than `limit` */
  truncated: boolean;
}

/** The children of `dir` among the entries, directories first, then by name; at most `limit`. */
export function treeLevel(entries: readonly Entry[], dir: string, limit = 1000): { items: TreeItem[]; truncated: boolean } {
  const base = dir === "/" ? "" : dir.replace(/\/+$/, "");
  const prefix = `${base}/`;
  const byName = new Map<string, TreeItem>();
  for (const e of entries) {
    if (!e.path.startsWith(prefix) || e.path.length === prefix.length) continue;
    const rest = e.path.slice(prefix.length);
    const slash = rest.indexOf("/");
    const name = slash < 0 ? rest : rest.slice(0, slash);
    let item = byName.get(name);
    if (!item) {
      item = { path: prefix + name, name, type: slash < 0 ? e.type : "dir", size: 0, mtimeMs: null, files: 0 };
      byName.set(name, item);
    }
    if (slash < 0) {
      item.type = e.type;
      item.mtimeMs = e.mtimeMs;
      if (e.type !== "dir") item.size = e.size;
    } else if (e.type === "file") {
      item.size += e.size;
      item.files++;
    }
  }
  const all = [...byName.values()].sort((a, b) => Number(b.type === "dir") - Number(a.type === "dir") || a.name.localeCompare(b.name));
  return { items: all.slice(0, limit), truncated: all.length > limit };
}

/** One level of a snapshot (by id, unique prefix or "latest"). */
export async function listTree(repo: Repository, ref: string, dir: string, limit = 1000): Promise<TreeLevel> {
  const snap = await loadSnapshot(repo, ref);
  const clean = dir === "/" ? "/" : dir.replace(/\/+$/, "");
  return { snapshot: snap.id, time: snap.time, dir: clean, ...treeLevel(snap.entries, clean, limit) };
}
