/**
 * The backup engine end to end against a local directory: round trip, dedup, keys, damage
 * detection, retention, no plaintext at the destination.
 */
import { expect, test } from "bun:test";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { backup } from "../../../agent/backup/backup.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { applyPolicy, forget, prune } from "../../../agent/backup/prune.ts";
import { loadIndex, packName } from "../../../agent/backup/pack.ts";
import { Repository } from "../../../agent/backup/repository.ts";
import { restore } from "../../../agent/backup/restore.ts";
import type { Snapshot } from "../../../agent/backup/snapshot.ts";
import { listSnapshots } from "../../../agent/backup/snapshots.ts";
import { verify } from "../../../agent/backup/verify.ts";
import { chunkFile, describeTree, indexedChunks, MARKER, mixedTree, newRepo, PASSWORD, tempDirs } from "./support.ts";

const dir = tempDirs();

async function allFiles(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

test("a mixed tree restores byte-exact with modes, mtimes, empty files and symlinks", async () => {
  const src = await dir("src");
  await mixedTree(src);
  const { repo } = await newRepo(await dir("repo"));
  const snap = await backup(repo, [src]);
  expect(snap.stats.files).toBe(6);
  const out = await dir("out");
  const r = await restore(repo, snap.id, out);
  expect(r.files).toBe(6);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
  // a partial restore
  const part = await dir("part");
  await restore(repo, "latest", part, { include: [join(src, "etc/app")] });
  expect(Object.keys(await describeTree(join(part, src))).sort()).toEqual(["", "etc", "etc/app", "etc/app/config.txt", "etc/app/empty", "etc/app/secret.key"]);
});

test("a second run of an unchanged tree uploads nothing; a changed file uploads only its new chunks", async () => {
  const src = await dir("src");
  await mixedTree(src);
  const { repo } = await newRepo(await dir("repo"));
  const first = await backup(repo, [src]);
  const chunksAfterFirst = await indexedChunks(repo);
  expect(first.stats.newChunks).toBe(chunksAfterFirst);
  const second = await backup(repo, [src]);
  expect(second.stats.newChunks).toBe(0);
  expect(second.parent).toBe(first.id);
  // append to the 3 MB file: only its tail chunks are new
  await writeFile(join(src, "var/lib/blob.bin"), Buffer.from("appended"), { flag: "a" });
  const third = await backup(repo, [src]);
  expect(third.stats.newChunks).toBeGreaterThan(0);
  expect(third.stats.newChunks).toBeLessThanOrEqual(3);
  expect(third.stats.newBytes).toBeLessThan(1024 * 1024);
  const out = await dir("out");
  await restore(repo, third.id, out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
});

test("two hosts of a job sharing files store the shared content once", async () => {
  const a = await dir("hosta");
  const b = await dir("hostb");
  const shared = Buffer.concat([Buffer.from(MARKER), (await import("node:crypto")).randomBytes(2 * 1024 * 1024)]);
  await writeFile(join(a, "shared.bin"), shared);
  await writeFile(join(b, "copy-of-shared.bin"), shared);
  await writeFile(join(b, "own.txt"), "only on b\n".repeat(100));
  const { repo } = await newRepo(await dir("repo"));
  const sa = await backup(repo, [a], { host: "a" });
  const sb = await backup(repo, [b], { host: "b" });
  expect(sa.stats.newBytes).toBe(shared.length);
  expect(sb.stats.newChunks).toBe(1); // only own.txt
  expect(sb.stats.newBytes).toBe(1000);
  expect((await listSnapshots(repo)).map((s) => s.host).sort()).toEqual(["a", "b"]);
});

test("a wrong password is refused; the recovery key opens; a changed password works and the old one stops", async () => {
  const repoDir = await dir("repo");
  const { recoveryKey } = await newRepo(repoDir);
  const dest = new LocalDestination(repoDir, false);
  const wrong = await Repository.open(dest, "wrong password").catch((e) => e);
  expect(wrong).toBeInstanceOf(BackupError);
  expect((wrong as BackupError).code).toBe("bad_password");
  expect(recoveryKey).toMatch(/^([0-9a-f]{8}-){7}[0-9a-f]{8}$/);
  const viaRecovery = await Repository.open(dest, { recoveryKey });
  const badRecovery = await Repository.open(dest, { recoveryKey: "00000000".repeat(8) }).catch((e) => e);
  expect((badRecovery as BackupError).code).toBe("bad_password");
  await viaRecovery.changePassword("new password", { N: 1 << 14, r: 8, p: 1 });
  expect(((await Repository.open(dest, PASSWORD).catch((e) => e)) as BackupError).code).toBe("bad_password");
  const reopened = await Repository.open(dest, "new password");
  expect(reopened.config.id).toBe(viaRecovery.config.id);
  expect(Buffer.from(reopened.encKey).equals(Buffer.from(viaRecovery.encKey))).toBe(true);
});

test("the destination holds no plaintext: no marker string, no file names, no key material in clear", async () => {
  const src = await dir("src");
  await mixedTree(src);
  const repoDir = await dir("repo");
  const { repo } = await newRepo(repoDir);
  await backup(repo, [src]);
  const encKeyB64 = Buffer.from(repo.encKey).toString("base64");
  const encKeyHex = Buffer.from(repo.encKey).toString("hex");
  const files = await allFiles(repoDir);
  expect(files.length).toBeGreaterThan(5);
  for (const f of files) {
    const bytes = await readFile(f);
    for (const needle of [MARKER, "config.txt", "setting = value", encKeyB64, encKeyHex, PASSWORD]) expect(bytes.includes(needle)).toBe(false);
  }
});

async function damagedRepo() {
  const src = await dir("src");
  await mixedTree(src);
  const repoDir = await dir("repo");
  const { repo, dest } = await newRepo(repoDir);
  const snap = await backup(repo, [src]);
  const blob = snap.entries.find((e) => e.path.endsWith("blob.bin"))!;
  return { src, repoDir, repo, dest, snap, blob };
}

test("a corrupted chunk is reported by verify and by restore, naming the file; nothing is restored in its place", async () => {
  const { repoDir, repo, snap, blob } = await damagedRepo();
  expect((await verify(repo)).ok).toBe(true);
  // one bit in the middle of the chunk, inside its pack
  const victim = await chunkFile(repo, repoDir, blob.chunks![1]!);
  const bytes = await readFile(victim.file);
  bytes[victim.offset + (victim.length >> 1)] ^= 0x01;
  await writeFile(victim.file, bytes);
  const v = await verify(repo);
  expect(v.ok).toBe(false);
  expect(v.errors.join("\n")).toContain(blob.chunks![1]!);
  expect(v.errors.join("\n")).toContain(blob.path);
  const out = await dir("out");
  const err = await restore(repo, snap.id, out).catch((e) => e);
  expect(err).toBeInstanceOf(BackupError);
  expect((err as BackupError).code).toBe("corrupt");
  expect((err as BackupError).message).toContain(blob.path);
  const restored = await allFiles(out);
  expect(restored.some((f) => f.includes("blob.bin"))).toBe(false);
});

test("a chunk swapped for another valid chunk is detected (the chunk id is authenticated)", async () => {
  const { repoDir, repo, snap, blob } = await damagedRepo();
  // the sealed bytes of chunk 2 copied over the place of chunk 0
  const a = await chunkFile(repo, repoDir, blob.chunks![0]!);
  const b = await chunkFile(repo, repoDir, blob.chunks![2]!);
  const other = (await readFile(b.file)).subarray(b.offset, b.offset + b.length);
  const bytes = await readFile(a.file);
  bytes.set(other.subarray(0, Math.min(a.length, b.length)), a.offset);
  await writeFile(a.file, bytes);
  expect((await verify(repo)).ok).toBe(false);
  const err = await restore(repo, snap.id, await dir("out")).catch((e) => e);
  expect((err as BackupError).code).toBe("corrupt");
});

test("a missing chunk is reported by verify and by restore", async () => {
  const { repoDir, repo, snap, blob } = await damagedRepo();
  const gone = await chunkFile(repo, repoDir, blob.chunks![2]!);
  const lost = new Set((await loadIndex(repo)).packs.find((p) => p.entry.pack === gone.pack)!.entry.chunks.map((c) => c[0]));
  await rm(gone.file); // its whole pack, and the other chunks in it
  const v = await verify(repo);
  expect(v.ok).toBe(false);
  expect(v.missingPacks).toBe(1);
  expect(v.errors.join("\n")).toContain(`${blob.path}: chunk ${blob.chunks![2]} is missing`);
  const err = await restore(repo, snap.id, await dir("out")).catch((e) => e);
  expect((err as BackupError).code).toBe("missing");
  // the first file found short: one of those that had a chunk in that pack
  const hurt = snap.entries.filter((e) => e.chunks?.some((id) => lost.has(id))).map((e) => e.path);
  expect(hurt).toContain(blob.path);
  expect(hurt.some((p) => (err as BackupError).message.startsWith(`${p}: chunk `))).toBe(true);
});

test("a damaged chunk is not reused by dedup silently: verify keeps reporting it until it is gone", async () => {
  // documents the contract: the next backup of the same content references the id again, and
  // verify names it; restore of any snapshot that needs it fails loudly.
  const { repoDir, repo, src, blob, snap } = await damagedRepo();
  const gone = await chunkFile(repo, repoDir, blob.chunks![0]!);
  const inPack = (await loadIndex(repo)).packs.find((p) => p.entry.pack === gone.pack)!.entry.chunks.map((c) => c[0]);
  await rm(gone.file);
  const next = await backup(repo, [src]);
  // the files are unchanged but chunks of theirs are gone with the pack: they are read again and
  // exactly the needed chunks that pack held are uploaded again
  const needed = new Set(snap.entries.flatMap((e) => e.chunks ?? []));
  expect(next.stats.newChunks).toBe(new Set(inPack.filter((id) => needed.has(id))).size);
  expect(next.stats.newChunks).toBeGreaterThan(0);
  expect((await verify(repo)).ok).toBe(true);
});

test("forget + prune keep every chunk a kept snapshot needs and remove the others", async () => {
  const src = await dir("src");
  await mixedTree(src);
  const { repo, dest } = await newRepo(await dir("repo"));
  const { randomBytes } = await import("node:crypto");
  const snaps: Snapshot[] = [];
  for (let i = 0; i < 3; i++) {
    await writeFile(join(src, "var/lib/changing.bin"), randomBytes(400 * 1024));
    snaps.push(await backup(repo, [src]));
  }
  const before = await indexedChunks(repo);
  const r = await forget(repo, { last: 1 });
  expect(r.kept).toEqual([snaps[2]!.id]);
  expect(r.removed.sort()).toEqual([snaps[0]!.id, snaps[1]!.id].sort());
  const p = await prune(repo);
  expect(p.deleted).toBeGreaterThan(0);
  expect(p.packsDeleted).toBeGreaterThan(0);
  const idx = await loadIndex(repo);
  expect(idx.chunks.size).toBe(before - p.deleted);
  const needed = new Set(snaps[2]!.entries.flatMap((e) => e.chunks ?? []));
  for (const id of needed) expect(idx.chunks.has(id)).toBe(true);
  // every pack left is the one the index names, and none is mostly dead
  expect([...idx.present].sort()).toEqual(idx.packs.map((x) => x.entry.pack).sort());
  for (const { entry } of idx.packs) {
    const live = entry.chunks.filter(([id]) => needed.has(id)).reduce((n, c) => n + c[2], 0);
    expect(live).toBeGreaterThanOrEqual(entry.chunks.reduce((n, c) => n + c[2], 0) / 2);
  }
  expect((await dest.list("index/")).length).toBe(1);
  expect((await verify(repo)).ok).toBe(true);
  const out = await dir("out");
  await restore(repo, snaps[2]!.id, out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
  // pruning again deletes nothing
  expect(await prune(repo)).toMatchObject({ deleted: 0, packsDeleted: 0, repacked: 0 });
});

test("prune refuses while a backup holds the repository", async () => {
  const { repo } = await newRepo(await dir("repo"));
  const src = await dir("src");
  await writeFile(join(src, "a.bin"), (await import("node:crypto")).randomBytes(2 * 1024 * 1024));
  let pruneErr: unknown;
  await backup(repo, [src], {
    onChunk: (n) => {
      if (n === 1) pruneErr = prune(repo).catch((e) => e);
    },
  });
  const err = await pruneErr;
  expect(err).toBeInstanceOf(BackupError);
  expect((err as BackupError).code).toBe("locked");
  expect((await prune(repo)).deleted).toBe(0);
});

test("retention policy: last, daily, weekly, monthly", () => {
  const mk = (time: string) => ({ id: time, time }) as Snapshot;
  const snaps = [
    "2026-01-05T10:00:00Z", "2026-01-20T10:00:00Z", "2026-02-10T10:00:00Z", "2026-03-02T09:00:00Z",
    "2026-03-02T18:00:00Z", "2026-03-03T10:00:00Z", "2026-03-04T08:00:00Z", "2026-03-04T20:00:00Z",
  ].map(mk);
  const ids = (p: Parameters<typeof applyPolicy>[1]) => applyPolicy(snaps, p).keep.map((s) => s.id).sort();
  expect(ids({ last: 2 })).toEqual(["2026-03-04T08:00:00Z", "2026-03-04T20:00:00Z"]);
  expect(ids({ daily: 3 })).toEqual(["2026-03-02T18:00:00Z", "2026-03-03T10:00:00Z", "2026-03-04T20:00:00Z"]);
  expect(ids({ monthly: 3 })).toEqual(["2026-01-20T10:00:00Z", "2026-02-10T10:00:00Z", "2026-03-04T20:00:00Z"]);
  // 2026-03-02 (Mon) .. 03-04 are one ISO week; 02-10 and 01-20 and 01-05 are three others
  expect(ids({ weekly: 2 })).toEqual(["2026-02-10T10:00:00Z", "2026-03-04T20:00:00Z"]);
  expect(ids({ last: 1, monthly: 2 })).toEqual(["2026-02-10T10:00:00Z", "2026-03-04T20:00:00Z"]);
});

test("a destination that goes down mid-upload fails the run, leaves the repository consistent, and the next run completes", async () => {
  const src = await dir("src");
  await mixedTree(src);
  const repoDir = await dir("repo");
  await newRepo(repoDir);
  const local = new LocalDestination(repoDir, false);
  let puts = 0;
  const flaky: typeof local = Object.assign(Object.create(local), {
    put: async (name: string, data: Uint8Array) => {
      // the fifth pack fails: the 3 MB file alone fills at least five (a pack closes past 256 kB
      // and holds at most one more chunk of at most 256 kB). The eleventh, as before, was not
      // always reached: where random content cuts its chunks decides how many packs it takes.
      if (name.startsWith("data/") && ++puts > 4) throw new Error("connection reset by destination");
      return local.put(name, data);
    },
  });
  const down = await Repository.open(flaky, PASSWORD);
  await expect(backup(down, [src])).rejects.toThrow("connection reset");
  const repo = await Repository.open(local, PASSWORD);
  expect(await local.list("snapshots/")).toEqual([]);
  const v = await verify(repo);
  expect(v.ok).toBe(true);
  // four packs were stored, each with its index; the fifth never landed
  expect(v.packs).toBe(4);
  expect(v.unindexed).toBe(0);
  const indexed = await indexedChunks(repo);
  expect(v.chunks).toBe(indexed);
  const snap = await backup(repo, [src]);
  expect(snap.stats.newChunks).toBe((await indexedChunks(repo)) - indexed);
  const out = await dir("out");
  await restore(repo, snap.id, out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
});

test("a backup refuses while a prune holds the repository; a stale lock (killed run) is ignored", async () => {
  const { repo } = await newRepo(await dir("repo"));
  const src = await dir("src");
  await writeFile(join(src, "a.txt"), "a");
  await repo.putJson("locks/0123456789abcdef", { time: Date.now(), host: "other", pid: 1, exclusive: true });
  const err = await backup(repo, [src]).catch((e) => e);
  expect((err as BackupError).code).toBe("locked");
  expect((err as BackupError).message).toContain("a prune on other");
  expect(await repo.dest.list("locks/")).toEqual(["locks/0123456789abcdef"]); // ours backed off
  await repo.putJson("locks/0123456789abcdef", { time: Date.now() - 2 * 60 * 60 * 1000, host: "other", pid: 1, exclusive: true });
  expect((await backup(repo, [src])).stats.files).toBe(1);
  expect((await prune(repo)).deleted).toBe(0);
});

test("restore refuses a snapshot entry that would write outside the target", async () => {
  const { repo } = await newRepo(await dir("repo"));
  const src = await dir("src");
  await writeFile(join(src, "a.txt"), "a");
  const snap = await backup(repo, [src]);
  const evil = { ...snap, id: "e".repeat(32), entries: snap.entries.map((e) => (e.type === "file" ? { ...e, path: `${src}/../../../../escaped.txt` } : e)) };
  await repo.putJson(`snapshots/${evil.id}`, evil);
  const target = await dir("out");
  const err = await restore(repo, evil.id, target).catch((e) => e);
  expect((err as BackupError).code).toBe("corrupt");
  expect((err as BackupError).message).toContain("not a clean absolute path");
});
