/**
 * The local-directory path of the worker pool (pool.ts, seal-worker.ts): when the repository is
 * a LocalDestination, a worker writes the chunk it sealed (backup) and restores a whole file
 * (restore) itself, with blocking calls, instead of handing bytes back to the calling thread and
 * doing the file work there through the I/O thread pool. Same objects, same checks, same errors
 * as the general path (backup.ts, restore.ts); only fewer copies between threads and fewer trips
 * through the event loop per chunk.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fchmodSync, fchownSync, futimesSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { sealParts, unseal } from "./crypto.ts";
import { BackupError } from "./error.ts";
import { LocalDestination, writeAll } from "./local.ts";
import { chunkAad, packName, type IndexFile, type PackEntry, type PackJob, type RestoreFileJob } from "./pack-format.ts";

export type { PackJob, RestoreFileJob };

const newId = () => randomBytes(32).toString("hex");

const dests = new Map<string, LocalDestination>();
function dest(root: string, fsync: boolean): LocalDestination {
  const k = `${fsync ? 1 : 0}${root}`;
  let d = dests.get(k);
  if (!d) dests.set(k, (d = new LocalDestination(root, fsync)));
  return d;
}

interface OpenPack {
  file: { fd: number; temp: string; final: string };
  entry: PackEntry;
  size: number;
}
interface RunPacks {
  open: OpenPack | null;
  /** packs being fsynced, renamed and indexed */
  closing: Set<Promise<void>>;
  /** what this thread stored and indexed for the run */
  written: PackEntry[];
  indexes: string[];
  error: unknown;
}
/** This thread's packs, per run. */
const runs = new Map<string, RunPacks>();

/**
 * Seals chunk `id` and appends it to this thread's open pack of the run (a new one when none
 * is open); returns the sealed size. A pack that reaches `packSize` is closed in the background
 * (fsync, rename, then its index object: commitPack) while this thread seals the next chunks.
 * The chunk is in the pack file (page cache) when this returns; durable only after `closePack`.
 */
export function sealIntoPack(job: PackJob, id: string, plain: Uint8Array): number {
  let r = runs.get(job.run);
  if (!r) runs.set(job.run, (r = { open: null, closing: new Set(), written: [], indexes: [], error: null }));
  if (r.error) throw r.error;
  const d = dest(job.root, job.fsync);
  if (!r.open) {
    const pack = newId();
    r.open = { file: d.openTemp(packName(pack)), entry: { pack, chunks: [] }, size: 0 };
  }
  const open = r.open;
  const parts = sealParts(job.key, chunkAad(id), plain, true, job.level);
  let n: number;
  try {
    n = writeAll(open.file.fd, parts);
  } catch (e) {
    d.abandonFile(open.file);
    r.open = null;
    throw e;
  }
  open.entry.chunks.push([id, open.size, n]);
  open.size += n;
  if (open.size >= job.packSize) {
    r.open = null;
    const run = r;
    const p = commitPack(job, d, open, run).catch((e) => {
      run.error ??= e;
    });
    run.closing.add(p);
    void p.then(() => run.closing.delete(p));
  }
  return n;
}

/**
 * fsync + rename of a pack, then (`indexed`) its index object: a pack is whole before an index
 * names it. The last pack of a run goes without: the caller's merged index names it.
 */
async function commitPack(job: PackJob, d: LocalDestination, open: OpenPack, run: RunPacks, indexed = true): Promise<void> {
  await d.commitFile(open.file);
  run.written.push(open.entry);
  if (!indexed) return;
  const name = `index/${newId()}`;
  const index: IndexFile = { version: 1, packs: [open.entry] };
  await d.putDirect(name, sealParts(job.key, name, new TextEncoder().encode(JSON.stringify(index)), true, job.level));
  run.indexes.push(name);
}

/**
 * Ends this thread's part of a run: the open pack is committed without an index object (or,
 * with `abort`, removed), the background commits are awaited; returns every pack stored (the
 * caller writes the one index that names them all) and the per-pack index objects written. A
 * failure of any pack of the run is thrown here.
 */
export async function closePack(job: PackJob, abort: boolean): Promise<{ packs: PackEntry[]; indexes: string[] }> {
  const r = runs.get(job.run);
  if (!r) return { packs: [], indexes: [] };
  runs.delete(job.run);
  const d = dest(job.root, job.fsync);
  if (r.open && (abort || r.error)) d.abandonFile(r.open.file);
  else if (r.open) r.closing.add(commitPack(job, d, r.open, r, false).catch((e) => void (r.error ??= e)));
  r.open = null;
  await Promise.all(r.closing);
  if (r.error && !abort) throw r.error;
  return { packs: r.written, indexes: r.indexes };
}

/** One buffer per thread for sealed objects read from disk: nothing keeps a view of it (unseal copies out). */
let scratch = new Uint8Array(1 << 20);

/** Reads `length` bytes at `offset` of an open pack into the thread's scratch buffer; fewer at its end. */
function readAt(fd: number, offset: number, length: number): Uint8Array {
  if (scratch.length < length) scratch = new Uint8Array(Math.max(length, scratch.length * 2));
  let off = 0;
  while (off < length) {
    const n = readSync(fd, scratch, off, length - off, offset + off);
    if (n === 0) break;
    off += n;
  }
  return scratch.subarray(0, off);
}

/**
 * Restores one file (content, mode, mtime, owner): every chunk read, authenticated, its keyed id recomputed, the
 * whole file's SHA-256 compared, written to `temp` and renamed to `final` only when all holds
 * (the temp file is removed otherwise). Errors name the file, as restore.ts' do.
 */
export function restoreFile(job: RestoreFileJob): void {
  const local = dest(job.root, false);
  const packs = new Map<string, number>();
  const packFd = (pack: string): number | null => {
    let fd = packs.get(pack);
    if (fd !== undefined) return fd;
    try {
      fd = openSync(local.path(packName(pack)), "r");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    packs.set(pack, fd);
    return fd;
  };
  let fd = openSync(job.temp, "w", 0o600);
  try {
    const hash = createHash("sha256");
    for (let i = 0; i < job.ids.length; i++) {
      const id = job.ids[i]!;
      const at = job.at[i]!;
      const pfd = packFd(at.pack);
      if (pfd === null) throw new BackupError("missing", `${job.file}: chunk ${id} is missing from the repository (pack ${at.pack} is gone)`);
      const sealed = readAt(pfd, at.offset, at.length);
      if (sealed.length < at.length) throw new BackupError("corrupt", `${job.file}: chunk ${id} is corrupted (${chunkAad(id)}: pack ${at.pack} is too short for it (truncated))`);
      let plain: Uint8Array;
      try {
        plain = unseal(job.key, chunkAad(id), sealed);
      } catch (e) {
        if (e instanceof BackupError && e.code === "corrupt") throw new BackupError("corrupt", `${job.file}: chunk ${id} is corrupted (${e.message})`);
        throw e;
      }
      // The keyed id is not recomputed here (verify does): the GCM tag already binds the sealed
      // chunk to its id (associated data chunk/<id>), and content sealed under a wrong id would
      // fail the file's SHA-256 below. One hash pass less per byte restored.
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
  } finally {
    for (const p of packs.values()) closeSync(p);
  }
}
