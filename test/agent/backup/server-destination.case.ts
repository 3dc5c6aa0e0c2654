/**
 * The engine through a destination backed by a real server the test started (SFTP, WebDAV,
 * FTP, SMB): a full backup → verify → restore round trip with its throughput measured against
 * the local destination in the same run, and the server killed mid-upload — the repository stays
 * consistent, no half object sits under its final name, and the next run completes.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { backup } from "../../../agent/backup/backup.ts";
import type { Destination } from "../../../agent/backup/destination.ts";
import { openDestination, type DestinationConfig } from "../../../agent/backup/destinations.ts";
import { createBackupHandler } from "../../../agent/control/backups/index.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { Repository } from "../../../agent/backup/repository.ts";
import { restore } from "../../../agent/backup/restore.ts";
import { verify } from "../../../agent/backup/verify.ts";
import { cleanup, describeTree, indexedChunks, mixedTree, PASSWORD, TEST_CHUNKER, TEST_PACK, TEST_SCRYPT, tempDir } from "./support.ts";

export interface ServerUnderTest {
  /** a destination at `sub` (a fresh folder) on the running server */
  dest(sub: string): Destination & { close?(): Promise<void> };
  /** every object the server stores under `sub`, by its own account (temporary names and the server's own files included) */
  raw(sub: string): Promise<string[]>;
  /**
   * The server gone at once (kill -9 of the daemon and its session processes), and back. Absent
   * for a server that cannot stand for the real service's behaviour when killed (s3rver writes
   * objects in place): its file then has no "killed mid-upload" case.
   */
  kill?(): Promise<void>;
  restart?(): Promise<void>;
  /** the configuration of a destination at `sub`, as a backup job sends it to an agent (the repository-size case) */
  config?(sub: string): DestinationConfig;
}

/** Whether a raw file is an object by name: not a temporary upload, not a server's own dot-file. */
const objectLike = (f: string) => !f.includes(".tmp-") && !f.split("/").some((p) => p.startsWith("."));

/** Files under `dir` (relative), temporary upload names and servers' own files included. */
export async function rawFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
  } catch {
    return [];
  }
}

/** Random files (incompressible, so the upload is the cost) plus the mixed tree. */
async function generatedTree(root: string, mb: number): Promise<number> {
  await mixedTree(root);
  await mkdir(join(root, "bulk/sub"), { recursive: true });
  for (let i = 0; i < mb; i++) await writeFile(join(root, `bulk/${i % 2 ? "sub/" : ""}f${i}.bin`), randomBytes(1024 * 1024));
  return (await rawFiles(root)).length;
}

