/**
 * FIM detections vs AIDE (Debian package `aide`) on the same change set: every change AIDE
 * reports, we must report too (by path and kind: added / removed / changed).
 *
 * A tree of files is baselined by AIDE (--init) and by our FIM; then a scripted change set runs
 * (content edits, same-size edits, truncation, chmod, setuid, chown, chgrp, create, delete,
 * rename, atomic replace, new directory with files, removed directory with files, symlink
 * retarget, deep paths). AIDE's --check report is compared with what FIM emitted, once
 * with real-time watches and once with watches capped at 0 (periodic rescan only).
 * AIDE's rule: p+u+g+s+sha256+ftype+l (content, permissions, owner, group, size, type, link
 * target); time attributes are left out because FIM does not report mtime-only changes.
 *
 *   bun bench/fim-aide.bench.ts [--files 2000] [--out bench/results/fim-aide.json]
 * Quick bench (a few seconds).
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFim } from "../agent/monitor/fim/fim.ts";
import { defaultFimOptions } from "../agent/monitor/fim/config.ts";
import type { SecurityEvent } from "../src/ingest/frame/frame.ts";
import { arg, environment } from "./support.ts";

type Kind = "added" | "removed" | "changed";

function buildTree(root: string, files: number) {
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${i % 20}`, `s${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.conf`), `key${i} = value ${i}\n`.repeat(1 + (i % 5)));
  }
  symlinkSync("d0/s0/f0.conf", join(root, "link"));
  mkdirSync(join(root, "gone/inner"), { recursive: true });
  writeFileSync(join(root, "gone/a"), "a\n");
  writeFileSync(join(root, "gone/inner/b"), "b\n");
}

/** The change set; returns nothing, AIDE decides what it counts. */
function applyChanges(root: string) {
  const f = (i: number) => join(root, `d${i % 20}`, `s${i % 7}`, `f${i}.conf`);
  writeFileSync(f(1), readFileSync(f(1), "utf8").replace("value", "VALUE")); // same size
  appendFileSync(f(2), "extra = 1\n");
  truncateSync(f(3), 0);
  chmodSync(f(4), 0o600);
  chmodSync(f(5), 0o4755); // setuid
  chownSync(f(6), 1001, 0);
  chownSync(f(7), 0, 1001);
  writeFileSync(join(root, "d3/s3/new.conf"), "new\n");
  unlinkSync(f(8));
  renameSync(f(9), join(root, "d9/s2/renamed.conf"));
  writeFileSync(f(10) + ".tmp", "replaced atomically\n");
  renameSync(f(10) + ".tmp", f(10));
  mkdirSync(join(root, "newdir/deeper"), { recursive: true });
  writeFileSync(join(root, "newdir/deeper/payload"), "payload\n");
  rmSync(join(root, "gone"), { recursive: true });
  unlinkSync(join(root, "link"));
  symlinkSync("d1/s1/f1.conf", join(root, "link"));
  writeFileSync(f(11), "completely different content\n");
}

function aide(args: string[], conf: string) {
  return Bun.spawnSync(["aide", ...args, "-c", conf], { stdout: "pipe", stderr: "pipe" });
}

/** AIDE's text report: the "Added/Removed/Changed entries" sections, one "<flags>: <path>" a line. */
function parseAideReport(text: string, root: string): Map<string, Kind> {
  const out = new Map<string, Kind>();
  let section: Kind | null = null;
  for (const line of text.split("\n")) {
    const h = line.match(/^(Added|Removed|Changed) entries:\s*$/);
    if (h) {
      section = h[1].toLowerCase() as Kind;
      continue;
    }
    if (/^Detailed information|^The attributes of/.test(line)) section = null;
    const m = section && line.match(/^\S[^:]*: (\/.*)$/);
    if (m && m[1].startsWith(root + "/")) out.set(m[1], section!);
  }
  return out;
}

