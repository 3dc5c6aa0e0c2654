/**
 * Backup engine vs restic (Debian's restic 0.14) on the same generated tree, both to a local
 * directory, in one run: full backup MB/s, incremental time after ~1 % of the tree changed,
 * repository size, restore MB/s. Prints progress on stderr and one JSON line last.
 *   npm run bench:backup [-- --quick] [--mb N] [--dir DIR] [--keep]
 * The tree is deterministic (seeded): compressible text, random binary, many small files, and
 * duplicates of some files. restic missing: its side is skipped loudly (a bench, not a test).
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, writeSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { arg, environment, flag, round } from "./support.ts";

const quick = flag("quick");
const totalMb = Number(arg("mb", quick ? "64" : "1024"));
const work = arg("dir", "") || mkdtempSync(join(tmpdir(), "sm-bench-backup-"));
const CLI = resolve(import.meta.dir, "../agent/backup/cli.ts");
const PASSWORD = "bench password";
const log = (...a: unknown[]) => console.error("[bench:backup]", ...a);

/** xorshift128: deterministic bytes, fast. */
function rng(seed: number) {
  let x = seed | 1, y = 362436069, z = 521288629, w = 88675123;
  const next = () => {
    const t = x ^ (x << 11);
    x = y; y = z; z = w;
    return (w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0);
  };
  return {
    next,
    int: (n: number) => next() % n,
    bytes(n: number): Uint8Array {
      const u = new Uint32Array(Math.ceil(n / 4));
      for (let i = 0; i < u.length; i++) u[i] = next();
      return new Uint8Array(u.buffer, 0, n);
    },
  };
}

const r = rng(20261205);
const words = Array.from({ length: 2000 }, () => Array.from({ length: 2 + r.int(9) }, () => String.fromCharCode(97 + r.int(26))).join(""));
function text(n: number): Uint8Array {
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const line = `${new Date(1_700_000_000_000 + r.int(1e9)).toISOString()} host${r.int(50)} ${Array.from({ length: 4 + r.int(12) }, () => words[r.int(words.length)]).join(" ")}\n`;
    parts.push(line);
    len += line.length;
  }
  return new TextEncoder().encode(parts.join("")).subarray(0, n);
}

function generate(root: string, mb: number): { files: number; bytes: number } {
  const budget = mb * 1024 * 1024;
  let bytes = 0;
  let files = 0;
  const put = (rel: string, data: Uint8Array) => {
    const p = join(root, rel);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, data);
    bytes += data.length;
    files++;
  };
  // 35 % text logs (64 KiB .. 8 MiB), 40 % random binary (256 KiB .. 32 MiB), 10 % small files (1..32 KiB), 15 % duplicates
  let i = 0;
  const logMax = Math.min(8 << 20, budget / 40);
  const blobMax = Math.min(32 << 20, budget / 20);
  while (bytes < budget * 0.35) put(`logs/d${i % 8}/app-${i++}.log`, text(16384 + r.int(logMax)));
  while (bytes < budget * 0.75) put(`data/d${i % 8}/blob-${i++}.bin`, r.bytes(65536 + r.int(blobMax)));
  while (bytes < budget * 0.85) put(`small/d${i % 32}/f-${i++}.${i % 2 ? "txt" : "bin"}`, i % 2 ? text(1024 + r.int(32768)) : r.bytes(1024 + r.int(32768)));
  const originals = listFiles(root).filter((f) => !f.includes("/small/"));
  while (bytes < budget && originals.length) {
    const src = originals.splice(r.int(originals.length), 1)[0]!;
    const dst = join(root, "copies", `c${i++}-${src.slice(src.lastIndexOf("/") + 1)}`);
    mkdirSync(join(dst, ".."), { recursive: true });
    copyFileSync(src, dst);
    bytes += statSync(dst).size;
    files++;
  }
  return { files, bytes };
}

/** About 1 % of the bytes: overwrite a region in some binary files, append to some logs, add new files. */
function change(root: string, mb: number): number {
  const target = mb * 1024 * 1024 * 0.01;
  let changed = 0;
  const all = listFiles(root);
  const bins = all.filter((f) => f.endsWith(".bin") && f.includes("/data/"));
  const logs = all.filter((f) => f.endsWith(".log"));
  for (let k = 0; changed < target * 0.4 && k < 100; k++) {
    const f = bins[r.int(bins.length)]!;
    const size = statSync(f).size;
    const n = Math.min(size, 64 * 1024);
    const fd = openSync(f, "r+");
    writeSync(fd, r.bytes(n), 0, n, r.int(Math.max(1, size - n)));
    closeSync(fd);
    changed += n;
  }
  for (let k = 0; changed < target * 0.7 && k < 100; k++) {
    const add = text(32 * 1024);
    appendFileSync(logs[r.int(logs.length)]!, add);
    changed += add.length;
  }
  mkdirSync(join(root, "new"), { recursive: true });
  for (let k = 0; changed < target && k < 1000; k++) {
    const data = k % 2 ? text(128 * 1024) : r.bytes(128 * 1024);
    writeFileSync(join(root, "new", `n${k}`), data);
    changed += data.length;
  }
  return changed;
}

