/**
 * The worker pool (agent/backup/pool.ts) that seals and opens chunks off the main thread: the
 * same bytes as the in-thread path, damage still detected, a worker that cannot load falls back
 * to the calling thread, and a backup holds a bounded number of bytes in flight.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { utimes, writeFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { backup } from "../../../agent/backup/backup.ts";
import { chunkId, seal, unseal } from "../../../agent/backup/crypto.ts";
import type { Destination } from "../../../agent/backup/destination.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { CryptoPool, cryptoPool } from "../../../agent/backup/pool.ts";
import { Repository } from "../../../agent/backup/repository.ts";
import { loadIndex, openChunk, packName } from "../../../agent/backup/pack.ts";
import { restore } from "../../../agent/backup/restore.ts";
import { verify } from "../../../agent/backup/verify.ts";
import { describeTree, mixedTree, newRepo, PASSWORD, tempDirs } from "./support.ts";

const dir = tempDirs();

const key = new Uint8Array(randomBytes(32));
const idKey = new Uint8Array(randomBytes(32));
const text = (n: number) => new TextEncoder().encode("2026-12-06 host7 backup pool line of text\n".repeat(Math.ceil(n / 42))).subarray(0, n);
// random (stored as is), compressible, tiny, and a view into a larger buffer
const big = new Uint8Array(randomBytes(3 << 20));
const inputs = [new Uint8Array(randomBytes(300_000)), text(700_000), text(40), big.subarray(1 << 20, (1 << 20) + 200_000), new Uint8Array(0)];

test("the pool runs on worker threads and seals to what the calling thread opens, with the same compression", async () => {
  const pool = cryptoPool();
  expect(pool.threads).toBeGreaterThan(0);
  const sealed = await Promise.all(inputs.map((data, i) => pool.run({ op: "seal", key, aad: `data/x${i}`, data, compress: true, level: 3 }, () => { throw new Error("inline path used"); })));
  sealed.forEach((s, i) => {
    expect(unseal(key, `data/x${i}`, s)).toEqual(inputs[i]!);
    // same compression decision and zstd output: same length as the in-thread seal
    expect(s.length).toBe(seal(key, `data/x${i}`, inputs[i]!, true, 3).length);
  });
  // and the other way: the calling thread seals, the pool opens and checks the id
  const opened = await Promise.all(inputs.map((d, i) => pool.run({ op: "open", key, aad: `data/y${i}`, data: seal(key, `data/y${i}`, d, true, 3), idKey, id: chunkId(idKey, d) }, () => { throw new Error("inline path used"); })));
  opened.forEach((o, i) => expect(o).toEqual(inputs[i]!));
});

test("the pool reports a tampered object, a moved object and a wrong id as corrupt", async () => {
  const pool = cryptoPool();
  const plain = text(100_000);
  const good = seal(key, "data/a", plain, true, 3);
  const tampered = good.slice();
  tampered[40] = tampered[40]! ^ 1;
  const open = (aad: string, data: Uint8Array, id = chunkId(idKey, plain)) => pool.run({ op: "open", key, aad, data, idKey, id }, () => { throw new Error("inline path used"); });
  const caught = [open("data/a", tampered), open("data/b", good), open("data/a", good, chunkId(idKey, text(99_999)))].map((p) => p.then(() => null, (x: unknown) => x));
  for (const e of await Promise.all(caught)) {
    expect(e).toBeInstanceOf(BackupError);
    expect((e as BackupError).code).toBe("corrupt");
  }
  expect(await open("data/a", good)).toEqual(plain);
});

test("a job whose input is a view into a Buffer (a pack read from a destination) leaves the caller's Buffer whole", async () => {
  const pool = cryptoPool();
  expect(pool.threads).toBeGreaterThan(0);
  // Buffer.prototype.slice is a view: the pool must copy, not move, the shared buffer
  const pack = Buffer.concat([seal(key, "chunk/a", text(50_000), true, 3), seal(key, "chunk/b", text(60_000), true, 3)]);
  const a = seal(key, "chunk/a", text(50_000), true, 3).length;
  const before = Buffer.from(pack);
  const out = await pool.run({ op: "open", key, aad: "chunk/a", data: pack.subarray(0, a) }, () => {
    throw new Error("inline path used");
  });
  expect(out).toEqual(text(50_000));
  expect(pack.length).toBe(before.length);
  expect(pack.equals(before)).toBe(true);
  expect(unseal(key, "chunk/b", pack.subarray(a))).toEqual(text(60_000));
});

test("a worker that cannot load: every job runs in the calling thread, same results", async () => {
  const pool = new CryptoPool(2, "file:///nonexistent/servermind-seal-worker.ts");
  let inline = 0;
  const out = await Promise.all(
    inputs.map((data, i) =>
      pool.run({ op: "seal", key, aad: `data/z${i}`, data, compress: true, level: 3 }, (d) => {
        inline++;
        return seal(key, `data/z${i}`, d, true, 3);
      }),
    ),
  );
  expect(inline).toBe(inputs.length);
  expect(pool.threads).toBe(0);
  out.forEach((s, i) => expect(unseal(key, `data/z${i}`, s)).toEqual(inputs[i]!));
  pool.close();
});

test("a backup through the pool: verify (in-thread) accepts every chunk and the restore is exact", async () => {
  const src = await dir("pool-src");
  await mixedTree(src);
  for (let i = 0; i < 8; i++) await writeFile(join(src, `r${i}.bin`), randomBytes(400_000 + i * 1000));
  const { repo } = await newRepo(await dir("pool-repo"));
  const snap = await backup(repo, [src]);
  const v = await verify(repo);
  expect(v.errors).toEqual([]);
  expect(v.ok).toBe(true);
  expect(v.chunks).toBe(snap.stats.newChunks);
  // every chunk is stored under the keyed id of its plaintext (opened in this thread)
  const ids = new Set(snap.entries.flatMap((e) => e.chunks ?? []));
  const index = (await loadIndex(repo)).chunks;
  for (const id of ids) {
    const at = index.get(id)!;
    expect(chunkId(repo.idKey, openChunk(repo, id, await repo.dest.get(packName(at.pack)), at, false))).toBe(id);
  }
  const out = await dir("pool-out");
  await restore(repo, snap.id, out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
});

/** A local destination that is slow to store and records how many bytes it holds at once. */
class Watched implements Destination {
  now = 0;
  peak = 0;
  constructor(private readonly inner: LocalDestination) {}
  async put(name: string, data: Uint8Array) {
    this.now += data.length;
    this.peak = Math.max(this.peak, this.now);
    await Bun.sleep(5);
    await this.inner.put(name, data);
    this.now -= data.length;
  }
  get = (n: string) => this.inner.get(n);
  list = (p: string) => this.inner.list(p);
  listSizes = (p: string) => this.inner.listSizes(p);
  delete = (n: string) => this.inner.delete(n);
  exists = (n: string) => this.inner.exists(n);
}

