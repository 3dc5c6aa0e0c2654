/**
 * Pack files (format 2): chunks are written into packs with an index, prune keeps every chunk a
 * snapshot needs (deleting dead packs, repacking mostly-dead ones, keeping mostly-live ones
 * whole), a pack left without index by a cut-off run is garbage, and a chunk damaged inside a
 * pack is reported by verify and refused by restore while its neighbours stay readable.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { backup } from "../../../agent/backup/backup.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { loadIndex, packName } from "../../../agent/backup/pack.ts";
import { cryptoPool } from "../../../agent/backup/pool.ts";
import { forget, prune } from "../../../agent/backup/prune.ts";
import { Repository } from "../../../agent/backup/repository.ts";
import { restore } from "../../../agent/backup/restore.ts";
import { verify } from "../../../agent/backup/verify.ts";
import { chunkFile, describeTree, PASSWORD, TEST_CHUNKER, TEST_SCRYPT, tempDirs } from "./support.ts";

const dir = tempDirs();

async function repoWith(packSize: number) {
  const repoDir = await dir("packs-repo");
  const dest = new LocalDestination(repoDir, false);
  const { repo } = await Repository.init(dest, PASSWORD, { chunker: TEST_CHUNKER, scrypt: TEST_SCRYPT, packSize });
  return { repo, dest, repoDir };
}

/** `n` files of 10 KB random bytes: below the chunker's minimum, so one chunk each, incompressible. */
async function smallFiles(root: string, names: string[]): Promise<void> {
  for (const n of names) await writeFile(join(root, n), randomBytes(10_000));
}
const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, "0")}`);

test("chunks are written into packs of about the configured size, named by an index, contiguous, with one index object per run", async () => {
  const src = await dir("packs-src");
  for (let i = 0; i < 6; i++) await writeFile(join(src, `r${i}.bin`), randomBytes(300_000 + i));
  await writeFile(join(src, "text.txt"), "compressible line\n".repeat(20_000));
  const packSize = 200 * 1024;
  const { repo, dest } = await repoWith(packSize);
  const snap = await backup(repo, [src]);
  const idx = await loadIndex(repo);
  const packs = await dest.list("data/");
  expect(snap.stats.newChunks).toBeGreaterThan(packs.length * 2); // several chunks per object
  expect(packs.length).toBe(idx.packs.length);
  expect((await dest.list("index/")).length).toBe(1); // the per-pack index objects were merged
  const needed = new Set(snap.entries.flatMap((e) => e.chunks ?? []));
  expect(idx.chunks.size).toBe(needed.size);
  for (const id of needed) expect(idx.chunks.has(id)).toBe(true);
  let small = 0;
  for (const { entry } of idx.packs) {
    const bytes = await dest.get(packName(entry.pack));
    // sealed chunks back to back from offset 0, nothing else in the pack
    let off = 0;
    for (const [, offset, length] of [...entry.chunks].sort((a, b) => a[1] - b[1])) {
      expect(offset).toBe(off);
      off += length;
    }
    expect(bytes.length).toBe(off);
    // closed at the first chunk that reaches the target: below it only without its last chunk
    const last = entry.chunks.reduce((m, c) => (c[1] > m[1] ? c : m));
    expect(bytes.length - last[2]).toBeLessThan(packSize);
    if (bytes.length < packSize) small++;
  }
  // only the last pack of each pack writer (each worker of a local repository's pool) may be short
  expect(small).toBeLessThanOrEqual(Math.max(1, cryptoPool().threads));
  const v = await verify(repo);
  expect(v).toMatchObject({ ok: true, chunks: needed.size, packs: packs.length, unindexed: 0, missingPacks: 0 });
  const out = await dir("packs-out");
  await restore(repo, snap.id, out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
});

/** One chunk in flight: every chunk goes to one pack writer (the first idle worker), so one run fills one pack. */
const ONE_WRITER = { concurrency: 1 };

/** One pack holding `live` files that stay and `dead` files rewritten by a second run, then forgotten. */
async function partlyDead(live: number, dead: number) {
  const src = await dir("packs-src");
  const keep = range("keep", live);
  const change = range("change", dead);
  await smallFiles(src, [...keep, ...change]);
  const { repo, dest, repoDir } = await repoWith(4 << 20); // the first run fits one pack
  const first = await backup(repo, [src], ONE_WRITER);
  const [firstPack] = await dest.list("data/");
  expect(await dest.list("data/")).toHaveLength(1);
  await smallFiles(src, change);
  const second = await backup(repo, [src], ONE_WRITER);
  expect((await forget(repo, { last: 1 })).removed).toEqual([first.id]);
  const keptIds = keep.map((n) => second.entries.find((e) => e.path === join(src, n))!.chunks![0]!);
  return { src, repo, dest, repoDir, first, second, firstPack: firstPack!, keptIds };
}

async function restoresExactly(repo: Repository, id: string, src: string) {
  const out = await dir("packs-out");
  await restore(repo, id, out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
}

test("prune repacks a mostly-dead pack: its referenced chunks are copied to a new pack before the old one goes", async () => {
  const { src, repo, dest, second, firstPack, keptIds } = await partlyDead(3, 27);
  const p = await prune(repo);
  expect(p).toMatchObject({ repacked: 1, packsDeleted: 1, deleted: 27 });
  const packs = await dest.list("data/");
  expect(packs).not.toContain(firstPack);
  const idx = await loadIndex(repo);
  // the three still-referenced chunks now live together in one new pack, alone
  const homes = new Set(keptIds.map((id) => idx.chunks.get(id)!.pack));
  expect(homes.size).toBe(1);
  const home = idx.packs.find((x) => homes.has(x.entry.pack))!.entry;
  expect(home.chunks.map((c) => c[0]).sort()).toEqual([...keptIds].sort());
  expect((await dest.list("index/")).length).toBe(1);
  expect((await verify(repo)).errors).toEqual([]);
  await restoresExactly(repo, second.id, src);
  expect(await prune(repo)).toMatchObject({ deleted: 0, packsDeleted: 0, repacked: 0 });
});

test("prune keeps a mostly-live pack whole, and deletes a pack none of whose chunks is referenced", async () => {
  const kept = await partlyDead(20, 10);
  const p = await prune(kept.repo);
  expect(p).toMatchObject({ repacked: 0, packsDeleted: 0 });
  expect(await kept.dest.list("data/")).toContain(kept.firstPack);
  for (const id of kept.keptIds) expect((await loadIndex(kept.repo)).chunks.get(id)!.pack).toBe(kept.firstPack.slice(kept.firstPack.lastIndexOf("/") + 1));
  expect((await verify(kept.repo)).errors).toEqual([]);
  await restoresExactly(kept.repo, kept.second.id, kept.src);

  const gone = await partlyDead(0, 12);
  const q = await prune(gone.repo);
  expect(q).toMatchObject({ repacked: 0, packsDeleted: 1, deleted: 12 });
  expect(await gone.dest.list("data/")).not.toContain(gone.firstPack);
  expect((await verify(gone.repo)).errors).toEqual([]);
  await restoresExactly(gone.repo, gone.second.id, gone.src);
});

test("a pack without index (a run cut off between pack and index) is never referenced: verify counts it, backup ignores it, prune removes it", async () => {
  const src = await dir("packs-src");
  await smallFiles(src, range("f", 5));
  const { repo, dest } = await repoWith(1 << 20);
  // what a cut-off run leaves: a whole pack under a final name, its index never written
  const orphan = "ab".repeat(32);
  await dest.put(packName(orphan), randomBytes(50_000));
  const snap = await backup(repo, [src], ONE_WRITER);
  expect(snap.stats.newChunks).toBe(5);
  const v = await verify(repo);
  expect(v).toMatchObject({ ok: true, unindexed: 1, packs: 1 });
  const p = await prune(repo);
  expect(p.packsDeleted).toBe(1);
  expect(await dest.exists(packName(orphan))).toBe(false);
  expect(await verify(repo)).toMatchObject({ ok: true, unindexed: 0, packs: 1 });
  await restoresExactly(repo, snap.id, src);
});

test("a chunk corrupted inside a pack: verify names it (and only it), restore refuses the file that needs it and restores its pack-mates", async () => {
  const src = await dir("packs-src");
  const names = range("f", 8);
  await smallFiles(src, names);
  const { repo, repoDir } = await repoWith(1 << 20);
  const snap = await backup(repo, [src], ONE_WRITER);
  const victimPath = join(src, "f03");
  const victim = snap.entries.find((e) => e.path === victimPath)!.chunks![0]!;
  const at = await chunkFile(repo, repoDir, victim);
  expect((await loadIndex(repo)).packs[0]!.entry.chunks.length).toBe(8); // all eight share the pack
  const bytes = await readFile(at.file);
  bytes[at.offset + 20] ^= 0x80;
  await writeFile(at.file, bytes);

  const v = await verify(repo);
  expect(v.ok).toBe(false);
  expect(v.chunks).toBe(8);
  const text = v.errors.join("\n");
  expect(text).toContain(victim);
  expect(text).toContain(victimPath);
  const others = snap.entries.flatMap((e) => e.chunks ?? []).filter((id) => id !== victim);
  for (const id of others) expect(text).not.toContain(id);

  const err = await restore(repo, snap.id, await dir("packs-out")).catch((e) => e);
  expect(err).toBeInstanceOf(BackupError);
  expect((err as BackupError).code).toBe("corrupt");
  expect((err as BackupError).message).toContain(victimPath);
  const out = await dir("packs-out");
  await restore(repo, snap.id, out, { include: [join(src, "f02"), join(src, "f04")] });
  expect(await readFile(join(out, src, "f02"))).toEqual(await readFile(join(src, "f02")));
  expect(await readFile(join(out, src, "f04"))).toEqual(await readFile(join(src, "f04")));
});

test("a truncated pack: the chunks past its end are reported, restore refuses them", async () => {
  const src = await dir("packs-src");
  await smallFiles(src, range("f", 6));
  const { repo, repoDir } = await repoWith(1 << 20);
  const snap = await backup(repo, [src], ONE_WRITER);
  const idx = await loadIndex(repo);
  const entry = idx.packs[0]!.entry;
  const lastChunk = entry.chunks.reduce((m, c) => (c[1] > m[1] ? c : m));
  await truncate(join(repoDir, packName(entry.pack)), lastChunk[1] + 10);
  const v = await verify(repo);
  expect(v.ok).toBe(false);
  expect(v.errors.join("\n")).toContain(`chunk/${lastChunk[0]}: pack ${entry.pack} is too short for it (truncated)`);
  const file = snap.entries.find((e) => e.chunks?.[0] === lastChunk[0])!;
  const err = await restore(repo, snap.id, await dir("packs-out")).catch((e) => e);
  expect((err as BackupError).code).toBe("corrupt");
  expect((err as BackupError).message).toContain(file.path);
});

test("a repository of format 1 (one object per chunk) is refused with a message that says what to do", async () => {
  const { repo, dest } = await repoWith(1 << 20);
  await repo.putObject("config", new TextEncoder().encode(JSON.stringify({ ...repo.config, version: 1 })), false);
  const err = await Repository.open(dest, PASSWORD).catch((e) => e);
  expect(err).toBeInstanceOf(BackupError);
  expect((err as BackupError).code).toBe("bad_format");
  expect((err as BackupError).message).toContain("repository format 1 (one object per chunk");
  expect((err as BackupError).message).toContain("new repository");
});
