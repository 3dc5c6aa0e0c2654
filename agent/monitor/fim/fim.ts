/**
 * Real-time file integrity monitoring.
 *
 * One inotify watch per directory (Bun's fs.watch; all share one inotify descriptor), at most
 * `maxWatches`. An event queues its path; after `debounceMs` the path is compared with the
 * baseline (SQLite) and a security event goes out with before/after values. A periodic full
 * rescan runs in slices beside the watches (they are never paused) and reports, labelled
 * `detectedBy: "rescan"`, what the watches missed: queue overflow, directories over the cap,
 * changes while the agent was down. Noise control: ignore globs, a token-bucket rate limit with a
 * summary event for what it held back, and package-manager labelling.
 */
import { createHash } from "node:crypto";
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, watch, type FSWatcher } from "node:fs";
import { dirname, join } from "node:path";
import type { SecurityEvent } from "../../../src/ingest/frame/frame.ts";
import { openBaseline, type Baseline, type FileFacts } from "./baseline.ts";
import type { FimOptions } from "./config.ts";
import type { PackageLabel } from "./package-manager.ts";

export type DetectedBy = "realtime" | "rescan" | "startup";

export interface FimStats {
  watches: number;
  unwatchedDirs: number;
  files: number;
  pending: number;
  eventsEmitted: number;
  eventsSuppressed: number;
  queueOverflows: number;
  rescans: number;
  lastRescanMs: number;
  rescanRunning: boolean;
  ignored: number;
}

export interface FimDeps {
  now?: () => number;
  packageLabel?: (path: string) => PackageLabel | undefined;
}

/** A path as the host sees it: `root` (a prepared tree in tests, "/" in production) taken off. */
export function hostPath(root: string, path: string): string {
  return root === "/" ? path : path.startsWith(root) ? path.slice(root.replace(/\/$/, "").length) || "/" : path;
}

