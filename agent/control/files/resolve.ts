/**
 * Race-free path resolution for file operations, with openat semantics on a runtime that has no
 * openat: every component is opened relative to the file descriptor of the directory before it,
 * through the kernel's per-fd directory link `/proc/self/fd/<dirfd>/<name>` (Linux resolves
 * `/proc/self/fd/N` to the open directory itself, so this is openat(N, name)), with
 * O_PATH | O_NOFOLLOW. A symbolic link is never followed by the kernel: its target is read and
 * resolved here, component by component again, clamped to the agent root (like openat2's
 * RESOLVE_IN_ROOT), at most MAX_LINKS times. The result is the canonical in-root path of the
 * object and an fd that IS that object, so the policy is checked on what will actually be
 * touched, and a symlink or directory swapped in after the check cannot redirect the operation:
 * every later step (read, write, chmod, rename) goes through the held fds. As a last check the
 * kernel's own name for each held fd (readlink of /proc/self/fd/N) must equal the canonical path,
 * and the parent's dev/ino must match an lstat of that path.
 */
import { closeSync, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, constants as C, type Stats } from "node:fs";

/** Linux O_PATH (the same value on x86_64 and arm64): a handle that opens nothing for I/O. */
export const O_PATH = 0o10000000;
export const MAX_LINKS = 40;
export const MAX_PATH = 4096;

export class FileOpError extends Error {
  constructor(
    readonly code: "bad_request" | "denied" | "not_found" | "conflict" | "too_large" | "unsupported" | "failed",
    message: string,
  ) {
    super(message);
  }
}

export const fdPath = (fd: number, name?: string) => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

export interface Resolved {
  /** Canonical in-root path ("/" for the root itself). */
  path: string;
  /** The same path on the host (root prefix + path). */
  host: string;
  /** O_PATH fd of the parent directory (the root's own fd for "/"). */
  dirFd: number;
  /** Canonical in-root path of the parent directory. */
  dirPath: string;
  /** The leaf's name in dirFd ("" for the root). */
  name: string;
  /** O_PATH fd of the object, null when it does not exist (yet). */
  fd: number | null;
  stat: Stats | null;
  close(): void;
}

/** Validates a requested path: absolute, no NUL, no "." or ".." components. */
export function checkRequestPath(p: unknown): string[] {
  if (typeof p !== "string" || !p.startsWith("/")) throw new FileOpError("bad_request", "path must be an absolute path");
  if (p.length > MAX_PATH) throw new FileOpError("bad_request", `path of ${p.length} characters is over ${MAX_PATH}`);
  if (p.includes("\0")) throw new FileOpError("bad_request", "path must not contain NUL");
  const parts = p.split("/").filter((x) => x !== "");
  if (parts.some((x) => x === ".." || x === ".")) throw new FileOpError("bad_request", `path ${JSON.stringify(p)} must not contain "." or ".." components`);
  return parts;
}

const hostOf = (rootReal: string, path: string) => (rootReal === "/" ? path : path === "/" ? rootReal : rootReal + path);
const join = (parts: string[]) => "/" + parts.join("/");

/**
 * Resolves `path` under `root`. With followLeaf a symlink as the last component is followed (read,
 * write, chmod, chown act on the target); without it the link itself is the object (delete,
 * rename, list entries). Throws FileOpError; on success the caller must close().
 */
