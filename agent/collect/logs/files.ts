/**
 * Follows log files (and the log files inside directories) across rotation.
 *
 * Each file stays open; a poll first drains the open descriptor to its end (so the tail of a
 * file renamed away by logrotate is not lost), then reopens the path when its inode changed or it
 * shrank (copytruncate). Offsets are saved only through `commit()`, which the Collector calls
 * once the lines it was given are safely in the spool, so a crash re-reads instead of losing.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { replaceFile } from "../../state-file.ts";
import { basename, join } from "node:path";
import { clampMessage, guessSeverity, type LogLine } from "./line.ts";

export interface FileTailOptions {
  /** Files, or directories searched two levels deep for log files. */
  paths: string[];
  /** Where offsets are kept between runs (JSON). */
  statePath: string;
  /** Files seen for the first time on the very first run start at their end (default) or at 0. */
  startAtEnd?: boolean;
  /** Bytes read per file per poll, at most (bounds memory and frame size). */
  maxBytesPerPoll?: number;
  now?: () => number;
}

export interface FileTail {
  poll(): LogLine[];
  /** Persists the offsets of everything returned by poll() so far. */
  commit(): void;
  close(): void;
}

const LOG_NAME = /(\.log|^syslog|^messages|^secure|^kern\.log|^auth\.log|^daemon\.log|^debug)$/;

interface Tracked {
  fd: number;
  ino: number;
  offset: number;
  /** bytes of an unfinished last line */
  partial: string;
}

function findLogFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = join(dir, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < 2 && n !== "journal") walk(p, depth + 1);
      } else if (st.isFile() && LOG_NAME.test(n)) out.push(p);
    }
  };
  for (const p of paths) {
    try {
      if (statSync(p).isDirectory()) walk(p, 1);
      else out.push(p);
    } catch {
      /* not there yet; looked for again next poll */
    }
  }
  return out;
}

export function createFileTail(opts: FileTailOptions): FileTail {
  const maxBytes = opts.maxBytesPerPoll ?? 1 << 20;
  const now = opts.now ?? Date.now;
  let saved: Record<string, { ino: number; offset: number }> = {};
  const firstRun = !existsSync(opts.statePath);
  try {
    saved = JSON.parse(readFileSync(opts.statePath, "utf8"));
  } catch {
    saved = {};
  }
  const open = new Map<string, Tracked>();
  let knownOnce = false;

  function openFile(path: string, atEnd: boolean): Tracked | undefined {
    try {
      const fd = openSync(path, "r");
      const st = fstatSync(fd);
      const s = saved[path];
      let offset = 0;
      if (s && s.ino === st.ino && s.offset <= st.size) offset = s.offset;
      else if (atEnd) offset = st.size;
      return { fd, ino: st.ino, offset, partial: "" };
    } catch {
      return undefined;
    }
  }

  function drain(path: string, t: Tracked, out: LogLine[]) {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let budget = maxBytes;
    const source = basename(path);
    while (budget > 0) {
      let n: number;
      try {
        n = readSync(t.fd, buf, 0, Math.min(buf.length, budget), t.offset);
      } catch {
        return;
      }
      if (n <= 0) break;
      t.offset += n;
      budget -= n;
      const text = t.partial + buf.toString("utf8", 0, n);
      const lines = text.split("\n");
      t.partial = lines.pop() ?? "";
      if (t.partial.length > 64 * 1024) {
        lines.push(t.partial);
        t.partial = "";
      }
      const ts = now();
      for (const l of lines) {
        if (!l.trim()) continue;
        out.push({ ts, severity: guessSeverity(l), source: path, message: clampMessage(l) });
      }
    }
  }

  return {
    poll() {
      const out: LogLine[] = [];
      for (const path of findLogFiles(opts.paths)) {
        let t = open.get(path);
        if (!t) {
          // files present at the first start of a fresh agent start at their end; later ones from 0
          t = openFile(path, (opts.startAtEnd ?? true) && firstRun && !knownOnce);
          if (!t) continue;
          open.set(path, t);
        }
        drain(path, t, out);
        let st;
        try {
          st = statSync(path);
        } catch {
          continue;
        }
        if (st.ino !== t.ino || st.size < t.offset) {
          // rotated (new inode) or truncated: the old descriptor was drained above
          closeSync(t.fd);
          const fresh = openFile(path, false);
          if (!fresh) {
            open.delete(path);
            continue;
          }
          fresh.offset = 0;
          open.set(path, fresh);
          drain(path, fresh, out);
        }
      }
      knownOnce = true;
      return out;
    },
    commit() {
      const state: Record<string, { ino: number; offset: number }> = {};
      // the offset of a file ends before its unfinished line
      for (const [p, t] of open) state[p] = { ino: t.ino, offset: t.offset - Buffer.byteLength(t.partial) };
      replaceFile(opts.statePath, JSON.stringify(state));
      saved = state;
    },
    close() {
      for (const t of open.values()) closeSync(t.fd);
      open.clear();
    },
  };
}