export function globToRegExp(glob: string): RegExp {
  let s = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === "*" && glob[i + 1] === "*") {
      s += ".*";
      i++;
      if (glob[i + 1] === "/") i++, (s += "(?:/)?");
    } else if (ch === "*") s += "[^/]*";
    else if (ch === "?") s += "[^/]";
    else s += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${s}$`);
}

const HASH_CHUNK = 1 << 20;

export function factsOf(path: string, hashMaxBytes: number): FileFacts | null {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  const base = { size: st.size, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, ino: st.ino, mtimeMs: st.mtimeMs };
  if (st.isDirectory()) return { type: "dir", sha256: null, ...base, size: 0 };
  if (st.isSymbolicLink()) {
    let target = "";
    try {
      target = readlinkSync(path);
    } catch {
      target = "";
    }
    return { type: "link", sha256: null, ...base, target };
  }
  if (!st.isFile()) return { type: "other", sha256: null, ...base };
  let sha256: string | null = null;
  if (st.size <= hashMaxBytes) {
    let fd = -1;
    try {
      fd = openSync(path, "r");
      const h = createHash("sha256");
      const buf = Buffer.allocUnsafe(Math.min(HASH_CHUNK, Math.max(1, st.size)));
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        h.update(buf.subarray(0, n));
      }
      sha256 = h.digest("hex");
    } catch {
      sha256 = null; // unreadable (permissions) or vanished: compared by attributes only
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
  return { type: "file", sha256, ...base };
}

/** Severity by what the path is: credentials and boot files first, binaries, then the rest. */
export function severityOf(path: string): number {
  if (/^\/etc\/(shadow|gshadow|sudoers)|\/\.ssh\/authorized_keys|^\/etc\/sudoers\.d\/|^\/boot\//.test(path)) return 8;
  if (/^\/etc\/(passwd|group|pam\.d\/|ssh\/sshd_config|ld\.so\.preload|crontab|cron\.)/.test(path)) return 7;
  if (/^\/(usr\/)?(local\/)?s?bin\//.test(path)) return 7;
  return 5;
}

const publicFacts = (f: FileFacts | undefined | null) =>
  f ? { type: f.type, sha256: f.sha256, size: f.size, mode: f.mode.toString(8).padStart(4, "0"), uid: f.uid, gid: f.gid, ...(f.target !== undefined ? { target: f.target } : {}) } : null;

export interface Fim {
  start(): Promise<void>;
  stop(): Promise<void>;
  rescan(): Promise<number>;
  stats(): FimStats;
}

export function createFim(o: FimOptions, sink: (events: SecurityEvent[]) => void, deps: FimDeps = {}): Fim {
  const now = deps.now ?? Date.now;
  const baseline: Baseline = openBaseline(o.dbPath);
  const ignore = [...o.ignore, o.dbPath, `${o.dbPath}-wal`, `${o.dbPath}-shm`, `${o.dbPath}-journal`].map((g) => (g.includes("*") || g.includes("?") ? globToRegExp(g) : new RegExp(`^${g.replace(/[.+^${}()|[\]\\*?]/g, "\\$&")}$`)));
  const watchers = new Map<string, FSWatcher>();
  // Configured paths that do not exist (yet): a watch on their nearest existing ancestor notices
  // when they appear (a new user's ~/.ssh), without reporting anything else in that directory.
  const ancestorWatches = new Map<string, FSWatcher>();
  const unwatched = new Set<string>();
  const pending = new Map<string, number>(); // path -> first event time (ms)
  let flushTimer: ReturnType<typeof setTimeout> | null = null;
  let rescanTimer: ReturnType<typeof setInterval> | null = null;
  let rescanRunning: Promise<number> | null = null;
  let stopped = false;
  let watchLimitReported = false;
  let firstRun = false;
  const stats = { eventsEmitted: 0, eventsSuppressed: 0, queueOverflows: 0, rescans: 0, lastRescanMs: 0, ignored: 0 };
  // token bucket
  let tokens = o.rateBurst;
  let refilledAt = now();
  let suppressedSince = 0;
  const suppressedSamples: string[] = [];

  const isIgnored = (p: string) => ignore.some((r) => r.test(p));

  function emit(events: SecurityEvent[]) {
    if (!events.length) return;
    const t = now();
    tokens = Math.min(o.rateBurst, tokens + ((t - refilledAt) / 1000) * o.ratePerSecond);
    refilledAt = t;
    const out: SecurityEvent[] = [];
    if (suppressedSince > 0 && tokens >= 1) {
      out.push({ ts: t, type: "fim.rate_limited", severity: 4, data: { suppressed: suppressedSince, samples: suppressedSamples.splice(0), ratePerSecond: o.ratePerSecond, burst: o.rateBurst } });
      suppressedSince = 0;
      tokens -= 1;
    }
    for (const e of events) {
      if (tokens >= 1 || e.type === "fim.watch_limit" || e.type === "fim.queue_overflow") {
        tokens = Math.max(0, tokens - 1);
        out.push(e);
      } else {
        suppressedSince++;
        stats.eventsSuppressed++;
        if (suppressedSamples.length < 20 && e.path) suppressedSamples.push(e.path);
      }
    }
    stats.eventsEmitted += out.length;
    if (out.length) sink(out);
  }

  function addWatch(dir: string): void {
    if (watchers.has(dir) || stopped) return;
    if (watchers.size >= o.maxWatches) {
      if (!unwatched.has(dir)) unwatched.add(dir);
      if (!watchLimitReported) {
        watchLimitReported = true;
        emit([{ ts: now(), type: "fim.watch_limit", severity: 4, path: dir, data: { maxWatches: o.maxWatches, note: "directories over the cap are checked by the periodic rescan only" } }]);
      }
      return;
    }
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => onChange(dir, name == null ? null : String(name)));
      w.on("error", () => {
        watchers.delete(dir);
        w.close();
      });
      watchers.set(dir, w);
      unwatched.delete(dir);
    } catch {
      // vanished or unreadable; the rescan will notice
    }
  }

  function removeWatchesUnder(dir: string) {
    for (const [d, w] of watchers) {
      if (d === dir || d.startsWith(dir + "/")) {
        w.close();
        watchers.delete(d);
      }
    }
    for (const d of unwatched) if (d === dir || d.startsWith(dir + "/")) unwatched.delete(d);
  }

  const leadsToRoot = (p: string) => o.paths.some((r) => r === p || r.startsWith(p + "/"));
  const isDirectory = (p: string) => {
    try {
      return lstatSync(p).isDirectory();
    } catch {
      return false;
    }
  };

  function armMissingRoots() {
    if (stopped) return;
    const want = new Set<string>();
    for (const r of o.paths) {
      if (factsOf(r, 0)) continue;
      let a = dirname(r);
      while (a !== "/" && !isDirectory(a)) a = dirname(a);
      if (!watchers.has(a)) want.add(a);
    }
    for (const [d, w] of ancestorWatches) if (!want.has(d)) (w.close(), ancestorWatches.delete(d));
    for (const d of want) {
      if (ancestorWatches.has(d)) continue;
      try {
        ancestorWatches.set(d, watch(d, { persistent: false }, (_e, name) => onAncestorChange(d, name == null ? null : String(name))));
      } catch {
        // unreadable: the rescan still covers it
      }
    }
  }

  function onAncestorChange(dir: string, name: string | null) {
    if (stopped || !name) return;
    const p = join(dir, name);
    if (!leadsToRoot(p)) return; // something else in that directory: not ours to report
    const events: SecurityEvent[] = [];
    for (const r of o.paths) if ((r === p || r.startsWith(p + "/")) && factsOf(r, 0)) events.push(...check(r, "realtime"));
    for (const e of events) delete (e.data as any)._ino;
    emit(events);
    armMissingRoots();
  }

  function onChange(dir: string, name: string | null) {
    if (stopped) return;
    const path = name ? join(dir, name) : dir;
    if (isIgnored(path)) {
      stats.ignored++;
      return;
    }
    // A watched directory that is gone reports its own removal through its watch only, and
    // then without a usable name: check the directory itself too.
    if (path !== dir && !isDirectory(dir)) queue(dir);
    queue(path);
  }

  function queue(path: string) {
    if (!pending.has(path)) {
      if (pending.size >= o.maxPending) {
        // Bounded: drop the queue, say so, and let a rescan find what changed.
        pending.clear();
        stats.queueOverflows++;
        emit([{ ts: now(), type: "fim.queue_overflow", severity: 4, data: { maxPending: o.maxPending, action: "rescan scheduled" } }]);
        void rescan();
        return;
      }
      pending.set(path, now());
    }
    flushTimer ??= setTimeout(flush, o.debounceMs);
  }

  function flush() {
    flushTimer = null;
    const batch = [...pending];
    pending.clear();
    const events: SecurityEvent[] = [];
    const deleted: SecurityEvent[] = [];
    const created: SecurityEvent[] = [];
    for (const [path, firstMs] of batch) {
      for (const e of check(path, "realtime", firstMs)) {
        if (e.type === "fim.delete") deleted.push(e);
        else if (e.type === "fim.create") created.push(e);
        else events.push(e);
      }
    }
    // A delete and a create of the same inode in one batch is a rename.
    for (const c of created) {
      const after = c.data!.after as { type: string; sha256: string | null } & Record<string, unknown>;
      const ino = (c.data as any)._ino;
      const i = deleted.findIndex((d) => (d.data as any)._ino === ino && (d.data!.before as any)?.type === after.type);
      if (i >= 0) {
        const d = deleted.splice(i, 1)[0];
        events.push({ ...c, type: "fim.rename", severity: Math.max(c.severity, d.severity), data: { ...c.data, from: d.path, to: c.path, before: d.data!.before, changes: ["path"] } });
      } else events.push(c);
    }
    events.push(...deleted);
    for (const e of events) delete (e.data as any)._ino;
    events.sort((a, b) => a.ts - b.ts);
    emit(events);
  }

  function event(type: string, path: string, before: FileFacts | undefined | null, after: FileFacts | null, detectedBy: DetectedBy, changes: string[], firstMs: number): SecurityEvent {
    const rel = hostPath(o.root, path);
    const label = deps.packageLabel?.(rel);
    const t = now();
    return {
      ts: t,
      type,
      severity: label ? 2 : severityOf(rel),
      path,
      data: {
        before: publicFacts(before),
        after: publicFacts(after),
        changes,
        detectedBy,
        ...(detectedBy === "realtime" ? { detectMs: t - firstMs } : {}),
        ...(label ? { packageManager: label } : {}),
        _ino: (after ?? before)?.ino,
      },
    };
  }

  /** Compares one path with the baseline, updates the baseline, returns the events. */
  function check(path: string, by: DetectedBy, firstMs = now()): SecurityEvent[] {
    const cur = factsOf(path, o.hashMaxBytes);
    const old = baseline.get(path);
    if (!cur && !old) return [];
    if (!cur) {
      const out = [event("fim.delete", path, old, null, by, ["deleted"], firstMs)];
      baseline.delete(path);
      if (old!.type === "dir") {
        const under = baseline.pathsUnder(path);
        baseline.transaction(() => under.forEach((p) => baseline.delete(p)));
        if (under.length) out[0].data!.entriesRemoved = under.length;
        removeWatchesUnder(path);
      }
      if (leadsToRoot(path)) armMissingRoots(); // a watched root went away: watch for its return
      return out;
    }
    baseline.put(path, cur);
    if (!old) {
      const out = firstRun && by !== "realtime" ? [] : [event("fim.create", path, null, cur, by, ["created"], firstMs)];
      if (cur.type === "dir") {
        addWatch(path);
        // Files written into a new directory before its watch existed are found here.
        if (by === "realtime") for (const name of safeList(path)) if (!isIgnored(join(path, name))) out.push(...check(join(path, name), by, firstMs));
      }
      return out;
    }
    const changes: string[] = [];
    if (old.type !== cur.type || old.sha256 !== cur.sha256 || (cur.sha256 === null && (old.size !== cur.size || old.mtimeMs !== cur.mtimeMs)) || old.target !== cur.target) {
      if (cur.type !== "dir") changes.push("content");
    }
    if (old.uid !== cur.uid || old.gid !== cur.gid) changes.push("owner");
    if (old.mode !== cur.mode) changes.push("mode");
    if (old.ino !== cur.ino && cur.type === "file" && !changes.includes("content")) changes.push("replaced");
    if (!changes.length) return [];
    const type = changes.includes("content") || changes.includes("replaced") ? "fim.modify" : changes.includes("owner") ? "fim.owner" : "fim.permission";
    return [event(type, path, old, cur, by, changes, firstMs)];
  }

  function safeList(dir: string): string[] {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }

  /** Walks every configured path in slices; returns the number of events it produced. */
  async function walkAll(by: DetectedBy): Promise<number> {
    let produced = 0;
    let slice = 0;
    const seen = new Set<string>();
    const out: SecurityEvent[] = [];
    const visit = async (path: string) => {
      if (isIgnored(path)) return;
      seen.add(path);
      const evs = check(path, by);
      produced += evs.length;
      out.push(...evs.map((e) => (delete (e.data as any)._ino, e)));
      if (out.length >= 100) emit(out.splice(0));
      if (++slice % o.rescanSlice === 0) await new Promise((r) => setImmediate(r)); // real-time events run between slices
      const f = baseline.get(path);
      if (f?.type === "dir") {
        addWatch(path);
        for (const name of safeList(path).sort()) if (!stopped) await visit(join(path, name));
      }
    };
    for (const root of o.paths) {
      if (stopped) break;
      await visit(root);
      // Baseline entries under this root that the walk did not see were deleted while unwatched.
      for (const p of baseline.pathsUnder(root)) {
        if (!seen.has(p) && !isIgnored(p) && baseline.get(p)) {
          const evs = check(p, by);
          produced += evs.length;
          out.push(...evs.map((e) => (delete (e.data as any)._ino, e)));
        }
      }
      if (!seen.has(root) && baseline.get(root)) out.push(...check(root, by));
    }
    emit(out);
    return produced;
  }

  async function rescan(): Promise<number> {
    if (rescanRunning) return rescanRunning;
    const t0 = performance.now();
    rescanRunning = walkAll("rescan").finally(() => {
      armMissingRoots();
      rescanRunning = null;
      stats.rescans++;
      stats.lastRescanMs = performance.now() - t0;
    });
    return rescanRunning;
  }

  return {
    async start() {
      firstRun = baseline.count() === 0;
      // Watch each directory before listing it, so nothing slips between the walk and the watch.
      await walkAll("startup");
      firstRun = false;
      armMissingRoots();
      if (o.rescanIntervalMs > 0) rescanTimer = setInterval(() => void rescan(), o.rescanIntervalMs);
    },
    async stop() {
      stopped = true;
      if (rescanTimer) clearInterval(rescanTimer);
      if (flushTimer) clearTimeout(flushTimer);
      flushTimer = null;
      await rescanRunning?.catch(() => 0);
      for (const w of [...watchers.values(), ...ancestorWatches.values()]) w.close();
      watchers.clear();
      ancestorWatches.clear();
      baseline.close();
    },
    rescan,
    stats: () => ({
      watches: watchers.size,
      unwatchedDirs: unwatched.size,
      files: baseline.count(),
      pending: pending.size,
      rescanRunning: rescanRunning !== null,
      ...stats,
    }),
  };
}

