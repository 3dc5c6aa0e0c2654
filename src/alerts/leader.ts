/**
 * One evaluator per cluster: the node holding a PostgreSQL session advisory lock is the leader.
 * The lock lives on a connection of its own (a one-connection client that never retires it),
 * so when the node dies (process killed, network gone, session terminated) PostgreSQL
 * releases the lock and the next node that polls takes it over, acting two polls after it got
 * the lock. The leader steps down at once when that connection closes, and checks every poll
 * that its session still holds the lock, so it is gone before the next one acts.
 * (A reserved connection of the shared pool was not used: postgres.js writes to a reserved
 * connection's closed socket and throws from a timer.)
 */
import type { Sql } from "postgres";

/** The advisory lock key of the alert evaluator (migrate.ts uses 0x5e7e7d). */
export const EVALUATOR_LOCK = 0x5e7e7a1e;

export interface LeaderOptions {
  /** Opens the lock client: one connection, never retired, calling `onclose` when it closes. */
  connect(onclose: () => void): Sql;
  pollMs?: number;
  key?: number;
  onElected(): Promise<void> | void;
  onDeposed(): void;
  log?: (m: string) => void;
}

export class LeaderElection {
  private readonly conn: Sql;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private ticking: Promise<void> | undefined;
  leader = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: LeaderOptions) {
    this.conn = o.connect(() => {
      if (this.leader) {
        this.o.log?.("alert evaluator: the lock connection closed; stepping down");
        this.depose();
      }
    });
  }

  private get key(): number {
    return this.o.key ?? EVALUATOR_LOCK;
  }

  start(): this {
    this.running = true;
    this.schedule(0);
    return this;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        this.schedule(this.o.pollMs ?? 2000);
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    try {
      if (this.leader) {
        const [r] = await this.conn`
          select count(*)::int as n from pg_locks
          where pid = pg_backend_pid() and locktype = 'advisory' and granted and objid = ${this.key}`;
        if (r!.n === 0 && this.leader) {
          this.o.log?.("alert evaluator: the lock is no longer held; stepping down");
          this.depose();
        }
        return;
      }
      const [r] = await this.conn`select pg_try_advisory_lock(${this.key}) as ok`;
      if (!r!.ok || !this.running) {
        if (r!.ok) await this.conn`select pg_advisory_unlock(${this.key})`;
        return;
      }
      // A lock freed by a terminated session is free at once, but the node that held it learns
      // of that only at its connection's close or its next poll. Holding the lock, this node
      // waits two polls before it acts, so the old leader has stepped down by then: never two
      // evaluators at once, at the cost of a slower takeover.
      await new Promise<void>((r) => {
        const t = setTimeout(r, 2 * (this.o.pollMs ?? 2000));
        this.wake = () => (clearTimeout(t), r()); // stop() does not wait out the grace
      });
      this.wake = undefined;
      const [held] = await this.conn`
        select count(*)::int as n from pg_locks
        where pid = pg_backend_pid() and locktype = 'advisory' and granted and objid = ${this.key}`;
      if (held!.n === 0 || !this.running) return;
      this.leader = true;
      this.o.log?.("alert evaluator: elected (holds the advisory lock)");
      await this.o.onElected();
    } catch (e) {
      this.o.log?.(`alert evaluator: lock check failed: ${e instanceof Error ? e.message : e}`);
      if (this.leader) this.depose();
    }
  }

  private depose(): void {
    if (!this.leader) return;
    this.leader = false;
    this.o.onDeposed();
  }

  /** Stops competing; ending the lock connection releases the lock for the next node's poll. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.wake?.();
    await this.ticking;
    this.depose();
    await this.conn.end({ timeout: 2 }).catch(() => {});
  }
}