function listFiles(root: string): string[] {
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

const dirBytes = (root: string) => listFiles(root).reduce((s, f) => s + statSync(f).size, 0);

function timed(cmd: string[], env: Record<string, string>): number {
  // each timed step starts with nothing left to write back from the steps before it (generating
  // and copying the tree, the other side's runs): without it, whichever side ran next paid for
  // the kernel flushing the previous step's gigabyte in the background
  spawnSync("sync");
  const t0 = performance.now();
  const res = spawnSync(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  const s = (performance.now() - t0) / 1000;
  if (res.status !== 0) throw new Error(`${cmd.join(" ")} failed (${res.status}): ${res.stderr?.toString().slice(-2000)}`);
  return s;
}

function same(a: string, b: string): boolean {
  return spawnSync("diff", ["-rq", "--no-dereference", a, b], { stdio: "ignore" }).status === 0;
}

interface Side {
  full_s: number;
  incremental_s: number;
  restore_s: number;
  repo_bytes_full: number;
  repo_bytes: number;
  restore_exact: boolean;
}

function runSide(name: string, src: string, cmds: { init: string[]; backup: string[]; restore: (target: string) => string[] }, env: Record<string, string>, changeTree: () => void): Side {
  const repo = join(work, `${name}-repo`);
  const out = join(work, `${name}-out`);
  rmSync(repo, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
  timed(cmds.init.map((a) => a.replace("REPO", repo)), env);
  log(name, "full backup…");
  const full_s = timed(cmds.backup.map((a) => a.replace("REPO", repo)), env);
  const repo_bytes_full = dirBytes(repo);
  changeTree();
  log(name, "incremental backup…");
  const incremental_s = timed(cmds.backup.map((a) => a.replace("REPO", repo)), env);
  const repo_bytes = dirBytes(repo);
  log(name, "restore…");
  const restore_s = timed(cmds.restore(out).map((a) => a.replace("REPO", repo)), env);
  const restore_exact = same(src, join(out, src));
  rmSync(out, { recursive: true, force: true });
  return { full_s, incremental_s, restore_s, repo_bytes_full, repo_bytes, restore_exact };
}

const src = join(work, "tree");
rmSync(src, { recursive: true, force: true });
log(`generating ${totalMb} MB under ${src}`);
const gen = generate(src, totalMb);
const treeMb = gen.bytes / 1e6;
log(`tree: ${gen.files} files, ${round(treeMb, 1)} MB`);
// Both sides back up the same tree: the change is applied once to a pristine copy per side.
const pristine = join(work, "pristine");
rmSync(pristine, { recursive: true, force: true });
spawnSync("cp", ["-a", src, pristine]);
let changedBytes = 0;
const reset = () => {
  rmSync(src, { recursive: true, force: true });
  spawnSync("cp", ["-a", pristine, src]);
};

const bun = process.execPath;
const ours = runSide(
  "servermind",
  src,
  { init: [bun, CLI, "--repo", "REPO", "init"], backup: [bun, CLI, "--repo", "REPO", "backup", src], restore: (t) => [bun, CLI, "--repo", "REPO", "restore", "latest", t] },
  { SERVERMIND_BACKUP_PASSWORD: PASSWORD },
  () => {
    const rs = rng(7);
    Object.assign(r, rs);
    changedBytes = change(src, totalMb);
  },
);
const afterChangeMb = dirBytes(src) / 1e6;

const hasRestic = spawnSync("restic", ["version"], { stdio: "ignore" }).status === 0;
let restic: Side | null = null;
let resticVersion = "";
if (!hasRestic) {
  log("!!! restic is not installed (apt-get install restic): its side is SKIPPED, ratios are null !!!");
} else {
  resticVersion = spawnSync("restic", ["version"]).stdout.toString().trim();
  reset();
  restic = runSide(
    "restic",
    src,
    {
      init: ["restic", "-r", "REPO", "init"],
      backup: ["restic", "-r", "REPO", "backup", "--host", "bench", src],
      restore: (t) => ["restic", "-r", "REPO", "restore", "latest", "--target", t],
    },
    { RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: join(work, "restic-cache") },
    () => {
      const rs = rng(7);
      Object.assign(r, rs);
      change(src, totalMb);
    },
  );
}

if (!flag("keep") && !arg("dir", "")) rmSync(work, { recursive: true, force: true });
const ratio = (a: number, b: number | undefined) => (b ? round(a / b) : null);
const result = {
  bench: "backup",
  ...environment(),
  quick,
  restic: resticVersion || null,
  tree_files: gen.files,
  tree_mb: round(treeMb, 1),
  changed_mb: round(changedBytes / 1e6, 2),
  full_mb_per_s: round(treeMb / ours.full_s, 1),
  restic_full_mb_per_s: restic ? round(treeMb / restic.full_s, 1) : null,
  incremental_s: round(ours.incremental_s, 2),
  restic_incremental_s: restic ? round(restic.incremental_s, 2) : null,
  repo_bytes_full: ours.repo_bytes_full,
  restic_repo_bytes_full: restic?.repo_bytes_full ?? null,
  repo_bytes: ours.repo_bytes,
  restic_repo_bytes: restic?.repo_bytes ?? null,
  restore_mb_per_s: round(afterChangeMb / ours.restore_s, 1),
  restic_restore_mb_per_s: restic ? round(afterChangeMb / restic.restore_s, 1) : null,
  restore_exact: ours.restore_exact,
  restic_restore_exact: restic?.restore_exact ?? null,
  ratio_full_speed: ratio(restic ? restic.full_s : 0, ours.full_s),
  ratio_incremental_speed: restic ? ratio(restic.incremental_s, ours.incremental_s) : null,
  ratio_repo_size: restic ? ratio(ours.repo_bytes, restic.repo_bytes) : null,
  ratio_restore_speed: restic ? ratio(restic.restore_s, ours.restore_s) : null,
};
console.log(JSON.stringify(result));
