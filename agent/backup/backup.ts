/**
 * One backup run: walk the paths, chunk every changed file, upload the chunks the repository
 * does not have yet, then write the snapshot — last, so a run cut off at any point leaves only
 * chunks nothing references, which the next run reuses.
 */
import { createHash, randomBytes } from "node:crypto";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Glob } from "bun";
import { chunkId } from "./crypto.ts";
import { Lock } from "./lock.ts";
import { chunkIdOf, chunkName, snapshotName, thisHost, type Repository } from "./repository.ts";
import type { Entry, Snapshot } from "./snapshot.ts";
import { listSnapshots } from "./snapshots.ts";

export interface BackupOptions {
  excludes?: string[];
  host?: string;
  /** chunks being sealed or uploaded at once */
  concurrency?: number;
  /** plaintext bytes of those chunks held in memory at once, at most (one chunk may exceed it) */
  inflightBytes?: number;
  /** called after each chunk upload (tests use it to stop a run midway) */
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
  const known = new Set((await repo.dest.list("data/")).map(chunkIdOf));

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
  const direct = repo.direct;
  const upload = async (id: string, plain: Uint8Array) => {
    const name = chunkName(id);
    while (inflight.size >= limit || (inflight.size > 0 && inflightBytes + plain.length > maxBytes)) await Promise.race(inflight);
    const size = plain.length;
    inflightBytes += size;
    // A local repository: the worker seals and writes the object itself (direct.ts).
    const stored = direct
      ? repo.sealPutAsync(name, plain).then((n) => {
          stats.storedBytes += n;
        })
      : repo.sealObjectAsync(name, plain).then((sealed) => {
          stats.storedBytes += sealed.length;
          return repo.dest.put(name, sealed);
        });
    const p = stored.then(() => {
        inflight.delete(p);
        inflightBytes -= size;
        opts.onChunk?.(++uploaded);
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

  for (const root of roots) await visit(root);
  await Promise.all(inflight);

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