function ourDetections(events: SecurityEvent[]): Map<string, Set<Kind>> {
  const out = new Map<string, Set<Kind>>();
  const put = (p: string, k: Kind) => (out.get(p) ?? out.set(p, new Set()).get(p)!).add(k);
  for (const e of events) {
    if (!e.path) continue;
    if (e.type === "fim.create") put(e.path, "added");
    else if (e.type === "fim.delete") {
      put(e.path, "removed");
    } else if (e.type === "fim.rename") {
      put(String(e.data!.from), "removed");
      put(String(e.data!.to), "added");
    } else if (["fim.modify", "fim.permission", "fim.owner"].includes(e.type)) put(e.path, "changed");
  }
  return out;
}

export async function run(mode: "realtime" | "rescan", files: number) {
  const work = mkdtempSync(join(tmpdir(), "servermind-aide-"));
  const root = join(work, "tree");
  mkdirSync(root);
  buildTree(root, files);
  const conf = join(work, "aide.conf");
  writeFileSync(conf, [`database_in=file:${work}/aide.db`, `database_out=file:${work}/aide.db.new`, "gzip_dbout=no", "report_url=stdout", "SM = p+u+g+s+sha256+ftype+l", `${root} SM`, ""].join("\n"));
  const t0 = performance.now();
  const init = aide(["--init"], conf);
  if (init.exitCode !== 0) throw new Error(`aide --init failed: ${init.stderr}`);
  const aideInitMs = performance.now() - t0;
  renameSync(`${work}/aide.db.new`, `${work}/aide.db`);

  const events: SecurityEvent[] = [];
  const fim = createFim({ ...defaultFimOptions(join(work, "fim.db"), work), paths: [root], rescanIntervalMs: 0, maxWatches: mode === "realtime" ? 8192 : 0, ratePerSecond: 1e6, rateBurst: 1e6 }, (e) => events.push(...e));
  const f0 = performance.now();
  await fim.start();
  const fimInitMs = performance.now() - f0;
  applyChanges(root);
  await Bun.sleep(500);
  if (mode === "rescan") await fim.rescan();
  const stats = fim.stats();
  await fim.stop();

  const c0 = performance.now();
  const check = aide(["--check"], conf);
  const aideCheckMs = performance.now() - c0;
  const theirs = parseAideReport(check.stdout.toString(), root);
  // AIDE lists every entry of a removed directory; FIM reports the directory once with a count.
  const ours = ourDetections(events.filter((e) => e.type.startsWith("fim.")));
  const removedDirs = events.filter((e) => e.type === "fim.delete" && (e.data!.before as any)?.type === "dir").map((e) => e.path!);
  const missed: Array<{ path: string; aide: Kind }> = [];
  for (const [p, k] of theirs) {
    const hit = ours.get(p)?.has(k) || (k === "removed" && removedDirs.some((d) => p.startsWith(d + "/")));
    if (!hit) missed.push({ path: p.slice(root.length), aide: k });
  }
  const extra = [...ours].filter(([p]) => !theirs.has(p)).map(([p, k]) => ({ path: p.slice(root.length), ours: [...k] }));
  rmSync(work, { recursive: true, force: true });
  return {
    mode,
    aideChanges: theirs.size,
    found: theirs.size - missed.length,
    recall: theirs.size ? (theirs.size - missed.length) / theirs.size : 1,
    missed,
    extraOnlyOurs: extra,
    fimEvents: events.length,
    watches: stats.watches,
    unwatchedDirs: stats.unwatchedDirs,
    ms: { aideInit: Math.round(aideInitMs), aideCheck: Math.round(aideCheckMs), fimBaseline: Math.round(fimInitMs) },
  };
}

if (import.meta.main) {
  const files = Number(arg("files", "2000"));
  const aideVersion = Bun.spawnSync(["aide", "--version"]).stderr.toString().split("\n")[0] || Bun.spawnSync(["aide", "--version"]).stdout.toString().split("\n")[0];
  const results = [await run("realtime", files), await run("rescan", files)];
  const report = { bench: "fim-aide", env: environment(), aide: aideVersion.trim(), files, results, everyAideChangeFound: results.every((r) => r.missed.length === 0) };
  const out = arg("out", "");
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report));
}
