/**
 * Is PostgreSQL answering? A probe (`select 1`) at a time, each bounded by `timeoutMs`, every
 * `intervalMs` and on demand (/healthz). Request deadlines read `state()` to tell a database
 * fault (answer 503 now) from a request that is merely slow (let it finish). Give it a pool of
 * its own (one connection) so busy request connections do not read as a fault.
 */
import type { Sql } from "postgres";
import { StoreUnavailable, type StoreState } from "./unavailable.ts";

export interface StoreHealth {
  readonly timeoutMs: number;
  /** The latest verdict: a probe older than `timeoutMs` still waiting counts as "timeout". */
  state(): StoreState;
  /** Probes now (joining a probe in flight) and answers within `timeoutMs`. */
  check(): Promise<StoreState>;
  stop(): void;
}

export interface StoreHealthOptions {
  timeoutMs: number;
  /** Background probe interval; 0 = probe only on check(). */
  intervalMs?: number;
}

export function createStoreHealth(sql: Sql, o: StoreHealthOptions): StoreHealth {
  let last: StoreState = "ok";
  let inFlight: Promise<void> | undefined;
  let since = 0;
  const probe = (): Promise<void> => {
    if (!inFlight) {
      since = performance.now();
      inFlight = Promise.resolve(sql`select 1`)
        .then(
          () => void (last = "ok"),
          (e) => void (last = e instanceof StoreUnavailable ? e.state : "unreachable"),
        )
        .finally(() => (inFlight = undefined));
    }
    return inFlight;
  };
  const state = (): StoreState => (inFlight && performance.now() - since >= o.timeoutMs ? "timeout" : last);
  const timer = o.intervalMs ? setInterval(() => void probe(), o.intervalMs) : undefined;
  timer?.unref?.();
  const waitFor = async (p: Promise<void>, until: number): Promise<boolean> => {
    let t: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    await Promise.race([p.then(() => void (done = true)), new Promise<void>((r) => (t = setTimeout(r, Math.max(0, until - performance.now()))))]);
    clearTimeout(t);
    return done;
  };
  return {
    timeoutMs: o.timeoutMs,
    state,
    async check() {
      // a verdict from a probe sent after this call: one sent earlier may predate a fault
      const start = performance.now();
      const until = start + o.timeoutMs;
      if (inFlight && since < start && !(await waitFor(inFlight, until))) return (last = "timeout");
      if (!(await waitFor(probe(), until))) return (last = "timeout");
      return last;
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
