/**
 * File access confined to a root directory. Paths are absolute inside the root ("/etc/passwd");
 * symlinks are resolved component by component with absolute targets re-anchored at the root,
 * so a prepared test root (or a mounted image) never leads reads or writes onto the host.
 * `createOverlayFs` layers pending changes over a root, so a remediation plan can be computed,
 * checked again and diffed before anything is written.
 */
import { lstatSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join, posix } from "node:path";

export interface FileInfo {
  mode: number; // permission bits only (& 0o7777)
  uid: number;
  gid: number;
  isDir: boolean;
  isFile: boolean;
}

export interface RootFs {
  root: string;
  read(path: string): string | null;
  stat(path: string): FileInfo | null;
  list(dir: string): string[] | null;
  /** The host path for an in-root path, symlinks resolved; null when it escapes or loops. */
  hostPath(path: string): string | null;
}

const MAX_LINKS = 40;

function resolveIn(root: string, path: string): string | null {
  const parts = posix.normalize("/" + path).split("/").filter(Boolean);
  const out: string[] = [];
  let links = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      out.pop();
      continue;
    }
    const host = join(root, ...out, part);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      out.push(part, ...parts); // the rest does not exist; keep the path as written
      return join(root, ...out);
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return null;
      const target = readlinkSync(host);
      const rest = target.split("/").filter(Boolean);
      if (target.startsWith("/")) out.length = 0;
      parts.unshift(...rest);
      continue;
    }
    out.push(part);
  }
  return join(root, ...out);
}

export function createRootFs(root: string): RootFs {
  return {
    root,
    hostPath: (p) => resolveIn(root, p),
    read(p) {
      const h = resolveIn(root, p);
      if (!h) return null;
      try {
        return readFileSync(h, "utf8");
      } catch {
        return null;
      }
    },
    stat(p) {
      const h = resolveIn(root, p);
      if (!h) return null;
      try {
        const s = lstatSync(h);
        return { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, isDir: s.isDirectory(), isFile: s.isFile() };
      } catch {
        return null;
      }
    },
    list(dir) {
      const h = resolveIn(root, dir);
      if (!h) return null;
      try {
        return readdirSync(h).sort();
      } catch {
        return null;
      }
    },
  };
}

/** The state a remediation wants a path in; `exists: false` removes it. */
export interface PathState {
  exists: boolean;
  isDir?: boolean;
  content?: string; // files only
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface OverlayFs extends RootFs {
  set(path: string, state: PathState): void;
  pending(): Map<string, PathState>;
}

export function createOverlayFs(base: RootFs): OverlayFs {
  const changes = new Map<string, PathState>();
  const norm = (p: string) => posix.normalize("/" + p);
  return {
    root: base.root,
    hostPath: base.hostPath,
    read(p) {
      const c = changes.get(norm(p));
      if (c) return c.exists && !c.isDir ? (c.content ?? base.read(p)) : null;
      return base.read(p);
    },
    stat(p) {
      const c = changes.get(norm(p));
      if (!c) return base.stat(p);
      if (!c.exists) return null;
      return { mode: c.mode ?? 0o644, uid: c.uid ?? 0, gid: c.gid ?? 0, isDir: !!c.isDir, isFile: !c.isDir };
    },
    list(dir) {
      const d = norm(dir);
      const names = new Set(base.list(dir) ?? []);
      let any = base.list(dir) !== null;
      for (const [p, s] of changes) {
        if (posix.dirname(p) !== d) continue;
        any = true;
        if (s.exists) names.add(posix.basename(p));
        else names.delete(posix.basename(p));
      }
      return any ? [...names].sort() : null;
    },
    set(p, state) {
      changes.set(norm(p), state);
    },
    pending: () => changes,
  };
}
