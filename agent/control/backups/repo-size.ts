/**
 * The size of a repository at its destination, after a run: the sum of its objects' sizes. A
 * local directory is walked; every other destination is listed once through the engine's own
 * Destination.listSizes, whose sizes come from the server's listing: an S3-compatible bucket
 * (s3, gcs, b2, r2, wasabi) ListObjectsV2's sizes under the repository's prefix, an Azure
 * container its blobs' Content-Length, SFTP the readdir attributes, FTP/FTPS the MLSD size fact
 * or LIST's size column, WebDAV each file's getcontentlength, SMB smbclient's `ls` size column.
 * Temporary upload names and servers' own dot-files are not objects and are not counted. A
 * listing that fails, or carries an entry without a readable size, gives null (shown as unknown)
 * and its reason, never a guess.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Destination } from "../../backup/destination.ts";
import { openDestination, type DestinationConfig } from "../../backup/destinations.ts";

/** Bytes under a local repository. */
export async function dirBytes(dir: string, budget = { n: 200_000 }): Promise<number> {
  let total = 0;
  let names: import("node:fs").Dirent[];
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of names) {
    if (--budget.n < 0) break;
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p, budget);
    else if (e.isFile()) total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * The repository's size, or null when it cannot be known (the listing failed or lacks a size:
 * `onError` gets the reason). `dest`: the run's destination, already open, listed instead of
 * opening a second one.
 */
export async function repositoryBytes(cfg: DestinationConfig, o: { dest?: Destination; onError?: (why: string) => void } = {}): Promise<number | null> {
  let opened: (Destination & { close?(): Promise<void> }) | undefined;
  try {
    if (cfg.type === "local") return await dirBytes(cfg.path);
    const dest = o.dest ?? (opened = openDestination(cfg));
    let total = 0;
    for (const e of await dest.listSizes("")) total += e.size;
    return total;
  } catch (e) {
    o.onError?.(e instanceof Error ? e.message : String(e));
    return null;
  } finally {
    await opened?.close?.().catch(() => {});
  }
}
