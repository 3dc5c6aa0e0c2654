/**
 * The local-directory path of the worker pool (pool.ts, seal-worker.ts): when the repository is
 * a LocalDestination, a worker writes the chunk it sealed (backup) and restores a whole file
 * (restore) itself, with blocking calls, instead of handing bytes back to the calling thread and
 * doing the file work there through the I/O thread pool. Same objects, same checks, same errors
 * as the general path (backup.ts, restore.ts); only fewer copies between threads and fewer trips
 * through the event loop per chunk.
 */
import { createHash } from "node:crypto";
import { closeSync, fchmodSync, fchownSync, fstatSync, futimesSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { chunkId, sealParts, unseal } from "./crypto.ts";
import { BackupError } from "./error.ts";
import { LocalDestination } from "./local.ts";

export interface SealPutJob {
  root: string;
  fsync: boolean;
  key: Uint8Array;
  /** the object's name, also the sealing's associated data */
  aad: string;
  compress: boolean;
  level: number;
}

export interface RestoreFileJob {
  root: string;
  key: Uint8Array;
  idKey: Uint8Array;
  /** the chunk ids of the file, in order */
  ids: string[];
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

/** `data/<first two hex digits>/<id>`, as repository.ts' chunkName (not imported: the worker stays small). */
const chunkName = (id: string) => `data/${id.slice(0, 2)}/${id}`;

const dests = new Map<string, LocalDestination>();
function dest(root: string, fsync: boolean): LocalDestination {
  const k = `${fsync ? 1 : 0}${root}`;
  let d = dests.get(k);
  if (!d) dests.set(k, (d = new LocalDestination(root, fsync)));
  return d;
}

/**
 * Seals `plain` and stores it under `job.aad`; returns the sealed size. Sealing is done when
 * this returns its promise (the caller may reuse `plain`); the promise waits for the fsync.
 */
export async function sealPut(job: SealPutJob, plain: Uint8Array): Promise<number> {
  const parts = sealParts(job.key, job.aad, plain, job.compress, job.level);
  await dest(job.root, job.fsync).putDirect(job.aad, parts);
  return parts.reduce((n, p) => n + p.length, 0);
}

/** One buffer per thread for sealed objects read from disk: nothing keeps a view of it (unseal copies out). */
let scratch = new Uint8Array(1 << 20);

function readObject(path: string): Uint8Array | null {
  let fd;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    const size = fstatSync(fd).size;
    if (scratch.length < size) scratch = new Uint8Array(Math.max(size, scratch.length * 2));
    let off = 0;
    while (off < size) {
      const n = readSync(fd, scratch, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return scratch.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/**
 * Restores one file (content, mode, mtime, owner): every chunk read, authenticated, its keyed id recomputed, the
 * whole file's SHA-256 compared, written to `temp` and renamed to `final` only when all holds
 * (the temp file is removed otherwise). Errors name the file, as restore.ts' do.
 */
export function restoreFile(job: RestoreFileJob): void {
  const local = dest(job.root, false);
  let fd = openSync(job.temp, "w", 0o600);
  try {
    const hash = createHash("sha256");
    for (const id of job.ids) {
      const name = chunkName(id);
      const sealed = readObject(local.path(name));
      if (!sealed) throw new BackupError("missing", `${job.file}: chunk ${id} is missing from the repository`);
      let plain: Uint8Array;
      try {
        plain = unseal(job.key, name, sealed);
      } catch (e) {
        if (e instanceof BackupError && e.code === "corrupt") throw new BackupError("corrupt", `${job.file}: chunk ${id} is corrupted (${e.message})`);
        throw e;
      }
      if (chunkId(job.idKey, plain) !== id) throw new BackupError("corrupt", `${job.file}: chunk ${id} does not match its id`);
      hash.update(plain);
      let off = 0;
      while (off < plain.length) off += writeSync(fd, plain, off, plain.length - off);
    }
    if (hash.digest("hex") !== job.sha256) throw new BackupError("corrupt", `${job.file}: restored content does not match the file's SHA-256`);
    fchmodSync(fd, job.mode);
    if (job.owner) fchownSync(fd, job.owner.uid, job.owner.gid);
    const mtime = new Date(job.mtimeMs);
    futimesSync(fd, mtime, mtime);
    closeSync(fd);
    fd = -1;
    renameSync(job.temp, job.final);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(job.temp, { force: true });
    throw e;
  }
}
