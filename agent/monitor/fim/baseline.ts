/**
 * The FIM baseline: one row per watched path in Monitor's local SQLite (bun:sqlite), holding
 * what a change is compared against: type, SHA-256, size, mode, owner, group, inode, mtime.
 */
import { Database } from "bun:sqlite";

export interface FileFacts {
  type: "file" | "dir" | "link" | "other";
  sha256: string | null; // files only; null when unreadable or over the hash limit
  size: number;
  mode: number;
  uid: number;
  gid: number;
  ino: number;
  mtimeMs: number;
  target?: string; // symlinks
}

export interface Baseline {
  get(path: string): FileFacts | undefined;
  put(path: string, f: FileFacts): void;
  delete(path: string): void;
  count(): number;
  /** Paths under a prefix (dir + "/"), for deletions found by a rescan. */
  pathsUnder(prefix: string): string[];
  transaction(fn: () => void): void;
  close(): void;
}

export function openBaseline(file: string): Baseline {
  const db = new Database(file, { create: true });
  db.exec("pragma journal_mode = wal; pragma synchronous = normal;");
  db.exec(`create table if not exists fim_baseline (
    path text primary key, type text not null, sha256 text, size integer not null, mode integer not null,
    uid integer not null, gid integer not null, ino integer not null, mtime_ms real not null, target text)`);
  const get = db.query("select * from fim_baseline where path = ?1");
  const put = db.query(`insert into fim_baseline (path, type, sha256, size, mode, uid, gid, ino, mtime_ms, target)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    on conflict (path) do update set type = ?2, sha256 = ?3, size = ?4, mode = ?5, uid = ?6, gid = ?7, ino = ?8, mtime_ms = ?9, target = ?10`);
  const del = db.query("delete from fim_baseline where path = ?1");
  const count = db.query("select count(*) as n from fim_baseline");
  const under = db.query("select path from fim_baseline where path > ?1 and path < ?2");
  return {
    get(path) {
      const r = get.get(path) as Record<string, any> | null;
      if (!r) return undefined;
      return { type: r.type, sha256: r.sha256, size: r.size, mode: r.mode, uid: r.uid, gid: r.gid, ino: r.ino, mtimeMs: r.mtime_ms, ...(r.target !== null ? { target: r.target } : {}) };
    },
    put(path, f) {
      put.run(path, f.type, f.sha256, f.size, f.mode, f.uid, f.gid, f.ino, f.mtimeMs, f.target ?? null);
    },
    delete(path) {
      del.run(path);
    },
    count: () => (count.get() as { n: number }).n,
    pathsUnder(prefix) {
      // "/" sorts just after "." and before "0": prefix + "/" .. prefix + "0" is the subtree
      return (under.all(prefix + "/", prefix + "0") as Array<{ path: string }>).map((r) => r.path);
    },
    transaction(fn) {
      db.transaction(fn)();
    },
    close: () => db.close(),
  };
}
