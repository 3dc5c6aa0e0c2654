/**
 * One backup run: walk the paths, chunk every changed file, seal the chunks the repository does
 * not have yet into packs (pack.ts; each pack is followed by its index object), then write the
 * snapshot — last, so a run cut off at any point leaves only indexed chunks nothing references
 * (the next run reuses them) and at most the packs being stored without index (garbage).
 */
import { createHash, randomBytes } from "node:crypto";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Glob } from "bun";
import { chunkId } from "./crypto.ts";
import { Lock } from "./lock.ts";
import { chunkAad, loadIndex, mergeIndexes, PackWriter } from "./pack.ts";
import { snapshotName, thisHost, type Repository } from "./repository.ts";
import type { Entry, Snapshot } from "./snapshot.ts";
import { listSnapshots } from "./snapshots.ts";

export interface BackupOptions {
  excludes?: string[];
  host?: string;
  /** chunks being sealed or uploaded at once */
  concurrency?: number;
  /** plaintext bytes of those chunks held in memory at once, at most (one chunk may exceed it) */
  inflightBytes?: number;
  /** called after each new chunk is sealed into a pack (tests use it to stop a run midway) */
  onChunk?: (uploaded: number) => void;
}

export async function backup(repo: Repository, paths: string[], opts: BackupOptions = {}): Promise<Snapshot> {
  const lock = await Lock.take(repo, false);
  try {
    return await run(repo, paths, opts);
  } finally {
    await lock.release();
  }
}

async function run(repo: Repository, paths: string[], opts: BackupOptions): Promise<Snapshot> {
  const host = opts.host ?? thisHost();
  const roots = paths.map((p) => resolve(p));
  const excludes = (opts.excludes ?? []).map((p) => new Glob(p));
  const excluded = (path: string) => excludes.some((g) => g.match(path) || g.match(path.slice(path.lastIndexOf("/") + 1)));
  const known = new Set((await loadIndex(repo)).chunks.keys());

  // The newest snapshot of the same host and paths: unchanged files are taken from it unread.
  const parent = (await listSnapshots(repo)).filter((s) => s.host === host && sameSet(s.paths, roots)).at(-1);
  const previous = new Map<string, Entry>();
  if (parent) for (const e of parent.entries) if (e.type === "file") previous.set(e.path, e);

  const entries: Entry[] = [];
  const stats = { files: 0, bytes: 0, newChunks: 0, newBytes: 0, storedBytes: 0 };
  const limit = opts.concurrency ?? 16;
  const maxBytes = opts.inflightBytes ?? 64 << 20;
  // Sealing (zstd + AES-GCM) runs on the worker pool while this thread reads, chunks and hashes
  // the next pieces; in flight is bounded in count and in bytes.
  const inflight = new Set<Promise<void>>();
  let inflightBytes = 0;
  let uploaded = 0;
  // A local repository: each worker seals chunks into its own open pack file (direct.ts);
  // otherwise the workers seal and this thread collects the sealed chunks into packs (pack.ts).
  const direct = repo.direct;
  const packRun = randomBytes(16).toString("hex");
  const packs = direct ? null : new PackWriter(repo);
  const upload = async (id: string, plain: Uint8Array) => {
    while (inflight.size >= limit || (inflight.size > 0 && inflightBytes + plain.length > maxBytes)) await Promise.race(inflight);
    const size = plain.length;
    inflightBytes += size;
    const sealed = packs
      ? repo.sealObjectAsync(chunkAad(id), plain).then((sealed) => {
          stats.storedBytes += sealed.length;
          inflightBytes -= size;
          opts.onChunk?.(++uploaded);
          // the promise of the chunk that closes a pack holds its slot until the pack is uploaded
          return packs.add(id, sealed);
        })
      : repo.sealIntoPackAsync(packRun, id, plain).then((n) => {
          stats.storedBytes += n;
          inflightBytes -= size;
          opts.onChunk?.(++uploaded);
        });
    const p = sealed.then(() => {
      inflight.delete(p);
    });
    inflight.add(p);
    p.catch(() => {});
    // the worker reads `plain` where the chunker read it: its window is not reused until then
    repo.chunker.hold(plain, p);
  };

  const visit = async (path: string): Promise<void> => {
    if (excluded(path)) return;
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // vanished while we walked
      throw e;
    }
    const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs };
    if (st.isSymbolicLink()) {
      entries.push({ ...base, type: "symlink", size: 0, target: await readlink(path) });
    } else if (st.isDirectory()) {
      entries.push({ ...base, type: "dir", size: 0 });
      const names = (await readdir(path)).sort();
      for (const n of names) await visit(join(path, n));
    } else if (st.isFile()) {
      stats.files++;
      const prev = previous.get(path);
      if (prev && prev.size === st.size && prev.mtimeMs === st.mtimeMs && prev.ino === st.ino && prev.ctimeMs === st.ctimeMs && prev.chunks!.every((c) => known.has(c))) {
        entries.push({ ...prev, ...base });
        stats.bytes += st.size;
        return;
      }
      const hash = createHash("sha256");
      const chunks: string[] = [];
      let size = 0;
      for await (const piece of repo.chunker.file(path)) {
        hash.update(piece);
        size += piece.length;
        const id = chunkId(repo.idKey, piece);
        chunks.push(id);
        if (known.has(id)) continue;
        known.add(id);
        stats.newChunks++;
        stats.newBytes += piece.length;
        await upload(id, piece);
      }
      stats.bytes += size;
      entries.push({ ...base, type: "file", size, chunks, sha256: hash.digest("hex"), ino: st.ino, ctimeMs: st.ctimeMs });
    }
    // sockets, fifos and devices are not backed up
  };

  try {
    for (const root of roots) await visit(root);
    await Promise.all(inflight);
    if (packs) await packs.finish();
    else {
      // every pack fsynced, in place and indexed before the snapshot names its chunks
      const done = await repo.closePacks(packRun);
      await mergeIndexes(repo, done.packs, done.indexes);
    }
  } catch (e) {
    // nothing may land after the run has failed (and released its lock): uploads settle, open packs go
    await Promise.allSettled(inflight);
    if (!packs) await repo.closePacks(packRun, true).catch(() => {});
    throw e;
  }

  const snap: Snapshot = {
    version: 1,
    id: randomBytes(16).toString("hex"),
    time: new Date().toISOString(),
    host,
    paths: roots,
    ...(parent ? { parent: parent.id } : {}),
    entries,
    stats,
  };
  await repo.putJson(snapshotName(snap.id), snap);
  return snap;
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
