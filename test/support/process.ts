/** Stops a server process a test started: SIGTERM, up to `graceMs` to exit, then SIGKILL. */
import type { ChildProcess } from "node:child_process";

export async function stopChild(proc: ChildProcess, graceMs = 3000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await Promise.race([exited, Bun.sleep(graceMs)]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
}
