/** Shared helpers of the backup tests: a mixed tree, a fresh repository, tree comparison. */
import { afterAll } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { loadIndex, packName, type Location } from "../../../agent/backup/pack.ts";
import { Repository } from "../../../agent/backup/repository.ts";

/** Small chunks so that small test files still split into many chunks; a cheap scrypt. */
export const TEST_CHUNKER = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };
export const TEST_SCRYPT = { N: 1 << 14, r: 8, p: 1 };
/** Small packs so that small test trees still fill several. */
export const TEST_PACK = 256 * 1024;
export const PASSWORD = "correct horse battery staple";
export const MARKER = "SERVERMIND-PLAINTEXT-MARKER-7f3a";

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `sm-${prefix}-`));
}

/** A `tempDir` for a test file: every directory it made is removed after the file's tests. */
export function tempDirs(): (prefix: string) => Promise<string> {
  const dirs: string[] = [];
  afterAll(() => cleanup(...dirs));
  return async (prefix) => {
    const d = await tempDir(prefix);
    dirs.push(d);
    return d;
  };
}

export async function newRepo(dir: string) {
  const dest = new LocalDestination(dir, false);
  return { dest, ...(await Repository.init(dest, PASSWORD, { chunker: TEST_CHUNKER, scrypt: TEST_SCRYPT, packSize: TEST_PACK })) };
}

/** Binary, text with a marker, empty files, a symlink, odd permissions, a 3 MB file, nested dirs. */
export async function mixedTree(root: string): Promise<void> {
  await mkdir(join(root, "etc/app"), { recursive: true });
  await mkdir(join(root, "var/lib/empty-dir"), { recursive: true });
  await writeFile(join(root, "etc/app/config.txt"), `${MARKER}\n${"setting = value\n".repeat(5000)}`);
  await writeFile(join(root, "etc/app/empty"), "");
  await writeFile(join(root, "var/lib/blob.bin"), randomBytes(3 * 1024 * 1024 + 17));
  await writeFile(join(root, "var/lib/small.bin"), randomBytes(100));
  await writeFile(join(root, "etc/app/secret.key"), `${MARKER} private\n`);
  await chmod(join(root, "etc/app/secret.key"), 0o600);
  await writeFile(join(root, "var/lib/run.sh"), "#!/bin/sh\necho hi\n");
  await chmod(join(root, "var/lib/run.sh"), 0o751);
  await symlink("../../etc/app/config.txt", join(root, "var/lib/link"));
  await symlink("/nonexistent/target", join(root, "var/lib/dangling"));
  await utimes(join(root, "var/lib/small.bin"), new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
}

export interface Node {
  type: string;
  mode: number;
  mtimeMs?: number;
  content?: string;
  target?: string;
}

/** Every path under root with type, mode, mtime (files) and content hash / link target. */
export async function describeTree(root: string): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  const walk = async (rel: string) => {
    const p = join(root, rel);
    const st = await lstat(p);
    if (st.isSymbolicLink()) out[rel] = { type: "symlink", mode: 0, target: await readlink(p) };
    else if (st.isDirectory()) {
      out[rel] = { type: "dir", mode: st.mode & 0o7777 };
      for (const n of (await readdir(p)).sort()) await walk(rel ? `${rel}/${n}` : n);
    } else out[rel] = { type: "file", mode: st.mode & 0o7777, mtimeMs: Math.floor(st.mtimeMs), content: Bun.hash(await readFile(p)).toString(16) };
  };
  await walk("");
  return out;
}

export const cleanup = (...dirs: string[]) => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));

/** How many chunks the repository's index names (in packs that exist). */
export async function indexedChunks(repo: Repository): Promise<number> {
  return (await loadIndex(repo)).chunks.size;
}

/** Where a chunk lies in a local repository: its pack file, offset and sealed length. */
export async function chunkFile(repo: Repository, repoDir: string, id: string): Promise<Location & { file: string }> {
  const at = (await loadIndex(repo)).chunks.get(id);
  if (!at) throw new Error(`chunk ${id} is not indexed`);
  return { ...at, file: join(repoDir, packName(at.pack)) };
}
