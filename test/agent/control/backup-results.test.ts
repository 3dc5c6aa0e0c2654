/**
 * Control's `backup.result` and `backup.ls`, without a server: a run's result is kept on the host
 * sealed with a key derived from the repository password (no recovery key in the clear on disk),
 * answered as "running" while the run goes on, "done" with the whole result afterwards, refused
 * with another password, removed on `forget`, "unknown" for a run the host never had. And one
 * directory level of a snapshot, parents of the backed-up roots included as directories.
 */
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackupHandler } from "../../../agent/control/backups/index.ts";
import { treeLevel } from "../../../agent/backup/tree.ts";
import type { Entry } from "../../../agent/backup/snapshot.ts";

const work = mkdtempSync(join(tmpdir(), "sm-control-bresults-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("a run's result kept sealed until fetched; running, done, wrong password, forget, unknown", async () => {
  const resultsDir = join(work, "results");
  const handle = createBackupHandler({ dumpDir: join(work, "dumps"), resultsDir, progressMs: 50 });
  const src = join(work, "src");
  mkdirSync(src);
  writeFileSync(join(src, "a.bin"), randomBytes(4_000_000));
  const destination = { type: "local", path: join(work, "repo"), fsync: false };
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const running = handle("backup.run", { job: 3, run: 41, destination, password, paths: [src], init: true });
  expect(await handle("backup.result", { job: 3, run: 41, password })).toMatchObject({ ok: true, state: "running" });
  const first = await running;
  expect(first).toMatchObject({ ok: true, files: 1 });
  const key = first.recoveryKey as string;
  expect(key.length).toBeGreaterThan(20);
  const file = join(resultsDir, "job-3-run-41.json");
  const onDisk = readFileSync(file, "utf8");
  expect(onDisk).not.toContain(key);
  expect(onDisk).not.toContain(first.snapshot as string);

  const again = await handle("backup.result", { job: 3, run: 41, password });
  expect(again).toMatchObject({ ok: true, state: "done" });
  expect(again.result).toEqual(first);
  const wrong = await handle("backup.result", { job: 3, run: 41, password: "another-password" });
  expect(wrong.ok).toBe(false);
  expect(String(wrong.error)).not.toContain(password);
  expect(await handle("backup.result", { job: 3, run: 41 })).toMatchObject({ ok: false });
  expect((await handle("backup.result", { job: 3, run: 41, password, forget: true })).state).toBe("done");
  expect(existsSync(file)).toBe(false);
  expect(await handle("backup.result", { job: 3, run: 41, password })).toMatchObject({ ok: true, state: "unknown" });

  // a failed restore is kept too (the answer that says so may be lost as well)
  const failed = await handle("backup.restore", { job: 3, run: 42, destination, password, snapshot: "0".repeat(32), target: join(work, "out") });
  expect(failed.ok).toBe(false);
  expect((await handle("backup.result", { job: 3, run: 42, password })).result).toEqual(failed);

  // backup.ls: one level, through the engine's snapshot reading
  const ls = await handle("backup.ls", { destination, password, snapshot: "latest", path: src });
  expect(ls).toMatchObject({ ok: true, dir: src, items: [{ name: "a.bin", type: "file", size: 4_000_000 }], truncated: false });
  expect((await handle("backup.ls", { destination, password, snapshot: "latest", path: "rel" })).ok).toBe(false);
  expect(readdirSync(resultsDir).length).toBe(1);
});

test("treeLevel: implied parents as directories, sizes and file counts below them, directories first, a bound", () => {
  const e = (path: string, type: Entry["type"], size = 0): Entry => ({ path, type, size, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000 });
  const entries = [e("/srv/app", "dir"), e("/srv/app/z.txt", "file", 5), e("/srv/app/lib", "dir"), e("/srv/app/lib/x.so", "file", 100), e("/srv/app/lib/y.so", "file", 50), e("/srv/app/link", "symlink")];
  expect(treeLevel(entries, "/").items.map((i) => [i.path, i.type, i.size, i.files])).toEqual([["/srv", "dir", 155, 3]]);
  expect(treeLevel(entries, "/srv/app/").items.map((i) => [i.name, i.type, i.size, i.files])).toEqual([["lib", "dir", 150, 2], ["link", "symlink", 0, 0], ["z.txt", "file", 5, 0]]);
  expect(treeLevel(entries, "/srv/ap").items).toEqual([]);
  const bounded = treeLevel(entries, "/srv/app", 2);
  expect(bounded.items.length).toBe(2);
  expect(bounded.truncated).toBe(true);
});
