/** Agent spools in temp dirs for the shipper tests, closed and removed when a test file is done with them. */
import { join } from "node:path";
import { createSpool, type Spool } from "../../agent/spool/spool.ts";
import { tempDirs } from "./temp.ts";

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
