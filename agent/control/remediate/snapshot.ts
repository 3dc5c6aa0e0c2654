/**
 * Snapshots of every path a remediation touches, taken before the first write: bytes, mode,
 * owner, group and times, or the fact that the path did not exist. Restoring puts each path back
 * exactly (created paths are removed, newest first). Snapshots live under the Control state
 * directory, one JSON file each, and at most MAX_SNAPSHOTS are kept.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createHash } from "node:crypto";
import type { Effect } from "./effects.ts";

export const MAX_SNAPSHOTS = 200;

export interface PathSnapshot {
  path: string; // in-root path
  host: string; // resolved host path written to
  exists: boolean;
  isDir?: boolean;
  content?: string; // base64, files only
  sha256?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  atimeMs?: number;
  mtimeMs?: number;
}

export interface Snapshot {
  id: string;
  commandId: string;
  createdMs: number;
  controls: string[];
  paths: PathSnapshot[];
  /** What the remediation did to the running system, undone on rollback (older snapshots: none). */
  effects?: Effect[];
}

export function capture(path: string, host: string): PathSnapshot {
  let st;
  try {
    st = lstatSync(host);
  } catch {
    return { path, host, exists: false };
  }
  const base = { path, host, exists: true, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs };
  if (st.isDirectory()) return { ...base, isDir: true };
  const bytes = readFileSync(host);
  return { ...base, content: bytes.toString("base64"), sha256: createHash("sha256").update(bytes).digest("hex") };
}

export function saveSnapshot(dir: string, s: Snapshot): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${s.id}.json`);
  writeFileSync(file + ".tmp", JSON.stringify(s), { mode: 0o600 });
  renameSync(file + ".tmp", file);
  const all = readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs })).sort((a, b) => a.t - b.t);
  for (const old of all.slice(0, Math.max(0, all.length - MAX_SNAPSHOTS))) unlinkSync(join(dir, old.f));
  return file;
}

export function loadSnapshot(dir: string, id: string): Snapshot {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(id)) throw new Error(`snapshot id ${JSON.stringify(id)} is not valid`);
  const file = join(dir, `${id}.json`);
  if (!existsSync(file)) throw new Error(`snapshot ${id} not found in ${dir}`);
  return JSON.parse(readFileSync(file, "utf8")) as Snapshot;
}

/** Writes a file atomically (temp + rename in the same directory) with the given attributes. */
export function writeFileAtomic(host: string, bytes: Uint8Array | string, mode: number, uid: number, gid: number) {
  const tmp = `${host}.servermind-tmp-${process.pid}`;
  writeFileSync(tmp, bytes, { mode: 0o600 });
  chownSync(tmp, uid, gid);
  chmodSync(tmp, mode);
  renameSync(tmp, host);
}

/**
 * Restores every path of a snapshot: files first, then paths created later are removed (deepest
 * first), then directories get their mode, owner and times back (deepest first), so even the
 * parent directories' mtimes match what they were.
 */
export function restore(s: Snapshot): void {
  const created = s.paths.filter((p) => !p.exists).sort((a, b) => b.host.length - a.host.length);
  const dirs = s.paths.filter((p) => p.exists && p.isDir).sort((a, b) => b.host.length - a.host.length);
  for (const p of s.paths.filter((p) => p.exists && !p.isDir)) {
    mkdirSync(dirname(p.host), { recursive: true });
    writeFileAtomic(p.host, Buffer.from(p.content ?? "", "base64"), p.mode!, p.uid!, p.gid!);
    utimesSync(p.host, p.atimeMs! / 1000, p.mtimeMs! / 1000);
  }
  for (const p of created) {
    try {
      const st = lstatSync(p.host);
      if (st.isDirectory()) rmdirSync(p.host);
      else unlinkSync(p.host);
    } catch {
      // already gone
    }
  }
  for (const p of dirs) {
    mkdirSync(p.host, { recursive: true });
    chownSync(p.host, p.uid!, p.gid!);
    chmodSync(p.host, p.mode!);
    utimesSync(p.host, p.atimeMs! / 1000, p.mtimeMs! / 1000);
  }
}
