/** Stops a server process a test started: SIGTERM, up to `graceMs` to exit, then SIGKILL. */
import type { ChildProcess } from "node:child_process";
import { childrenOf } from "../../src/store/postgres/embedded.ts";

export async function stopChild(proc: ChildProcess, graceMs = 3000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await Promise.race([exited, Bun.sleep(graceMs)]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
}


/**
 * Stops a program started under a tracer (`strace -f -- program`): a signal to strace only
 * detaches it, and the program runs on as an orphan. The program gets SIGTERM (strace ends with
 * it), and whatever is left after the grace time gets SIGKILL, tracer and program alike.
 */
export async function stopTraced(tracer: ChildProcess, graceMs = 3000): Promise<void> {
  if (tracer.exitCode !== null || tracer.signalCode !== null) return;
  const traced = tracer.pid ? childrenOf(tracer.pid) : [];
  const exited = new Promise((r) => tracer.once("exit", r));
  for (const pid of traced) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      /* gone */
    }
  }
  await Promise.race([exited, Bun.sleep(graceMs)]);
  for (const pid of traced) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone, as it should be */
    }
  }
  if (tracer.exitCode === null && tracer.signalCode === null) tracer.kill("SIGKILL");
}