const mbps = (bytes: number, ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

/**
 * `noSize`: no repository-size case (S3 and Azure have theirs in test/agent/control/backup-repo-size.test.ts,
 * with a second repository in the same bucket); every other server gives `config`.
 */
export function serverDestinationCases(name: string, server: () => ServerUnderTest, opts: { treeMb?: number; noKill?: boolean; noSize?: boolean } = {}): void {
  const treeMb = opts.treeMb ?? 24;

  test(`${name}: backup → verify → restore round trip through the engine, throughput against local`, async () => {
    const s = server();
    const src = await tempDir("src");
    const out = await tempDir("out");
    const localDir = await tempDir("local");
    const dest = s.dest("roundtrip");
    try {
      await generatedTree(src, treeMb);
      const { repo } = await Repository.init(dest, PASSWORD, { chunker: TEST_CHUNKER, scrypt: TEST_SCRYPT });
      let t = performance.now();
      const snap = await backup(repo, [src]);
      const destMs = performance.now() - t;
      expect(snap.stats.newChunks).toBeGreaterThan(treeMb * 8);

      const { repo: local } = await Repository.init(new LocalDestination(localDir), PASSWORD, { chunker: TEST_CHUNKER, scrypt: TEST_SCRYPT });
      t = performance.now();
      await backup(local, [src]);
      const localMs = performance.now() - t;

      // the listing holds exactly the whole objects the server stores, no temporary names
      const raw = await s.raw("roundtrip");
      expect(raw.filter((f) => f.includes(".tmp-"))).toEqual([]);
      expect((await dest.list("data/")).sort()).toEqual(raw.filter((f) => f.startsWith("data/") && objectLike(f)).sort());

      const reopened = await Repository.open(dest, PASSWORD);
      const v = await verify(reopened);
      expect(v.errors).toEqual([]);
      expect(v.chunks).toBe(snap.stats.newChunks);
      t = performance.now();
      await restore(reopened, "latest", out);
      const restoreMs = performance.now() - t;
      expect(await describeTree(join(out, src))).toEqual(await describeTree(src));

      // an incremental run: one file changed uploads only its chunks
      await writeFile(join(src, "bulk/f0.bin"), randomBytes(1024 * 1024));
      const inc = await backup(reopened, [src]);
      expect(inc.stats.newChunks).toBeGreaterThan(0);
      expect(inc.stats.newChunks).toBeLessThanOrEqual(64);
      console.log(
        `[throughput] ${name}: backup ${mbps(snap.stats.bytes, destMs)} MB/s, restore ${mbps(snap.stats.bytes, restoreMs)} MB/s; ` +
          `local in the same run: backup ${mbps(snap.stats.bytes, localMs)} MB/s (${(snap.stats.bytes / 1e6).toFixed(1)} MB, ${snap.stats.newChunks} chunks)`,
      );
    } finally {
      await dest.close?.();
      await cleanup(src, out, localDir);
    }
  }, 240_000);

  if (!opts.noSize) test(`${name}: backup.run through Control reports the repository size: the sum of the bytes of every object read back`, async () => {
    const s = server();
    if (!s.config) throw new Error(`${name}: the server gives no destination config`);
    const src = await tempDir("src");
    const dumps = await tempDir("dumps");
    try {
      await mixedTree(src);
      await writeFile(join(src, "one.bin"), randomBytes(1_200_000));
      const handle = createBackupHandler({ dumpDir: join(dumps, "dumps"), resultsDir: join(dumps, "results"), progressMs: 1000 });
      const password = `pw-${randomBytes(8).toString("hex")}`;
      // another repository beside it first: not counted
      expect((await handle("backup.run", { job: 1, run: 1, destination: s.config("size-other"), password, paths: [src], init: true })).ok).toBe(true);
      const lines: string[] = [];
      const r = await handle("backup.run", { job: 1, run: 2, destination: s.config("size"), password, paths: [src], init: true }, { line: (_s, t) => void lines.push(t), close() {} });
      expect(r.error).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(lines.filter((l) => l.includes("size unknown"))).toEqual([]);
      const dest = openDestination(s.config("size"));
      try {
        const names = await dest.list("");
        let expected = 0;
        for (const n of names) expected += (await dest.get(n)).length;
        expect(names.length).toBeGreaterThan(5);
        expect(expected).toBeGreaterThan(1_200_000);
        expect(r.repoBytes).toBe(expected);
        // the server's own account of the files agrees (every file under the repository's folder)
        const raw = (await s.raw("size")).filter(objectLike);
        expect(raw.sort()).toEqual([...names].sort());
      } finally {
        await dest.close?.();
      }
    } finally {
      await cleanup(src, dumps);
    }
  }, 120_000);

  if (opts.noKill) return;
  test(`${name}: the server killed mid-upload leaves the repository consistent, and the next run completes`, async () => {
    const s = server();
    const src = await tempDir("src");
    const out = await tempDir("out");
    let dest = s.dest("killed");
    try {
      for (let i = 0; i < 8; i++) await writeFile(join(src, `f${i}.bin`), randomBytes(1024 * 1024 + i));
      const { repo } = await Repository.init(dest, PASSWORD, { chunker: TEST_CHUNKER, scrypt: TEST_SCRYPT, packSize: TEST_PACK });
      let killing: Promise<void> | undefined;
      const err = await backup(repo, [src], {
        onChunk: (n) => {
          if (n === 20) killing = s.kill!();
        },
      }).catch((e) => e);
      await killing;
      expect(killing).toBeDefined();
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");

      await s.restart!();
      // what the server holds now is what the killed run left (an object store is asked, so after the restart)
      const afterKill = await s.raw("killed");
      await dest.close?.();
      dest = s.dest("killed");
      const again = await Repository.open(dest, PASSWORD);
      expect(await dest.list("snapshots/")).toEqual([]);
      const listed = await dest.list("data/");
      // every object under a final name is whole (verify authenticates each), temporary names are not listed
      expect(listed.sort()).toEqual(afterKill.filter((f) => f.startsWith("data/") && objectLike(f)).sort());
      const v = await verify(again);
      expect(v.errors).toEqual([]);
      const indexed = await indexedChunks(again);
      expect(v.chunks).toBe(indexed);
      expect(v.packs + v.unindexed).toBe(listed.length);

      const next = await backup(again, [src]);
      expect(next.stats.newChunks).toBe((await indexedChunks(again)) - indexed); // the killed run's indexed chunks were reused
      expect((await verify(again)).ok).toBe(true);
      await restore(again, "latest", out);
      expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
    } finally {
      await dest.close?.();
      await cleanup(src, out);
    }
  }, 240_000);
}
