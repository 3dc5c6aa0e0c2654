/** What a snapshot object holds (sealed JSON at snapshots/<id>, written last by a backup). */
export interface Entry {
  /** absolute path as backed up */
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  /** symlink target */
  target?: string;
  /** chunk ids in order (files) */
  chunks?: string[];
  /** SHA-256 of the whole content, hex (files) */
  sha256?: string;
  /** inode and ctime: with size and mtime, what lets the next run skip reading an unchanged file */
  ino?: number;
  ctimeMs?: number;
}

export interface Snapshot {
  version: 1;
  id: string;
  time: string;
  host: string;
  paths: string[];
  /** the snapshot this run compared against, if any */
  parent?: string;
  entries: Entry[];
  stats: { files: number; bytes: number; newChunks: number; newBytes: number; storedBytes: number };
}
