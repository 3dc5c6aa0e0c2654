/**
 * The file operations Control carries out (file.list, file.read, file.write, file.chmod,
 * file.chown, file.rename, file.delete, file.rollback). Every path goes through resolvePath
 * (race-free, symlinks resolved inside the root) and the policy on its canonical path; every
 * change is preceded by a snapshot (the remediation snapshot format, agent/control/remediate/
 * snapshot.ts: content, mode, owner) under stateDir/control/file-snapshots, which file.rollback
 * restores. Writes go to a temp file in the same directory (through the held directory fd),
 * fsync, then rename over the target; the SHA-256 of what was sent is checked before writing and
 * the SHA-256 of what was written is read back from the temp file.
 */
import {
  closeSync, fchmodSync, fchownSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, renameSync, rmdirSync,
  symlinkSync, unlinkSync, writeSync, constants as C, type Stats,
} from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { fdPath, FileOpError, resolvePath, verifyHeld, type Resolved } from "./resolve.ts";
import { ALWAYS_DENIED, enforce, refusal, type FilePolicy, type Guard } from "./policy.ts";
import { join } from "node:path";
import { loadSnapshot, saveSnapshot, type Snapshot } from "../remediate/snapshot.ts";
import { realpathSync } from "node:fs";

export const MAX_CHUNK = 512 * 1024;
export const MAX_WRITE = 4 * 1024 * 1024;
export const MAX_ENTRIES = 5000;
/** Files larger than this cannot be changed (their snapshot would be too large to keep). */
export const MAX_SNAPSHOT = MAX_WRITE;

