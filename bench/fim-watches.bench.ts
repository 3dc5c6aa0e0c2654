/**
 * How many files and directories FIM watches within what memory, and how long the first
 * baseline takes: synthetic trees of 1k / 5k / 10k directories (3 files each), then the default
 * paths of this machine (read-only). Memory is the process RSS growth and the JS heap after the
 * baseline, with one inotify watch per directory.
 *
 *   bun bench/fim-watches.bench.ts [--out bench/results/fim-watches.json]
 * Full bench (about half a minute).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFim } from "../agent/monitor/fim/fim.ts";
import { defaultFimOptions, DEFAULT_PATHS } from "../agent/monitor/fim/config.ts";
import { arg, environment } from "./support.ts";

const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;

async function measure(label: string, paths: string[], dbDir: string) {
  Bun.gc(true);
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const fim = createFim({ ...defaultFimOptions(join(dbDir, `${label}.db`)), paths, rescanIntervalMs: 0, maxWatches: 65536 }, () => {});
  await fim.start();
  const baselineMs = performance.now() - t0;
  Bun.gc(true);
  const s = fim.stats();
  const rss = process.memoryUsage().rss - rss0;
  const heap = process.memoryUsage().heapUsed - heap0;
  const r0 = performance.now();
  await fim.rescan();
  const rescanMs = performance.now() - r0;
  await fim.stop();
  return { label, files: s.files, watches: s.watches, baselineMs: Math.round(baselineMs), rescanMs: Math.round(rescanMs), rssGrowthMb: mb(rss), heapGrowthMb: mb(heap), kbPerWatch: s.watches ? Math.round(rss / 1024 / s.watches * 10) / 10 : null };
}

/** One case per fresh process, so RSS growth belongs to that case alone. */
async function oneCase(c: string) {
  const work = mkdtempSync(join(tmpdir(), "servermind-fim-watches-"));
  try {
    if (c === "machine") return await measure("this-machine-default-paths", DEFAULT_PATHS, work);
    const dirs = Number(c);
    const root = join(work, "tree");
    for (let d = 0; d < dirs; d++) {
      const dir = join(root, `a${d % 50}`, `b${d}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 3; f++) writeFileSync(join(dir, `f${f}`), `dir ${d} file ${f}\n`);
    }
    return await measure(`synthetic-${dirs}-dirs`, [root], work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const c = arg("case", "");
  if (c) {
    const r = await oneCase(c);
    console.log(JSON.stringify({ ...r, rssTotalMb: mb(process.memoryUsage().rss) }));
    process.exit(0);
  }
  const results = [];
  for (const k of ["1000", "5000", "10000", "machine"]) {
    const p = Bun.spawnSync([process.execPath, import.meta.path, "--case", k], { stdout: "pipe", stderr: "inherit" });
    results.push(JSON.parse(p.stdout.toString().trim().split("\n").pop()!));
  }
  const maxUserWatches = Number(await Bun.file("/proc/sys/fs/inotify/max_user_watches").text());
  const report = { bench: "fim-watches", env: environment(), inotifyMaxUserWatches: maxUserWatches, results };
  const out = arg("out", "");
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report));
}
