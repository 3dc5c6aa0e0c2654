/**
 * Pack files and their index (docs/backup-format.md). Chunks are sealed one by one (each its own
 * AES-256-GCM object, associated data `chunk/<id>`) and appended into packs of about
 * `config.packSize` bytes stored at `data/<xx>/<pack id>`; an index object (`index/<id>`, sealed
 * JSON) tells which chunk lies where. A pack is written before any index names it, and an index
 * before any snapshot needs it: a pack no index names is garbage (prune removes it), never
 * referenced. Sealed chunks need no pack-level key, so prune can copy them into a new pack as
 * they are.
 */
import { randomBytes } from "node:crypto";
import { chunkId, unseal } from "./crypto.ts";
import { BackupError } from "./error.ts";
import { cryptoPool } from "./pool.ts";
import type { Repository } from "./repository.ts";
import { chunkAad, packName, type IndexFile, type Location, type PackEntry } from "./pack-format.ts";

export { chunkAad, packName, type IndexFile, type Location, type PackEntry };

export const packIdOf = (name: string) => name.slice(name.lastIndexOf("/") + 1);
export const indexName = (id: string) => `index/${id}`;
const newId = () => randomBytes(32).toString("hex");

export interface LoadedIndex {
  /** chunk id → where it is (the first pack that still exists and holds it) */
  chunks: Map<string, Location>;
  /** every pack entry of every index object, with the object it came from */
  packs: { index: string; entry: PackEntry }[];
  /** index object names read */
  indexNames: string[];
  /** pack names present at the destination */
  present: Set<string>;
}

/**
 * Reads every index object. Chunks in packs the destination no longer has are left out of
 * `chunks` (so a backup uploads them again; verify reports them missing).
 */
