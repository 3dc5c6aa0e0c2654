/**
 * The pack format's shapes and names (docs/backup-format.md), shared by the engine (pack.ts,
 * repository.ts), the pool (pool.ts) and its workers' local path (direct.ts). It imports nothing,
 * so the worker stays small and the modules that meet here do not import each other.
 */

export interface Location {
  pack: string;
  offset: number;
  length: number;
}

/** One pack's table of contents: [chunk id, offset, length] per chunk. */
export interface PackEntry {
  pack: string;
  chunks: [string, number, number][];
}

/** What an index object holds. */
export interface IndexFile {
  version: 1;
  packs: PackEntry[];
}

export const chunkAad = (id: string) => `chunk/${id}`;
export const packName = (pack: string) => `data/${pack.slice(0, 2)}/${pack}`;

/** One backup run's packs in a local repository (direct.ts). */
export interface PackJob {
  /** the run (each run has its own open pack per worker) */
  run: string;
  root: string;
  fsync: boolean;
  key: Uint8Array;
  level: number;
  packSize: number;
}

export interface RestoreFileJob {
  root: string;
  key: Uint8Array;
  /** the chunk ids of the file, in order */
  ids: string[];
  /** where each of them is (same order) */
  at: Location[];
  /** the file's path as backed up (for error messages) */
  file: string;
  /** written here, then renamed to `final` once every check passed */
  temp: string;
  final: string;
  sha256: string;
  /** set on the file before it is renamed into place (owner only when restoring as root) */
  mode: number;
  mtimeMs: number;
  owner?: { uid: number; gid: number };
}
