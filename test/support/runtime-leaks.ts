/**
 * Running as root, an embedded PostgreSQL whose data directory user postgres cannot reach (a
 * `mkdtempSync` directory is mode 0700) is put in /var/lib/servermind/<12 hex of the path>/pg,
 * with <data>/pg a link to it (rootLayout in src/store/postgres/embedded.ts). Removing the test's
 * temp directory removes the link, not the cluster: 74 MB left behind per run. The preload notes
 * the clusters there when the run starts and reports new ones when it ends.
 *
 * Under CI=true (a clean machine, one run) a new cluster fails the run. Elsewhere it is a loud
 * warning: /var/lib/servermind is shared by the whole machine, where another checkout's test run,
 * or a server started from a fresh clone (whose data/ is created 0700, documented), may add one
 * during this run, and failing a run for what another did would teach everyone to ignore it.
 * A cluster whose postmaster still runs is a server's, not a leak, and is not reported. Nothing
 * is deleted: this run cannot tell its own clusters from anyone else's.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { IN_CI } from "./ci.ts";

export const RUNTIME_BASE = "/var/lib/servermind";
const HASHED = /^[0-9a-f]{12}$/;

/** The hashed cluster directories under `base` now. */
export function runtimeClusters(base = RUNTIME_BASE): Set<string> {
  try {
    return new Set(readdirSync(base).filter((n) => HASHED.test(n)));
  } catch {
    return new Set(); // no such directory (never ran as root), or not ours to read
  }
}

/** Whether the cluster in `<base>/<name>/pg` has a live postmaster (its postmaster.pid names a live pid). */
export function clusterRunning(name: string, base = RUNTIME_BASE): boolean {
  const pidFile = join(base, name, "pg", "postmaster.pid");
  try {
    if (!existsSync(pidFile)) return false;
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    if (!pid) return false;
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}

/** The stopped clusters under `base` that were not there in `before`. */
export function leakedClusters(before: Set<string>, base = RUNTIME_BASE): string[] {
  return [...runtimeClusters(base)].filter((n) => !before.has(n) && !clusterRunning(n, base)).sort();
}

/** Reports clusters left in `base` since `before`: throws under CI=true, a loud warning elsewhere. */
export function reportLeakedClusters(before: Set<string>, base = RUNTIME_BASE): void {
  const leaked = leakedClusters(before, base);
  if (!leaked.length) return;
  const msg =
    `${leaked.length} embedded PostgreSQL cluster(s) appeared in ${base} during this test run and were left behind: ${leaked.map((n) => join(base, n)).join(", ")}. ` +
    "A test or helper started an embedded PostgreSQL as root on a data directory user postgres cannot reach (mkdtempSync makes it 0700): " +
    "chmod that directory 0755 before the start, or pass runtimeBase inside the test's own temp directory. " +
    `Find it by running test files alone and watching ls ${base}; delete a cluster left by a removed temp directory with rm -rf once no postgres runs on it.`;
  if (IN_CI) throw new Error(msg);
  console.warn(`\n*** LEAKED POSTGRESQL CLUSTERS: ${msg} (On a shared machine another run may have left them instead of this one.) ***\n`);
}