export async function loadIndex(repo: Repository, concurrency = 8): Promise<LoadedIndex> {
  const [indexNames, packList] = await Promise.all([repo.dest.list("index/"), repo.dest.list("data/")]);
  const present = new Set(packList.map(packIdOf));
  const files: { index: string; file: IndexFile }[] = [];
  const queue = [...indexNames];
  const worker = async () => {
    for (let name = queue.pop(); name; name = queue.pop()) files.push({ index: name, file: await repo.getJson<IndexFile>(name) });
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  files.sort((a, b) => a.index.localeCompare(b.index));
  const chunks = new Map<string, Location>();
  const packs: LoadedIndex["packs"] = [];
  for (const { index, file } of files) {
    if (file.version !== 1) throw new BackupError("bad_format", `${index}: index format ${file.version} is not supported`);
    for (const entry of file.packs) {
      packs.push({ index, entry });
      if (!present.has(entry.pack)) continue;
      for (const [id, offset, length] of entry.chunks) if (!chunks.has(id)) chunks.set(id, { pack: entry.pack, offset, length });
    }
  }
  return { chunks, packs, indexNames, present };
}

/**
 * Collects sealed chunks into packs. `add` appends one; when the pack reaches the target size it
 * is uploaded (at most `parallel` packs at once), then its index object. `finish` uploads the
 * rest and returns the pack entries written.
 */
export class PackWriter {
  private blobs: Uint8Array[] = [];
  private size = 0;
  private entries: [string, number, number][] = [];
  private readonly puts = new Set<Promise<void>>();
  readonly written: PackEntry[] = [];
  readonly indexes: string[] = [];

  constructor(
    private readonly repo: Repository,
    private readonly parallel = 2,
  ) {}

  /** Appends a sealed chunk; the returned promise settles when it is safe to go on (its pack, if it closed one, is uploaded). */
  async add(id: string, sealed: Uint8Array): Promise<void> {
    this.entries.push([id, this.size, sealed.length]);
    this.blobs.push(sealed);
    this.size += sealed.length;
    if (this.size >= this.repo.config.packSize) await this.flush();
  }

  /** Uploads the open pack (if any) and its index object. */
  async flush(): Promise<void> {
    if (!this.entries.length) return;
    const blobs = this.blobs;
    const entry: PackEntry = { pack: newId(), chunks: this.entries };
    this.blobs = [];
    this.entries = [];
    this.size = 0;
    while (this.puts.size >= this.parallel) await Promise.race(this.puts).catch(() => {});
    const p = (async () => {
      await this.repo.dest.put(packName(entry.pack), Buffer.concat(blobs));
      // the pack is whole at the destination before an index names it
      const name = indexName(newId());
      await this.repo.putJson(name, { version: 1, packs: [entry] } satisfies IndexFile);
      this.written.push(entry);
      this.indexes.push(name);
    })();
    this.puts.add(p);
    try {
      await p;
    } finally {
      this.puts.delete(p);
    }
  }

  /**
   * Flushes, waits for every upload, then (more than one index object written) replaces this
   * writer's index objects by one: written first, the small ones deleted after, so a cut here
   * leaves duplicates (harmless), never a pack without index.
   */
  async finish(): Promise<PackEntry[]> {
    await this.flush();
    await Promise.all(this.puts);
    await mergeIndexes(this.repo, this.written, this.indexes);
    return this.written;
  }
}

/**
 * Replaces a run's index objects (one per pack) by one naming all its packs (`packs`, which may
 * hold packs no index object names yet: a local run's last ones): written first, the small ones
 * deleted after, so a cut here leaves duplicates (harmless). Nothing to do when one index object
 * already names every pack.
 */
export async function mergeIndexes(repo: Repository, packs: PackEntry[], indexes: string[]): Promise<void> {
  if (indexes.length === packs.length && indexes.length < 2) return;
  await repo.putJson(indexName(newId()), { version: 1, packs } satisfies IndexFile);
  for (const n of indexes) await repo.dest.delete(n);
}

/**
 * Whole packs read once and shared by the chunks in them (destinations have no ranged reads):
 * concurrent requests for one pack share one download, and the next pack is read ahead. A pack leaves the cache when the last
 * chunk read announced for it (`expect`) has been taken, or, least recently used, when more
 * than `keep` are held.
 */
export class PackCache {
  private readonly cache = new Map<string, Promise<Uint8Array>>();
  private readonly left = new Map<string, number>();
  /** packs in the order of their first announced read, for reading the next one ahead */
  private readonly order: string[] = [];
  private readonly position = new Map<string, number>();

  constructor(
    private readonly repo: Repository,
    private readonly keep = 10,
  ) {}

  /** Announces one more read of a chunk in `pack`. */
  expect(pack: string): void {
    this.left.set(pack, (this.left.get(pack) ?? 0) + 1);
    if (!this.position.has(pack)) {
      this.position.set(pack, this.order.length);
      this.order.push(pack);
    }
  }

  pack(pack: string, ahead = true): Promise<Uint8Array> {
    let p = this.cache.get(pack);
    if (p) {
      this.cache.delete(pack); // most recently used goes last
      this.cache.set(pack, p);
      return p;
    }
    p = this.repo.dest.get(packName(pack));
    p.catch(() => this.cache.delete(pack));
    this.cache.set(pack, p);
    while (this.cache.size > this.keep) this.cache.delete(this.cache.keys().next().value!);
    // a pack read for the first time: the next one in announced order is read meanwhile
    const next = ahead ? this.order[(this.position.get(pack) ?? -2) + 1] : undefined;
    if (next && !this.cache.has(next) && this.left.has(next)) this.pack(next, false).catch(() => {});
    return p;
  }

  /** Fetches, opens (worker pool) and checks one chunk: BackupError "corrupt" / "not_found". */
  async chunk(id: string, at: Location): Promise<Uint8Array> {
    const pack = await this.pack(at.pack);
    const n = (this.left.get(at.pack) ?? 0) - 1;
    if (n === 0) {
      this.left.delete(at.pack);
      this.cache.delete(at.pack);
    } else if (n > 0) this.left.set(at.pack, n);
    return openChunk(this.repo, id, pack, at, true);
  }
}

/** Opens the chunk `id` at `at` inside `pack` and checks its keyed id. */
export function openChunk(repo: Repository, id: string, pack: Uint8Array, at: Location, async: true): Promise<Uint8Array>;
export function openChunk(repo: Repository, id: string, pack: Uint8Array, at: Location, async: false): Uint8Array;
export function openChunk(repo: Repository, id: string, pack: Uint8Array, at: Location, async: boolean): Promise<Uint8Array> | Uint8Array {
  const aad = chunkAad(id);
  if (at.offset < 0 || at.length <= 0 || at.offset + at.length > pack.length) {
    const e = new BackupError("corrupt", `${aad}: pack ${at.pack} is too short for it (truncated)`);
    if (async) return Promise.reject(e);
    throw e;
  }
  const sealed = pack.subarray(at.offset, at.offset + at.length);
  const check = (data: Uint8Array) => {
    const plain = unseal(repo.encKey, aad, data);
    if (chunkId(repo.idKey, plain) !== id) throw new BackupError("corrupt", `${aad}: content does not match its id`);
    return plain;
  };
  if (!async) return check(sealed);
  return cryptoPool().run({ op: "open", key: repo.encKey, aad, data: sealed, idKey: repo.idKey, id }, check);
}
