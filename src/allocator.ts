/**
 * The server keeps the memory it frees for reuse instead of handing it back to the kernel.
 *
 * Bun allocates through mimalloc, which by default returns freed pages to the kernel (madvise)
 * soon after they fall free. The ingest path allocates and frees a few kilobytes per frame
 * (decompressed bodies, decoded values, request buffers): with the default, every page comes
 * back as a fresh page fault, and each madvise makes the kernel flush the TLBs of the other
 * cores. On a 2-core machine that was two thirds of the ingest path's CPU: bench:ingest-core
 * spent 0.17-0.22 CPU-s per million samples, 0.05-0.06 with this (docs/architecture.md).
 * Finite delays (10 s, 100 s) kept most of the cost, so purging is turned off
 * (MIMALLOC_PURGE_DELAY=-1). The process's resident memory then stays at its high-water mark,
 * which the batcher's byte bound (SERVERMIND_MAX_PENDING_BYTES) and the admission gate bound.
 *
 * mimalloc reads its options once, when the process starts, and Bun exports no way to change
 * them later; so `retainFreedMemory` runs before anything else (main.ts imports this module
 * first) and, when the variable is not set, replaces the process with itself (execve: same pid,
 * same arguments, for systemd and for `npm start` alike) with the variable set. An operator
 * who sets MIMALLOC_PURGE_DELAY (any value, e.g. 10 for mimalloc's own default) is obeyed.
 */

/** The variable, and the value the server runs with unless the operator chose another. */
export const PURGE_DELAY_VAR = "MIMALLOC_PURGE_DELAY";
export const PURGE_DELAY_NEVER = "-1";

/**
 * How to start this same program again with `env`, or undefined when it already runs as it
 * should (the variable set, or a platform without execve).
 */
export function reexecPlan(
  env: Record<string, string | undefined>,
  p: { platform: string; execPath: string; main: string; execArgv: string[]; argv: string[] },
): { path: string; args: string[]; env: Record<string, string> } | undefined {
  if (env[PURGE_DELAY_VAR] !== undefined || p.platform === "win32") return undefined;
  // a compiled binary (bun build --compile) is its own program; otherwise bun runs the script
  const compiled = p.main.startsWith("/$bunfs/") || p.main.startsWith("B:/~BUN/");
  const args = compiled ? [p.execPath, ...p.argv.slice(2)] : [p.execPath, ...p.execArgv, p.main, ...p.argv.slice(2)];
  const next: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) next[k] = v;
  next[PURGE_DELAY_VAR] = PURGE_DELAY_NEVER;
  return { path: p.execPath, args, env: next };
}

type Execve = (path: string, args: string[], env: Record<string, string>) => never;

/**
 * Restarts the process with the allocator setting when it lacks it; returns only when it has it,
 * or when the restart failed (then with a warning: the server runs on, slower).
 */
export function retainFreedMemory(
  env: Record<string, string | undefined> = process.env,
  // Node's types mark execve optional (absent on Windows, which reexecPlan already excludes)
  execve: Execve | undefined = process.execve as Execve | undefined,
  warn: (line: string) => void = (l) => console.error(l),
): void {
  const plan = reexecPlan(env, { platform: process.platform, execPath: process.execPath, main: Bun.main, execArgv: process.execArgv, argv: process.argv });
  if (!plan || !execve) return;
  try {
    execve(plan.path, plan.args, plan.env);
  } catch (e) {
    // e.g. the binary was replaced or removed under a running upgrade
    warn(`warning: could not restart with ${PURGE_DELAY_VAR}=${PURGE_DELAY_NEVER} (${e instanceof Error ? e.message : e}); running with the allocator's default, which costs ingest CPU (docs/operations.md)`);
  }
}
