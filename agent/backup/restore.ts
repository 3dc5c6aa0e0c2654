/**
 * Restore a snapshot (or part of it) under a target directory. Chunks are read from their packs
 * (a local repository: at their offset, by a pool worker, direct.ts; any other destination:
 * whole packs, cached, pack.ts). Every chunk is authenticated
 * (AES-GCM tag), its keyed id recomputed, and the whole file's SHA-256 compared; a file is
 * written to a temporary name and renamed into place only when all of that holds. A damaged
 * or missing chunk is a BackupError naming the file — never silently restored.
 */
import { createHash } from "node:crypto";
import { chmod, lchown, lutimes, mkdir, open, rename, rm, symlink, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import { BackupError } from "./error.ts";
import { loadIndex, PackCache, type Location } from "./pack.ts";
import type { Repository } from "./repository.ts";
import type { Entry } from "./snapshot.ts";
import { loadSnapshot } from "./snapshots.ts";

export interface RestoreOptions {
  /** restore only entries at or below these paths (as backed up) */
  include?: string[];
  /** chunk downloads in flight at once, per file */
  concurrency?: number;
  /** files restored at once */
  files?: number;
}

export interface RestoreResult {
  files: number;
  bytes: number;
}

export async function restore(repo: Repository, ref: string, target: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const snap = await loadSnapshot(repo, ref);
  const inc = opts.include?.map((p) => p.replace(/\/+$/, ""));
  const wanted = (e: Entry) => !inc || inc.some((p) => e.path === p || e.path.startsWith(`${p}/`) || p.startsWith(`${e.path}/`));
  const entries = snap.entries.filter(wanted);
  // Snapshots are authenticated, but a restore still never writes outside its target.
  for (const e of entries) {
    if (!e.path.startsWith("/") || e.path.split("/").some((part) => part === ".." || part === ".")) {
      throw new BackupError("corrupt", `snapshot ${snap.id}: entry path ${JSON.stringify(e.path)} is not a clean absolute path`);
    }
  }
  const out = (p: string) => join(target, p);
  const isRoot = process.getuid?.() === 0;
  const result: RestoreResult = { files: 0, bytes: 0 };
  const direct = repo.directRestore;
  const index = (await loadIndex(repo)).chunks;
  const reader: ChunkReader = { index, packs: new PackCache(repo) };
  if (!direct) for (const e of entries) for (const id of e.chunks ?? []) if (index.has(id)) reader.packs.expect(index.get(id)!.pack);

  const made = new Set<string>();
  const mkdirs = async (dir: string) => {
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    made.add(dir);
  };
  for (const e of entries) if (e.type === "dir") await mkdirs(out(e.path));
  // Consecutive files from different folders: two workers creating and renaming files in one
  // folder wait for each other on its lock (seen in perf on ext4, where creating a file can be slow).
  // (Whole packs from another destination: backup order, which keeps a pack's reads together.)
  const files = direct ? acrossFolders(entries.filter((e) => e.type === "file")) : entries.filter((e) => e.type === "file");
  let nextFile = 0;
  // A local repository: each file is restored whole by one pool worker (direct.ts), the workers
  // reading each chunk at its place in its pack, opening and writing without handing chunks back
  // to this thread.
  // Several files at once: a restore is bound by destination latency and disk, not one CPU.
  const worker = async () => {
    while (nextFile < files.length) {
      const e = files[nextFile++]!;
      await mkdirs(dirname(out(e.path)));
      if (direct) {
        const owner = isRoot ? { uid: e.uid, gid: e.gid } : undefined;
        const ids = e.chunks ?? [];
        const at = ids.map((id) => {
          const where = index.get(id);
          if (!where) throw new BackupError("missing", `${e.path}: chunk ${id} is missing from the repository`);
          return where;
        });
        await repo.restoreFileDirect({ ids, at, file: e.path, temp: `${out(e.path)}.sm-restore`, final: out(e.path), sha256: e.sha256!, mode: e.mode, mtimeMs: e.mtimeMs, owner });
      } else {
        await restoreFile(reader, e, out(e.path), opts.concurrency ?? 2);
        await chmod(out(e.path), e.mode);
        if (isRoot) await lchown(out(e.path), e.uid, e.gid);
        await utimes(out(e.path), new Date(e.mtimeMs), new Date(e.mtimeMs));
      }
      result.files++;
      result.bytes += e.size;
    }
  };
  // 8 files × 2 chunks: small files keep the workers busy, big ones still read ahead; at most 16 chunks in flight
  await Promise.all(Array.from({ length: opts.files ?? 8 }, worker));
  for (const e of entries) {
    if (e.type === "symlink") {
      await mkdir(dirname(out(e.path)), { recursive: true });
      await rm(out(e.path), { force: true });
      await symlink(e.target!, out(e.path));
      if (isRoot) await lchown(out(e.path), e.uid, e.gid);
      await lutimes(out(e.path), new Date(e.mtimeMs), new Date(e.mtimeMs)).catch(() => {});
    }
  }
  // Directories last, deepest first: writing into a directory changes its mtime.
  for (const e of [...entries].reverse()) {
    if (e.type !== "dir") continue;
    await chmod(out(e.path), e.mode);
    if (isRoot) await lchown(out(e.path), e.uid, e.gid);
    await utimes(out(e.path), new Date(e.mtimeMs), new Date(e.mtimeMs));
  }
  return result;
}

/** The index of a repository and a cache of its packs. */
export interface ChunkReader {
  index: Map<string, Location>;
  packs: PackCache;
}

/** Fetches, opens and checks one chunk; errors name the file. */
export async function readChunk(reader: ChunkReader, id: string, file: string): Promise<Uint8Array> {
  const at = reader.index.get(id);
  if (!at) throw new BackupError("missing", `${file}: chunk ${id} is missing from the repository`);
  try {
    return await reader.packs.chunk(id, at);
  } catch (e) {
    if (e instanceof BackupError && e.code === "corrupt" && e.message.endsWith("does not match its id")) throw new BackupError("corrupt", `${file}: chunk ${id} does not match its id`);
    if (e instanceof BackupError && e.code === "not_found") throw new BackupError("missing", `${file}: chunk ${id} is missing from the repository (pack ${at.pack} is gone)`);
    if (e instanceof BackupError && e.code === "corrupt") throw new BackupError("corrupt", `${file}: chunk ${id} is corrupted (${e.message})`);
    throw e;
  }
}

async function restoreFile(reader: ChunkReader, e: Entry, path: string, concurrency: number): Promise<void> {
  const temp = `${path}.sm-restore`;
  const fh = await open(temp, "w", 0o600);
  const hash = createHash("sha256");
  const ids = e.chunks ?? [];
  const pending: Promise<Uint8Array>[] = [];
  let next = 0;
  const ahead = () => {
    while (next < ids.length && pending.length < concurrency) {
      const p = readChunk(reader, ids[next++]!, e.path);
      p.catch(() => {});
      pending.push(p);
    }
  };
  try {
    ahead();
    while (pending.length) {
      const plain = await pending.shift()!;
      ahead();
      hash.update(plain);
      let off = 0;
      while (off < plain.length) off += (await fh.write(plain, off, plain.length - off)).bytesWritten;
    }
    await fh.close();
    if (hash.digest("hex") !== e.sha256) throw new BackupError("corrupt", `${e.path}: restored content does not match the file's SHA-256`);
    await rename(temp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(temp, { force: true });
    throw err;
  }
}

/** The files in round-robin order over their folders (each folder's files in their own order). */
function acrossFolders(files: Entry[]): Entry[] {
  const byDir = new Map<string, Entry[]>();
  for (const e of files) {
    const d = dirname(e.path);
    let list = byDir.get(d);
    if (!list) byDir.set(d, (list = []));
    list.push(e);
  }
  const lists = [...byDir.values()];
  const out: Entry[] = [];
  for (let i = 0; out.length < files.length; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}