export function resolvePath(root: string, path: string, o: { followLeaf: boolean }): Resolved {
  const rootReal = realpathSync(root);
  let pending = checkRequestPath(path);
  const rootFd = openSync(rootReal, O_PATH | C.O_DIRECTORY);
  const fds: number[] = [rootFd];
  const canon: string[] = [];
  let links = 0;
  const closeAll = () => {
    for (const fd of fds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        /* closed */
      }
    }
  };
  try {
    let leafFd: number | null = null;
    let leafName = "";
    let leafStat: Stats | null = null;
    if (pending.length === 0) return finish(rootReal, [], rootFd, rootFd, "", fstatSync(rootFd), closeAll);
    while (pending.length) {
      const c = pending.shift()!;
      const last = pending.length === 0;
      if (c === "." || c === "") continue;
      if (c === "..") {
        // only reachable from a link target: step up, never above the root
        if (fds.length > 1) {
          closeSync(fds.pop()!);
          canon.pop();
        }
        continue;
      }
      const dir = fds[fds.length - 1]!;
      let fd: number;
      try {
        fd = openSync(fdPath(dir, c), O_PATH | C.O_NOFOLLOW);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && last) {
          leafName = c;
          break;
        }
        if (code === "ENOENT") throw new FileOpError("not_found", `${join([...canon, c])} does not exist`);
        if (code === "ENOTDIR") throw new FileOpError("not_found", `${join(canon)} is not a directory`);
        throw new FileOpError("failed", `opening ${join([...canon, c])}: ${code ?? e}`);
      }
      const st = fstatSync(fd);
      if (st.isSymbolicLink() && (!last || o.followLeaf)) {
        if (++links > MAX_LINKS) {
          closeSync(fd);
          throw new FileOpError("bad_request", `more than ${MAX_LINKS} symbolic links in ${path}`);
        }
        let target: string;
        try {
          target = readlinkSync(fdPath(dir, c));
        } finally {
          closeSync(fd);
        }
        const parts = target.split("/").filter((x) => x !== "" && x !== ".");
        if (target.startsWith("/")) {
          // absolute target: start again at the root (an absolute link never leaves it)
          for (const f of fds.splice(1)) closeSync(f);
          canon.length = 0;
        }
        pending = [...parts, ...pending];
        continue;
      }
      if (!last && !st.isDirectory()) {
        closeSync(fd);
        throw new FileOpError("not_found", `${join([...canon, c])} is not a directory`);
      }
      if (last) {
        leafFd = fd;
        leafName = c;
        leafStat = st;
      } else {
        fds.push(fd);
        canon.push(c);
      }
    }
    if (leafName === "") {
      // a link target ended in "." or ".." (or was "/"): the directory we hold is the object;
      // its canonical path has no links left, so resolving it again ends
      const parts = [...canon];
      closeAll();
      return resolvePath(root, join(parts), o);
    }
    const dirFd = fds[fds.length - 1]!;
    const all = () => {
      if (leafFd !== null) {
        try {
          closeSync(leafFd);
        } catch {
          /* closed */
        }
      }
      closeAll();
    };
    return finish(rootReal, [...canon, leafName], dirFd, leafFd, leafName, leafStat, all);
  } catch (e) {
    closeAll();
    throw e;
  }
}

function finish(rootReal: string, parts: string[], dirFd: number, fd: number | null, name: string, stat: Stats | null, close: () => void): Resolved {
  const path = join(parts);
  const dirPath = parts.length ? join(parts.slice(0, -1)) : "/";
  const r: Resolved = { path, host: hostOf(rootReal, path), dirFd, dirPath, name, fd, stat, close };
  try {
    verifyHeld(rootReal, r);
  } catch (e) {
    close();
    throw e;
  }
  return r;
}

/**
 * The kernel's name of each held fd must be the canonical path, and the parent directory at that
 * path must be the one held (same dev/ino): a directory renamed or replaced by a symlink while
 * the path was walked is detected here.
 */
export function verifyHeld(rootReal: string, r: Resolved): void {
  const dirHost = hostOf(rootReal, r.dirPath);
  const held = readlinkSync(fdPath(r.dirFd));
  if (held !== dirHost) throw new FileOpError("conflict", `${r.dirPath} changed while it was resolved (now ${held})`);
  const a = fstatSync(r.dirFd);
  let b: Stats;
  try {
    b = lstatSync(dirHost);
  } catch {
    throw new FileOpError("conflict", `${r.dirPath} disappeared while it was resolved`);
  }
  if (a.dev !== b.dev || a.ino !== b.ino) throw new FileOpError("conflict", `${r.dirPath} was replaced while it was resolved`);
  if (r.fd !== null && r.fd !== r.dirFd) {
    const leaf = readlinkSync(fdPath(r.fd));
    if (leaf !== r.host) throw new FileOpError("conflict", `${r.path} changed while it was resolved (now ${leaf})`);
  }
}
