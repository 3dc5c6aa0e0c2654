/**
 * Freezing a real PostgreSQL: SIGSTOP to the postmaster and every process it forked (backends
 * call setsid(), so a process-group signal would miss them), SIGCONT to thaw it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The postmaster of `dataDir` (from postmaster.pid) and its children, postmaster first. */
export function postmasterTree(dataDir: string): number[] {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return [];
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!pid) return [];
  const out = [pid];
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    for (const k of kids ? kids.split(" ") : []) out.push(Number(k));
  } catch {
    return [];
  }
  return out;
}

/** Sends `signal` to each pid, ignoring ones that are gone. SIGSTOP goes parent first, SIGCONT children first. */
export function signalTree(pids: number[], signal: "SIGSTOP" | "SIGCONT" | "SIGKILL"): void {
  const order = signal === "SIGCONT" ? [...pids].reverse() : pids;
  for (const p of order) {
    try {
      process.kill(p, signal);
    } catch {
      /* exited */
    }
  }
}
