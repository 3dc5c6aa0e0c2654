/**
 * Is a change the package manager's doing? Two signals, both read-only:
 *  - a lock held right now: dpkg's lock-frontend/lock or rpm's lock file, found by inode in
 *    /proc/locks (who holds it does not matter, only that someone does);
 *  - dpkg's log: the path belongs to a package (dpkg info *.list) that the log shows being
 *    unpacked, configured or removed within the correlation window.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface PackageLabel {
  via: "lock" | "dpkg-log";
  package?: string;
}

const LOCKS = ["var/lib/dpkg/lock-frontend", "var/lib/dpkg/lock", "var/lib/rpm/.rpm.lock"];

export interface PackageManagerDetectorOptions {
  root?: string;
  procLocks?: string;
  windowMs?: number;
  now?: () => number;
  /**
   * The paths FIM watches, as it reports them (relative to `root`). Only package files under
   * them are remembered: FIM never asks about others, and all of dpkg's lists are ~100k paths
   * (about 20 MB in Monitor) where the watched ones are a few thousand. Default: all.
   */
  within?: string[];
}

export function createPackageManagerDetector(opts: PackageManagerDetectorOptions = {}) {
  const root = opts.root ?? "/";
  const prefixes = opts.within?.map((p) => Buffer.from(p.replace(/\/+$/, "")));
  /** Is the line b[i, j) a path under one of the prefixes? Compared in the file's bytes: no string per line. */
  const wanted = (b: Buffer, i: number, j: number) =>
    !prefixes ||
    prefixes.some((d) => d.length === 0 || (j - i >= d.length && b[i + 1] === d[1] && b.compare(d, 0, d.length, i, i + d.length) === 0 && (i + d.length === j || b[i + d.length] === 0x2f)));
  const procLocks = opts.procLocks ?? "/proc/locks";
  const windowMs = opts.windowMs ?? 120_000;
  const now = opts.now ?? Date.now;
  let lockCache = { at: 0, held: false };
  let owners: Map<string, string> | null = null;
  let ownersBuiltAt = 0;

  function lockHeld(): boolean {
    const t = now();
    if (t - lockCache.at < 100) return lockCache.held; // /proc/locks is cheap; cache only within one batch
    let held = false;
    try {
      const inodes = new Set<string>();
      for (const l of LOCKS) {
        try {
          inodes.add(String(statSync(join(root, l)).ino));
        } catch {
          // not this package manager
        }
      }
      if (inodes.size) {
        for (const line of readFileSync(procLocks, "utf8").split("\n")) {
          const dev = line.trim().split(/\s+/)[5]; // "1: POSIX ADVISORY WRITE 1234 08:01:123456 0 EOF" (may have "->")
          const f = line.includes("->") ? line.trim().split(/\s+/)[6] : dev;
          const ino = f?.split(":")[2];
          if (ino && inodes.has(ino)) held = true;
        }
      }
    } catch {
      held = false;
    }
    lockCache = { at: t, held };
    return held;
  }

  function packageOf(path: string): string | undefined {
    const t = now();
    if (!owners || t - ownersBuiltAt > 10 * 60_000) {
      owners = new Map();
      ownersBuiltAt = t;
      const dir = join(root, "var/lib/dpkg/info");
      let names: string[] = [];
      try {
        names = readdirSync(dir).filter((n) => n.endsWith(".list"));
      } catch {
        names = [];
      }
      for (const n of names) {
        const pkg = n.slice(0, -5).split(":")[0];
        try {
          // bytes, not one string: each kept path is then its own small string, not a slice that
          // would keep the whole list alive
          const b = readFileSync(join(dir, n));
          for (let i = 0; i < b.length; ) {
            const end = b.indexOf(0x0a, i);
            const j = end < 0 ? b.length : end;
            if (j > i && wanted(b, i, j)) owners.set(b.toString("utf8", i, j), pkg);
            i = j + 1;
          }
        } catch {
          // unreadable list
        }
      }
    }
    return owners.get(path);
  }

  /** Packages dpkg.log shows being changed within the window (reads only the log's tail). */
  function recentPackages(): Set<string> {
    const out = new Set<string>();
    let text = "";
    try {
      const file = join(root, "var/log/dpkg.log");
      const st = statSync(file);
      if (now() - st.mtimeMs > windowMs) return out;
      const buf = readFileSync(file);
      text = buf.subarray(Math.max(0, buf.length - 256 * 1024)).toString("utf8");
    } catch {
      return out;
    }
    const cutoff = now() - windowMs;
    for (const line of text.split("\n")) {
      const m = line.match(/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+)(?: (\S+))? (\S+)?/);
      if (!m) continue;
      const ts = new Date(m[1].replace(" ", "T")).getTime(); // dpkg logs local time; agent runs with the host's TZ
      if (ts < cutoff) continue;
      const words = line.split(" ");
      const pkg = words[2] === "status" ? words[4] : ["install", "upgrade", "remove", "purge", "configure", "trigproc"].includes(words[2]) ? words[3] : undefined;
      if (pkg) out.add(pkg.split(":")[0]);
    }
    return out;
  }

  return {
    label(path: string): PackageLabel | undefined {
      // dpkg's lists are read only when there is package activity to attribute the change to
      if (lockHeld()) {
        const pkg = packageOf(path);
        return { via: "lock", ...(pkg ? { package: pkg } : {}) };
      }
      const recent = recentPackages();
      if (recent.size === 0) return undefined;
      const pkg = packageOf(path);
      return pkg && recent.has(pkg) ? { via: "dpkg-log", package: pkg } : undefined;
    },
  };
}
