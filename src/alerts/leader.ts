/**
 * One evaluator per cluster: the node holding a PostgreSQL session advisory lock on a reserved
 * connection is the leader. The lock is the connection's, so when the node dies (process
 * killed, network gone, connection terminated) PostgreSQL releases it and the next node that
 * polls takes it over. A leader checks its connection every poll; when the check fails it
 * steps down at once, before another node could have taken over for long.
 */
import type { ReservedSql, Sql } from "postgres";

/** The advisory lock key of the alert evaluator (migrate.ts uses 0x5e7e7d). */
export const EVALUATOR_LOCK = 0x5e7e7a1e;

export interface LeaderOptions {
  pollMs?: number;
  key?: number;
  onElected(): Promise<void> | void;
  onDeposed(): void;
  log?: (m: string) => void;
}

export class LeaderElection {
  private conn: ReservedSql | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private ticking: Promise<void> | undefined;
  leader = false;

  constructor(private readonly sql: Sql, private readonly o: LeaderOptions) {}

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
    const key = this.o.key ?? EVALUATOR_LOCK;
    if (this.leader) {
      try {
        await Promise.race([this.conn!`select 1`, Bun.sleep(Math.max(1000, this.o.pollMs ?? 2000)).then(() => Promise.reject(new Error("lock connection check timed out")))]);
      } catch (e) {
        this.o.log?.(`alert evaluator: lost the lock connection (${e instanceof Error ? e.message : e}); stepping down`);
        this.depose();
      }
      return;
    }
    let conn: ReservedSql | undefined;
    try {
      conn = await this.sql.reserve();
      const [r] = await conn`select pg_try_advisory_lock(${key}) as ok`;
      if (!r!.ok) {
        conn.release();
        return;
      }
      this.conn = conn;
      this.leader = true;
      this.o.log?.("alert evaluator: elected (holds the advisory lock)");
      await this.o.onElected();
    } catch (e) {
      this.o.log?.(`alert evaluator: election failed: ${e instanceof Error ? e.message : e}`);
      if (this.conn === conn) this.depose();
      else conn?.release();
    }
  }

  private depose(): void {
    const was = this.leader;
    this.leader = false;
    try {
      this.conn?.release();
    } catch {}
    this.conn = undefined;
    if (was) this.o.onDeposed();
  }

  /** Stops competing; a leader unlocks so another node takes over at its next poll. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.ticking;
    if (this.leader && this.conn) {
      await this.conn`select pg_advisory_unlock(${this.o.key ?? EVALUATOR_LOCK})`.catch(() => {});
    }
    this.depose();
  }
}
