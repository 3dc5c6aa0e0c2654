/**
 * The alerting service of one server node: competes for the evaluator lock (leader.ts); while
 * it holds it, runs an evaluation cycle every `intervalMs` and sends due notifications every
 * `dispatchMs`. Every node starts it; one evaluates.
 */
import type { Sql } from "postgres";
import type { SecretBox } from "../auth/secret-box.ts";
import { Evaluator, type CycleStats } from "./evaluator.ts";
import { LeaderElection } from "./leader.ts";
import { DEFAULT_RETRY, dispatchDue, type RetryPolicy } from "./dispatch.ts";
import type { LocalLatest } from "./store.ts";
import { createPgClient } from "../store/postgres/client.ts";

export interface AlertsOptions {
  sql: Sql;
  /** The database URL the evaluator lock connection opens (a connection of its own). */
  lockUrl: string;
  box: SecretBox;
  local?: LocalLatest;
  intervalMs?: number;
  pollMs?: number;
  dispatchMs?: number;
  retry?: RetryPolicy;
  log?: (m: string) => void;
  onCycle?: (s: CycleStats) => void;
}

export interface AlertsService {
  readonly leader: boolean;
  /** Runs a cycle now (leader only); undefined on a follower. */
  cycleNow(now?: number): Promise<CycleStats | undefined>;
  dispatchNow(): Promise<number>;
  stop(): Promise<void>;
}

export function startAlerts(o: AlertsOptions): AlertsService {
  const log = o.log ?? ((m: string) => console.log(m));
  const evaluator = new Evaluator(o.sql, o.local, log);
  let cycleTimer: ReturnType<typeof setInterval> | undefined;
  let dispatchTimer: ReturnType<typeof setInterval> | undefined;
  let running: Promise<unknown> | undefined;
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = (running ?? Promise.resolve()).catch(() => {}).then(f);
    running = p;
    return p;
  };
  const cycle = (now?: number) => serial(() => evaluator.cycle(now)).then((s) => {
    o.onCycle?.(s);
    return s;
  });
  const dispatch = () => serial(() => dispatchDue(o.sql, o.box, o.retry ?? DEFAULT_RETRY));
  const election = new LeaderElection({
    connect: (onclose) => createPgClient(o.lockUrl, 1, { onclose, maxLifetimeSeconds: 0 }),
    pollMs: o.pollMs,
    log,
    async onElected() {
      await evaluator.load();
      cycleTimer = setInterval(() => void cycle().catch((e) => log(`alert evaluation failed: ${e instanceof Error ? e.message : e}`)), o.intervalMs ?? 10_000);
      dispatchTimer = setInterval(() => void dispatch().catch((e) => log(`alert dispatch failed: ${e instanceof Error ? e.message : e}`)), o.dispatchMs ?? 1000);
    },
    onDeposed() {
      clearInterval(cycleTimer);
      clearInterval(dispatchTimer);
    },
  }).start();
  return {
    get leader() {
      return election.leader;
    },
    async cycleNow(now) {
      return election.leader ? cycle(now) : undefined;
    },
    dispatchNow: () => (election.leader ? dispatch() : Promise.resolve(0)),
    async stop() {
      clearInterval(cycleTimer);
      clearInterval(dispatchTimer);
      await running?.catch(() => {});
      await election.stop();
    },
  };
}
