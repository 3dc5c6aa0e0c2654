/**
 * Replaces a small state file whole: written beside it as `<path>.tmp`, then renamed over it, so a
 * process killed mid-write leaves the previous version, never a torn one. Throws as writeFileSync
 * and renameSync do; callers decide what a failed save means to them.
 */
import { renameSync, writeFileSync } from "node:fs";

export function replaceFile(path: string, data: string, mode?: number): void {
  const tmp = path + ".tmp";
  writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
  renameSync(tmp, path);
}