export interface FilesContext extends Guard {
  root: string;
  snapshotDir: string;
  now(): number;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const modeStr = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");
const kind = (st: Stats) => (st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : "other");

interface Before {
  exists: boolean;
  kind?: "file" | "dir" | "link" | "other";
  content?: string;
  sha256?: string;
  target?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** A file operation's snapshot: the remediation snapshot with the operation and its paths. */
export interface FileSnapshot extends Snapshot {
  op: string;
  path: string;
  to?: string;
  before: Before;
}

function readAll(fd: number): Buffer {
  // reopen the O_PATH handle for reading: /proc/self/fd/N is the very object held
  const r = openSync(fdPath(fd), C.O_RDONLY | C.O_NONBLOCK);
  try {
    const st = fstatSync(r);
    if (st.size > MAX_SNAPSHOT) throw new FileOpError("too_large", `file of ${st.size} bytes is over the ${MAX_SNAPSHOT} byte limit for changes`);
    return readFileSync(r);
  } finally {
    closeSync(r);
  }
}

function capture(r: Resolved, withContent: boolean): Before {
  if (r.fd === null || !r.stat) return { exists: false };
  const st = r.stat;
  const b: Before = { exists: true, kind: kind(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isFile() && withContent) {
    const bytes = readAll(r.fd);
    b.content = bytes.toString("base64");
    b.sha256 = sha(bytes);
  }
  if (st.isSymbolicLink()) b.target = readlinkSync(fdPath(r.dirFd, r.name));
  return b;
}

function snapshot(c: FilesContext, commandId: string, op: string, path: string, before: Before, to?: string): string {
  const s: FileSnapshot = { id: `file-${commandId}`, commandId, createdMs: c.now(), controls: [], paths: [], op, path, to, before };
  saveSnapshot(c.snapshotDir, s);
  return s.id;
}

function open(c: FilesContext, policy: FilePolicy, path: unknown, followLeaf: boolean): Resolved {
  const r = resolvePath(c.root, String(path ?? ""), { followLeaf });
  try {
    enforce(policy, r.path, r.host, c);
    // a hard link elsewhere to an always-denied file (e.g. /etc/shadow) is that file
    if (r.stat?.isFile() && r.stat.nlink > 1 && hardLinkToDenied(c, r.stat)) throw new FileOpError("denied", `${r.path} is a hard link to an always-denied file`);
    return r;
  } catch (e) {
    r.close();
    throw e;
  }
}

function hardLinkToDenied(c: FilesContext, st: Stats): boolean {
  for (const d of ALWAYS_DENIED) {
    try {
      const x = lstatSync(c.root === "/" ? d : join(c.root, d));
      if (x.isFile() && x.dev === st.dev && x.ino === st.ino) return true;
    } catch {
      /* not present */
    }
  }
  return false;
}

const withResolved = <T>(r: Resolved, f: (r: Resolved) => T): T => {
  try {
    return f(r);
  } finally {
    r.close();
  }
};

function fsyncDir(dirFd: number) {
  const d = openSync(fdPath(dirFd), C.O_RDONLY | C.O_DIRECTORY);
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

const str = (v: unknown, name: string) => {
  if (typeof v !== "string") throw new FileOpError("bad_request", `${name} must be a string`);
  return v;
};
const int = (v: unknown, name: string, max: number) => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) throw new FileOpError("bad_request", `${name} must be an integer 0-${max}`);
  return v;
};

export function list(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>) {
  return withResolved(open(c, policy, args.path, true), (r) => {
    if (!r.stat?.isDirectory()) throw new FileOpError(r.fd === null ? "not_found" : "bad_request", `${r.path} is not a directory`);
    const names = readdirSync(fdPath(r.fd!)).sort();
    const entries = [];
    for (const name of names.slice(0, MAX_ENTRIES)) {
      let st: Stats;
      try {
        st = lstatSync(fdPath(r.fd!, name));
      } catch {
        continue; // removed meanwhile
      }
      const path = r.path === "/" ? `/${name}` : `${r.path}/${name}`;
      entries.push({
        name, type: kind(st), size: st.size, mode: modeStr(st.mode), uid: st.uid, gid: st.gid, mtimeMs: Math.round(st.mtimeMs),
        ...(st.isSymbolicLink() ? { target: readlinkSync(fdPath(r.fd!, name)) } : {}),
        ...(refusal(policy, path, r.host === "/" ? `/${name}` : `${r.host}/${name}`, c) ? { denied: true } : {}),
      });
    }
    return { ok: true, path: r.path, entries, truncated: names.length > MAX_ENTRIES };
  });
}

export function read(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>) {
  const offset = args.offset === undefined ? 0 : int(args.offset, "offset", Number.MAX_SAFE_INTEGER);
  const length = args.length === undefined ? MAX_CHUNK : int(args.length, "length", MAX_CHUNK);
  return withResolved(open(c, policy, args.path, true), (r) => {
    if (r.fd === null) throw new FileOpError("not_found", `${r.path} does not exist`);
    if (!r.stat!.isFile()) throw new FileOpError("bad_request", `${r.path} is not a regular file`);
    const fd = openSync(fdPath(r.fd), C.O_RDONLY | C.O_NONBLOCK);
    try {
      const st = fstatSync(fd);
      if (st.ino !== r.stat!.ino || st.dev !== r.stat!.dev) throw new FileOpError("conflict", `${r.path} changed while it was opened`);
      const buf = Buffer.alloc(Math.max(0, Math.min(length, st.size - offset)));
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, offset + got);
        if (n <= 0) break;
        got += n;
      }
      const chunk = buf.subarray(0, got);
      let whole: string | undefined;
      if (offset === 0) {
        // the whole file's hash, read from the same open file, for the end-to-end check
        const h = createHash("sha256");
        const b = Buffer.alloc(1 << 20);
        for (let pos = 0; ; ) {
          const n = readSync(fd, b, 0, b.length, pos);
          if (n <= 0) break;
          h.update(b.subarray(0, n));
          pos += n;
        }
        whole = h.digest("hex");
      }
      return {
        ok: true, path: r.path, size: st.size, offset, length: got, eof: offset + got >= st.size, content: chunk.toString("base64"), chunkSha256: sha(chunk),
        ...(whole ? { sha256: whole } : {}), mode: modeStr(st.mode), uid: st.uid, gid: st.gid, mtimeMs: Math.round(st.mtimeMs),
      };
    } finally {
      closeSync(fd);
    }
  });
}

