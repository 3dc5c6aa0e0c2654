/**
 * The log of failed store writes. While PostgreSQL refuses every write (its disk full, SQLSTATE
 * 53100; a lost privilege; a constraint) each batch fails its three attempts, and a fleet that
 * resends every 2 s made thousands of `store write failed (attempt n)` lines a second. Per outage
 * (from a failure to the first commit after the last failure) the log now has:
 *   - the first failure of each kind (SQLSTATE, or the connection error's code) at once, with
 *     its message;
 *   - then at most one summary line per interval (LogLimiter, as the 503 log): how many batches
 *     failed, how (attempts by kind) and since when;
 *   - one line when writes commit again, through the same limiter: a store that fails every
 *     other batch is summarised too, not logged twice per batch. When a commit comes inside the
 *     interval the line waits for the next write after it.
 */
import { LogLimiter } from "../log-limiter.ts";

export interface WriteFailureLogOptions {
  /** The least time between two lines of one outage, but the first of each kind (default 10 s). */
  intervalMs?: number;
  log?: (line: string) => void;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

interface Outage {
  since: number;
  batches: number;
  attempts: number;
  /** Failed attempts by kind, in the order the kinds appeared. */
  kinds: Map<string, number>;
  /** When writes started to commit again, while the line saying so waits for the limiter. */
  okSince?: number;
}

/** "SQLSTATE 53100" for PostgreSQL's refusals, the code of a connection error (CONNECT_TIMEOUT, ECONNREFUSED), else the error's name. */
export function failureKind(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code) return (err as { name?: unknown }).name === "PostgresError" ? `SQLSTATE ${code}` : code;
  return err instanceof Error ? err.name : "error";
}

export class WriteFailureLog {
  private outage: Outage | undefined;
  private readonly limiter: LogLimiter;
  private readonly log: (line: string) => void;
  private readonly now: () => number;

  constructor(o: WriteFailureLogOptions = {}) {
    this.now = o.now ?? Date.now;
    this.limiter = new LogLimiter(o.intervalMs ?? 10_000, this.now);
    this.log = o.log ?? ((line) => console.error(line));
  }

  /** Whether writes are failing (no commit since the latest failure, or its line is still to come). */
  get failing(): boolean {
    return this.outage !== undefined;
  }

  /** An attempt to write a batch failed; `last` when it was the batch's last attempt (its frames are refused). */
  failed(err: unknown, last: boolean): void {
    const now = this.now();
    const first = !this.outage;
    const o: Outage = (this.outage ??= { since: now, batches: 0, attempts: 0, kinds: new Map() });
    o.okSince = undefined;
    o.attempts++;
    if (last) o.batches++;
    const kind = failureKind(err);
    const seen = o.kinds.get(kind);
    o.kinds.set(kind, (seen ?? 0) + 1);
    if (seen === undefined) {
      const s = this.limiter.intervalMs / 1000;
      this.log(`store write failed (${kind}): ${err instanceof Error ? err.message : String(err)}${first ? `; until a write commits, further failures are summarised at most once per ${s} s` : ""}`);
      this.limiter.restart();
      return;
    }
    if (this.limiter.next() === undefined) return;
    this.log(`store writes still failing since ${new Date(o.since).toISOString()} (${seconds(now - o.since)} s): ${o.batches} batches failed (${o.attempts} attempts: ${kinds(o)})`);
  }

  /** A batch committed. */
  succeeded(): void {
    const o = this.outage;
    if (!o) return;
    o.okSince ??= this.now();
    if (this.limiter.next() === undefined) return;
    this.outage = undefined;
    this.log(`store writes succeed again after ${o.batches} failed batches over ${seconds(o.okSince - o.since)} s (${o.attempts} failed attempts: ${kinds(o)})`);
  }
}

function seconds(ms: number): string {
  return ms < 10_000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));
}

function kinds(o: Outage): string {
  return [...o.kinds].map(([k, n]) => `${k} ×${n}`).join(", ");
}
