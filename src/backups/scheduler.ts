/**
 * The backup scheduler: one per cluster (the node holding the advisory lock BACKUP_SCHEDULER_LOCK,
 * with the alert evaluator's leader election, src/alerts/leader.ts). Every `intervalMs` the leader
 * starts the due jobs (enabled, a schedule other than manual, next_run_at passed) on each of their
 * live hosts that has no run of the job in progress, and moves next_run_at on first, so a job is
 * started once per due time even if the node stops midway (a missed time is not made up twice).
 * Each tick then settles runs whose waiter is gone (reconcileRuns: a server restarted mid-run).
 */
import type { Sql } from "postgres";
import { HostScope } from "../auth/host-scope.ts";
import { LeaderElection } from "../alerts/leader.ts";
import { createPgClient } from "../store/postgres/client.ts";
import { listHosts } from "../store/postgres/queries-console.ts";
import { getJob, jobCovers, LOST_AFTER_H, nextRun, type Schedule } from "./store.ts";
import { reconcileRuns, startBackup, type BackupDeps } from "./runner.ts";

export const BACKUP_SCHEDULER_LOCK = 0x5e7eb4c0;
const SYSTEM = { type: "system" as const, id: "backup-scheduler", name: "backup scheduler" };

/** Starts every job due at `now`; returns the runs started. */
export async function runDueJobs(deps: BackupDeps, now = new Date()): Promise<number[]> {
  const { sql } = deps;
  const due = await sql<{ id: number; schedule: Schedule }[]>`select id, schedule from backup_jobs
    where enabled and schedule->>'kind' <> 'manual' and next_run_at is not null and next_run_at <= ${now} order by next_run_at limit 100`;
  if (!due.length) return [];
  const hosts = await listHosts(sql, HostScope.system("backup scheduler"));
  const started: number[] = [];
  for (const d of due) {
    // claim this due time first: a job runs once per due time
    const claimed = await sql`update backup_jobs set next_run_at = ${nextRun(d.schedule, now)} where id = ${d.id} and next_run_at <= ${now} returning 1`;
    if (!claimed.length) continue;
    const job = await getJob(sql, Number(d.id));
    if (!job) continue;
    for (const h of hosts.filter((x) => jobCovers(job, x))) {
      const [busy] = await sql`select 1 from backup_runs where job_id = ${job.id} and agent_id = ${h.id} and status = 'running'
        and started_at > now() - make_interval(hours => ${LOST_AFTER_H}) limit 1`;
      if (busy) continue;
      try {
        started.push((await startBackup(deps, SYSTEM, job, h, "schedule")).run);
      } catch (e) {
        console.error(`backup scheduler: job ${job.id} on agent ${h.id}: ${e instanceof Error ? e.message : e}`);
      }
    }
  }
  return started;
}

export interface BackupSchedulerOptions {
  deps: BackupDeps;
  lockUrl: string;
  pollMs?: number;
  intervalMs?: number;
  log?: (m: string) => void;
}

export function startBackupScheduler(o: BackupSchedulerOptions): { readonly leader: boolean; stop(): Promise<void> } {
  const log = o.log ?? ((m: string) => console.log(m));
  let timer: ReturnType<typeof setInterval> | undefined;
  let running: Promise<unknown> | undefined;
  const tick = () => {
    if (running) return;
    // and the results of runs nobody waits for any more (a restarted server): fetched again from their hosts
    running = runDueJobs(o.deps).then(() => reconcileRuns(o.deps)).catch((e) => log(`backup scheduler: ${e instanceof Error ? e.message : e}`)).finally(() => (running = undefined));
  };
  const election = new LeaderElection({
    connect: (onclose) => createPgClient(o.lockUrl, 1, { onclose, maxLifetimeSeconds: 0 }),
    key: BACKUP_SCHEDULER_LOCK,
    pollMs: o.pollMs,
    log: (m) => log(m.replace("alert evaluator", "backup scheduler")),
    onElected() {
      timer = setInterval(tick, o.intervalMs ?? 30_000);
      tick();
    },
    onDeposed() {
      clearInterval(timer);
    },
  }).start();
  return {
    get leader() {
      return election.leader;
    },
    async stop() {
      clearInterval(timer);
      await running;
      await election.stop();
    },
  };
}