test("a backup keeps the bytes in flight under inflightBytes (memory bounded), whatever the concurrency", async () => {
  const src = await dir("bound-src");
  for (let i = 0; i < 6; i++) await writeFile(join(src, `r${i}.bin`), randomBytes(1_500_000));
  const root = await dir("bound-repo");
  await newRepo(root);
  const dest = new Watched(new LocalDestination(root, false));
  const repo = await Repository.open(dest, PASSWORD);
  const limit = 600 * 1024;
  const snap = await backup(repo, [src], { concurrency: 64, inflightBytes: limit });
  expect(snap.stats.newChunks).toBeGreaterThan(20);
  // one chunk (max 256 KiB with the test chunker, plus the seal's 30 bytes) may go over the limit
  expect(dest.peak).toBeGreaterThan(0);
  expect(dest.peak).toBeLessThanOrEqual(limit + 256 * 1024 + 30);
});

test("a file changed in place with its size and mtime put back is read again (ctime and inode are compared too)", async () => {
  const src = await dir("ctime-src");
  const f = join(src, "same-size.bin");
  await writeFile(f, randomBytes(200_000));
  await utimes(f, 1_700_000_000, 1_700_000_000); // whole seconds: put back exactly below
  const { repo } = await newRepo(await dir("ctime-repo"));
  const first = await backup(repo, [src]);
  const before = await stat(f);
  await Bun.sleep(20); // a later ctime
  await writeFile(f, randomBytes(200_000));
  await utimes(f, 1_700_000_000, 1_700_000_000);
  const after = await stat(f);
  expect(after.size).toBe(before.size);
  expect(after.mtimeMs).toBe(before.mtimeMs);
  const second = await backup(repo, [src]);
  expect(second.stats.newChunks).toBeGreaterThan(0);
  const entry = (s: typeof first) => s.entries.find((e) => e.path === f)!;
  expect(entry(second).sha256).not.toBe(entry(first).sha256);
  const third = await backup(repo, [src]); // unchanged now: taken from the parent unread
  expect(third.stats.newChunks).toBe(0);
  expect(entry(third).chunks).toEqual(entry(second).chunks);
});
