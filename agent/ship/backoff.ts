/**
 * Exponential backoff with full jitter: the n-th wait is uniform in [0, min(max, base * 2^n)],
 * with a floor of base/2, so 10,000 agents that lost the server together come back spread out.
 */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
}

export interface Backoff {
  next(): number;
  reset(): void;
  readonly attempts: number;
}

export function createBackoff(o: BackoffOptions): Backoff {
  const random = o.random ?? Math.random;
  let n = 0;
  return {
    next() {
      const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(n, 30));
      n++;
      return Math.max(o.baseMs / 2, Math.floor(random() * cap));
    },
    reset() {
      n = 0;
    },
    get attempts() {
      return n;
    },
  };
}
