/**
 * Temporary directories and spools a test file makes, and removes once it is done with them, so
 * that a run of the suite leaves nothing behind in the system's temp directory.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSpool, type Spool } from "../../agent/spool/spool.ts";

/** Temp dirs named `prefix`...; `removeAll()` removes every one made so far. */
export function tempDirs(prefix: string): { make(): string; removeAll(): void } {
  const dirs: string[] = [];
  return {
    make() {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
    removeAll() {
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Agent spools (16 MiB) in temp dirs named `prefix`...; `closeAll()`, called once whatever used
 * them has stopped, closes every spool made so far and removes its dir.
 */
export function tempSpools(prefix: string): { make(): Spool; closeAll(): void } {
  const dirs = tempDirs(prefix);
  const open: Spool[] = [];
  return {
    make() {
      const spool = createSpool({ path: join(dirs.make(), "spool.db"), maxBytes: 1 << 24 });
      open.push(spool);
      return spool;
    },
    closeAll() {
      for (const spool of open.splice(0)) spool.close();
      dirs.removeAll();
    },
  };
}
