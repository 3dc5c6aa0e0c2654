/**
 * Starts the agent's processes, restarts any that exits with backoff (the others keep running),
 * and stops them in reverse order. A child that ran for `stableMs` before exiting is restarted
 * after `baseMs` (100 ms) again; quick repeated crashes double the wait up to `maxMs`.
 */
import type { Subprocess } from "bun";

export interface ProcessSpec {
  name: string;
  argv: string[];
  env?: Record<string, string | undefined>;
}

export interface ProcessState {
  name: string;
  pid: number | null;
  state: "starting" | "running" | "restarting" | "stopped";
  restarts: number;
  lastExit: string | null;
  startedAt: number | null;
}

export interface SupervisorOptions {
  specs: ProcessSpec[];
  baseMs?: number;
  maxMs?: number;
  stableMs?: number;
  /** Grace before SIGKILL when stopping. */
  stopTimeoutMs?: number;
  now?: () => number;
  log?: (msg: string) => void;
  onChange?: (states: ProcessState[]) => void;
}

export interface Supervisor {
  start(): void;
  stop(): Promise<void>;
  states(): ProcessState[];
}

export function createSupervisor(o: SupervisorOptions): Supervisor {
  const baseMs = o.baseMs ?? 100;
  const maxMs = o.maxMs ?? 30_000;
  const stableMs = o.stableMs ?? 60_000;
  const now = o.now ?? Date.now;
  const log = o.log ?? ((m: string) => console.error(m));
  let stopping = false;
  const procs = o.specs.map((spec) => ({
    spec,
    child: undefined as Subprocess | undefined,
    failures: 0,
    timer: undefined as Timer | undefined,
    st: { name: spec.name, pid: null, state: "starting", restarts: 0, lastExit: null, startedAt: null } as ProcessState,
  }));
  const changed = () => o.onChange?.(procs.map((p) => ({ ...p.st })));

  function launch(p: (typeof procs)[number]) {
    if (stopping) return;
    let child: Subprocess;
    try {
      child = Bun.spawn(p.spec.argv, { env: { ...process.env, ...p.spec.env }, stdin: "ignore", stdout: "inherit", stderr: "inherit" });
    } catch (e) {
      p.st.lastExit = `spawn failed: ${e instanceof Error ? e.message : e}`;
      schedule(p, 0);
      return;
    }
    p.child = child;
    p.st = { ...p.st, pid: child.pid, state: "running", startedAt: now() };
    changed();
    const started = now();
    child.exited.then((code) => {
      p.child = undefined;
      if (stopping) {
        p.st = { ...p.st, pid: null, state: "stopped", lastExit: `exit ${code}` };
        changed();
        return;
      }
      const how = child.signalCode ? `signal ${child.signalCode}` : `exit ${code}`;
      if (now() - started >= stableMs) p.failures = 0;
      const delay = Math.min(maxMs, baseMs * 2 ** p.failures);
      p.failures++;
      log(`${p.spec.name} (pid ${child.pid}) ended with ${how}; restarting in ${delay} ms`);
      schedule(p, delay, how);
    });
  }

  function schedule(p: (typeof procs)[number], delay: number, how?: string) {
    p.st = { ...p.st, pid: null, state: "restarting", restarts: p.st.restarts + 1, lastExit: how ?? p.st.lastExit };
    changed();
    p.timer = setTimeout(() => launch(p), delay);
  }

  return {
    start() {
      for (const p of procs) launch(p);
    },
    async stop() {
      stopping = true;
      for (const p of [...procs].reverse()) {
        clearTimeout(p.timer);
        const c = p.child;
        if (!c) {
          p.st = { ...p.st, state: "stopped", pid: null };
          continue;
        }
        c.kill("SIGTERM");
        const done = await Promise.race([c.exited.then(() => true), Bun.sleep(o.stopTimeoutMs ?? 5000).then(() => false)]);
        if (!done) {
          c.kill("SIGKILL");
          await c.exited;
        }
        p.st = { ...p.st, state: "stopped", pid: null };
      }
      changed();
    },
    states() {
      return procs.map((p) => ({ ...p.st }));
    },
  };
}