export function write(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>, commandId: string) {
  const content = Buffer.from(str(args.content, "content"), "base64");
  if (content.length > MAX_WRITE) throw new FileOpError("too_large", `content of ${content.length} bytes is over the ${MAX_WRITE} byte limit`);
  const sent = str(args.sha256, "sha256");
  if (sha(content) !== sent) throw new FileOpError("bad_request", `content does not match its sha256 (${sent}): damaged in transit`);
  const ifMatch = str(args.ifMatch, "ifMatch"); // sha256 of the current content, or "absent"
  return withResolved(open(c, policy, args.path, true), (r) => {
    if (r.stat && !r.stat.isFile()) throw new FileOpError("bad_request", `${r.path} is not a regular file`);
    const before = capture(r, true);
    const current = before.exists ? before.sha256! : "absent";
    if (current !== ifMatch) throw new FileOpError("conflict", `${r.path} changed since it was read (sha256 ${current}, expected ${ifMatch}); nothing was written`);
    const mode = args.mode === undefined ? (before.mode ?? 0o644) : int(args.mode, "mode", 0o7777);
    const uid = before.uid ?? 0;
    const gid = before.gid ?? 0;
    const snap = snapshot(c, commandId, "write", r.path, before);
    const tmp = `.${r.name.slice(0, 200)}.servermind-${randomBytes(6).toString("hex")}`;
    const fd = openSync(fdPath(r.dirFd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    let written: string;
    try {
      for (let off = 0; off < content.length; ) off += writeSync(fd, content, off, content.length - off);
      fchownSync(fd, uid, gid);
      fchmodSync(fd, mode);
      fsyncSync(fd);
      written = sha(readFileSync(fdPath(fd)));
    } catch (e) {
      closeSync(fd);
      unlinkSync(fdPath(r.dirFd, tmp));
      throw e;
    }
    closeSync(fd);
    // last look before the rename: the target must still be the file that was hashed
    try {
      verifyHeld(realpathSync(c.root), r);
      const now = lstatIn(r);
      const same = before.exists ? now !== null && now.ino === r.stat!.ino && now.size === r.stat!.size && now.mtimeMs === r.stat!.mtimeMs : now === null;
      if (!same) throw new FileOpError("conflict", `${r.path} changed while it was written; nothing was replaced`);
      if (written !== sent) throw new FileOpError("failed", `the written file hashes to ${written}, not ${sent}; nothing was replaced`);
    } catch (e) {
      unlinkSync(fdPath(r.dirFd, tmp));
      throw e;
    }
    renameSync(fdPath(r.dirFd, tmp), fdPath(r.dirFd, r.name));
    fsyncDir(r.dirFd);
    return { ok: true, path: r.path, snapshot: snap, before: before.sha256 ?? null, sent, after: written, size: content.length, mode: modeStr(mode) };
  });
}

function lstatIn(r: Resolved): Stats | null {
  try {
    return lstatSync(fdPath(r.dirFd, r.name));
  } catch {
    return null;
  }
}

function attrs(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>, commandId: string, op: "chmod" | "chown") {
  return withResolved(open(c, policy, args.path, true), (r) => {
    if (r.fd === null) throw new FileOpError("not_found", `${r.path} does not exist`);
    if (!r.stat!.isFile() && !r.stat!.isDirectory()) throw new FileOpError("bad_request", `${r.path} is not a regular file or directory`);
    if (r.path === "/") throw new FileOpError("bad_request", "the root directory cannot be changed");
    const mode = op === "chmod" ? int(args.mode, "mode", 0o7777) : 0;
    const uid = op === "chown" ? int(args.uid, "uid", 0xfffffffe) : 0;
    const gid = op === "chown" ? int(args.gid, "gid", 0xfffffffe) : 0;
    const before = capture(r, false);
    const snap = snapshot(c, commandId, op, r.path, before);
    const fd = openSync(fdPath(r.fd), C.O_RDONLY | C.O_NONBLOCK);
    try {
      if (op === "chmod") fchmodSync(fd, mode);
      else fchownSync(fd, uid, gid);
      const st = fstatSync(fd);
      return { ok: true, path: r.path, snapshot: snap, mode: modeStr(st.mode), uid: st.uid, gid: st.gid, before: { mode: modeStr(before.mode!), uid: before.uid, gid: before.gid } };
    } finally {
      closeSync(fd);
    }
  });
}

export const chmod = (c: FilesContext, p: FilePolicy, a: Record<string, unknown>, id: string) => attrs(c, p, a, id, "chmod");
export const chown = (c: FilesContext, p: FilePolicy, a: Record<string, unknown>, id: string) => attrs(c, p, a, id, "chown");

export function rename(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>, commandId: string) {
  return withResolved(open(c, policy, args.path, false), (from) =>
    withResolved(open(c, policy, args.to, false), (to) => {
      if (from.fd === null) throw new FileOpError("not_found", `${from.path} does not exist`);
      if (from.path === "/") throw new FileOpError("bad_request", "the root directory cannot be renamed");
      if (to.fd !== null) throw new FileOpError("conflict", `${to.path} already exists; rename never replaces`);
      const snap = snapshot(c, commandId, "rename", from.path, capture(from, false), to.path);
      if (lstatIn(to)) throw new FileOpError("conflict", `${to.path} appeared meanwhile; nothing was renamed`);
      renameSync(fdPath(from.dirFd, from.name), fdPath(to.dirFd, to.name));
      fsyncDir(from.dirFd);
      if (to.dirFd !== from.dirFd) fsyncDir(to.dirFd);
      return { ok: true, path: from.path, to: to.path, snapshot: snap };
    }),
  );
}

export function remove(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>, commandId: string) {
  return withResolved(open(c, policy, args.path, false), (r) => {
    if (r.fd === null) throw new FileOpError("not_found", `${r.path} does not exist`);
    if (r.path === "/") throw new FileOpError("bad_request", "the root directory cannot be deleted");
    const st = r.stat!;
    if (!st.isFile() && !st.isSymbolicLink() && !st.isDirectory()) throw new FileOpError("bad_request", `${r.path} is not a file, link or directory`);
    const before = capture(r, true);
    if (st.isDirectory() && readdirSync(fdPath(r.fd)).length) throw new FileOpError("conflict", `${r.path} is not empty; only files, links and empty directories are deleted`);
    const snap = snapshot(c, commandId, "delete", r.path, before);
    const now = lstatIn(r);
    if (!now || now.ino !== st.ino) throw new FileOpError("conflict", `${r.path} changed meanwhile; nothing was deleted`);
    if (st.isDirectory()) rmdirSync(fdPath(r.dirFd, r.name));
    else unlinkSync(fdPath(r.dirFd, r.name));
    fsyncDir(r.dirFd);
    return { ok: true, path: r.path, snapshot: snap, before: before.sha256 ?? null };
  });
}

/** Puts one path back the way the snapshot saw it; returns the sha256 of what is there now. */

/** Sets owner and mode on the object at `path` through an fd opened with `flags` (same inode). */
function restoreAttributes(path: string, flags: number, b: { uid?: number; gid?: number; mode?: number }): void {
  const fd = openSync(path, flags);
  try {
    fchownSync(fd, b.uid!, b.gid!);
    fchmodSync(fd, b.mode!);
  } finally {
    closeSync(fd);
  }
}
function restoreTo(r: Resolved, b: Before): string | null {
  const cur = lstatIn(r);
  if (!b.exists) {
    if (cur?.isDirectory()) rmdirSync(fdPath(r.dirFd, r.name));
    else if (cur) unlinkSync(fdPath(r.dirFd, r.name));
    fsyncDir(r.dirFd);
    return null;
  }
  if (b.kind === "dir") {
    if (!cur) mkdirSync(fdPath(r.dirFd, r.name), { mode: b.mode });
    restoreAttributes(fdPath(r.dirFd, r.name), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW, b);
    return null;
  }
  if (b.kind === "link") {
    if (cur) unlinkSync(fdPath(r.dirFd, r.name));
    symlinkSync(b.target!, fdPath(r.dirFd, r.name));
    return null;
  }
  if (b.content === undefined) {
    // attributes only (chmod, chown): same inode
    restoreAttributes(fdPath(r.dirFd, r.name), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK, b);
    return null;
  }
  const bytes = Buffer.from(b.content, "base64");
  const tmp = `.${r.name.slice(0, 200)}.servermind-${randomBytes(6).toString("hex")}`;
  const fd = openSync(fdPath(r.dirFd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fchownSync(fd, b.uid!, b.gid!);
    fchmodSync(fd, b.mode!);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (cur?.isDirectory()) {
    unlinkSync(fdPath(r.dirFd, tmp));
    throw new FileOpError("conflict", `${r.path} is now a directory; not replaced`);
  }
  renameSync(fdPath(r.dirFd, tmp), fdPath(r.dirFd, r.name));
  fsyncDir(r.dirFd);
  return sha(bytes);
}

export function rollback(c: FilesContext, policy: FilePolicy, args: Record<string, unknown>) {
  const id = str(args.snapshot, "snapshot");
  if (!id.startsWith("file-")) throw new FileOpError("bad_request", "not a file-operation snapshot");
  let s: FileSnapshot;
  try {
    s = loadSnapshot(c.snapshotDir, id) as FileSnapshot;
  } catch (e) {
    throw new FileOpError("not_found", e instanceof Error ? e.message : String(e));
  }
  if (s.op === "rename") {
    return withResolved(open(c, policy, s.to, false), (to) =>
      withResolved(open(c, policy, s.path, false), (from) => {
        if (to.fd === null) throw new FileOpError("conflict", `${s.to} no longer exists; nothing to rename back`);
        if (from.fd !== null) throw new FileOpError("conflict", `${s.path} exists again; rename never replaces`);
        renameSync(fdPath(to.dirFd, to.name), fdPath(from.dirFd, from.name));
        fsyncDir(to.dirFd);
        if (to.dirFd !== from.dirFd) fsyncDir(from.dirFd);
        return { ok: true, snapshot: id, op: s.op, path: s.path, to: s.to, restored: [s.path] };
      }),
    );
  }
  return withResolved(open(c, policy, s.path, false), (r) => {
    const before = capture(r, s.before.content !== undefined && !!r.stat?.isFile());
    const after = restoreTo(r, s.before);
    return { ok: true, snapshot: id, op: s.op, path: s.path, restored: [s.path], before: before.sha256 ?? null, after: after ?? s.before.sha256 ?? null };
  });
}
