/**
 * kill -9 of a backup midway (the CLI in a child process, as the agent would run it): the
 * repository stays consistent — verify passes, no snapshot refers to anything missing — and the
 * next run completes, reusing the chunks the killed run uploaded and indexed; a pack cut off
 * before its index is garbage that prune removes.
 */
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { Repository } from "../../../agent/backup/repository.ts";
import { restore } from "../../../agent/backup/restore.ts";
import { verify } from "../../../agent/backup/verify.ts";
import { STALE_MS } from "../../../agent/backup/lock.ts";
import { prune } from "../../../agent/backup/prune.ts";
import { cleanup, describeTree, indexedChunks, PASSWORD, tempDir } from "./support.ts";

const CLI = resolve(import.meta.dir, "../../../agent/backup/cli.ts");
const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

const env = { ...process.env, SERVERMIND_BACKUP_PASSWORD: PASSWORD };
const cli = (...args: string[]) => Bun.spawn([process.execPath, CLI, ...args], { env, stdout: "pipe", stderr: "pipe" });

async function countPacks(repoDir: string): Promise<number> {
  try {
    return (await readdir(join(repoDir, "data"), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && !e.name.includes(".tmp-")).length;
  } catch {
    return 0;
  }
}

test("kill -9 mid-backup leaves a consistent repository and the next run completes", async () => {
  const src = await tempDir("src");
  const repoDir = await tempDir("repo");
  const out = await tempDir("out");
  dirs.push(src, repoDir, out);
  // 48 MB of random data in 64 KiB chunks, 256 KiB packs: about 190 packs, each fsynced
  for (let i = 0; i < 12; i++) await writeFile(join(src, `f${i}.bin`), randomBytes(4 * 1024 * 1024));
  const init = cli("--repo", repoDir, "init", "--chunk-min", "16384", "--chunk-avg", "65536", "--chunk-max", "262144", "--pack-size", "262144");
  expect(await init.exited).toBe(0);

  const run = cli("--repo", repoDir, "backup", src);
  const deadline = Date.now() + 60_000;
  let seen = 0;
  while (Date.now() < deadline && (seen = await countPacks(repoDir)) < 40) await Bun.sleep(5);
  run.kill("SIGKILL");
  const code = await run.exited;
  expect(seen).toBeGreaterThanOrEqual(40);
  expect(code).not.toBe(0); // killed, not finished
  const killedWith = await countPacks(repoDir);

  const repo = await Repository.open(new LocalDestination(repoDir, false), PASSWORD);
  expect(await repo.dest.list("snapshots/")).toEqual([]);
  const v = await verify(repo);
  expect(v.errors).toEqual([]);
  // every pack under a final name is whole; only the ones whose index was still being written
  // (each worker commits its packs in the background while it fills the next) lack their index
  expect(v.packs + v.unindexed).toBe(killedWith);
  expect(v.packs).toBeGreaterThan(0);
  const indexed = await indexedChunks(repo);
  expect(v.chunks).toBe(indexed);

  const next = cli("--repo", repoDir, "backup", src);
  expect(await next.exited).toBe(0);
  const stats = JSON.parse(await new Response(next.stdout).text()) as { newChunks: number };
  expect(stats.newChunks).toBe((await indexedChunks(repo)) - indexed); // what the killed run indexed was reused
  expect((await verify(repo)).ok).toBe(true);
  await restore(repo, "latest", out);
  expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
  // prune collects the packs the killed run left without index, and nothing a snapshot needs
  // (once the killed run's lock has gone stale: an hour later, simulated)
  for (const name of await repo.dest.list("locks/")) {
    const body = await repo.getJson<{ time: number }>(name);
    await repo.putJson(name, { ...body, time: Date.now() - STALE_MS - 1000 });
  }
  const p = await prune(repo);
  expect(p.packsDeleted).toBe(killedWith - v.packs);
  const after = await verify(repo);
  expect(after.errors).toEqual([]);
  expect(after.unindexed).toBe(0);
}, 120_000);
