/** FIM settings (config keys `monitor.fim.*`), with the defaults from issue 5. */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const DEFAULT_PATHS = ["/etc", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/boot", "/root/.ssh"];

export const DEFAULT_IGNORE = ["/etc/mtab", "/etc/adjtime", "/etc/ld.so.cache", "**/*.swp", "**/*~", "**/.#*", "**/*.servermind-tmp-*"];

export interface FimOptions {
  /** The host's "/" as seen by paths (a test root in tests); classifies paths, "/" in production. */
  root: string;
  /** Directories or files to watch (absolute). Defaults: DEFAULT_PATHS + users' ~/.ssh. */
  paths: string[];
  /** Globs over absolute paths; `*` stays within a component, `**` crosses them. */
  ignore: string[];
  /** Hard cap on inotify watches (one per directory); directories beyond it are rescan-only. */
  maxWatches: number;
  /** Full rescan period; real-time watching continues during it. */
  rescanIntervalMs: number;
  /** Events per second allowed out, with a burst; the rest are counted and summarized. */
  ratePerSecond: number;
  rateBurst: number;
  /** Changes to one path within this window are coalesced into one check. */
  debounceMs: number;
  /** Paths waiting for a check; past it the queue is dropped and a rescan is scheduled. */
  maxPending: number;
  /** Files larger than this are compared by size/mtime/inode only. */
  hashMaxBytes: number;
  /** Baseline database file (Monitor's state directory). */
  dbPath: string;
  /** Files processed per slice of a rescan before yielding to the event loop. */
  rescanSlice: number;
}

export function defaultFimOptions(dbPath: string, root = "/"): FimOptions {
  return {
    root,
    paths: [...DEFAULT_PATHS, ...sshDirsOfUsers(root)].map((p) => (root === "/" ? p : join(root, p))),
    ignore: DEFAULT_IGNORE,
    maxWatches: 8192,
    rescanIntervalMs: 6 * 3600_000,
    ratePerSecond: 50,
    rateBurst: 500,
    debounceMs: 50,
    maxPending: 10_000,
    hashMaxBytes: 256 << 20,
    dbPath,
    rescanSlice: 200,
  };
}

/** ~/.ssh of every account with a real home (authorized_keys lives there). */
export function sshDirsOfUsers(root = "/"): string[] {
  let text = "";
  try {
    text = readFileSync(join(root, "etc/passwd"), "utf8");
  } catch {
    return [];
  }
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(":");
    const home = f[5];
    if (!home || home === "/" || home === "/nonexistent" || home.startsWith("/proc") || home === "/root") continue;
    if (/(nologin|false)$/.test(f[6] ?? "") && Number(f[2]) < 1000) continue;
    out.add(`${home.replace(/\/$/, "")}/.ssh`);
  }
  return [...out].sort();
}
