/**
 * For failures that repeat for as long as an outage lasts (every request, every batch): at most
 * one log line per interval, the occurrences in between counted and handed to the next line. The
 * 503 log (src/http/errors.ts) and the store write failures (src/ingest/write-failures.ts) use it.
 */
export class LogLimiter {
  private quietUntil = 0;
  private quieted = 0;

  constructor(
    readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * For each occurrence: when a line may be logged now, the number of occurrences held back
   * since the previous line (the caller logs it, and the next interval starts); otherwise
   * undefined, and this one is counted.
   */
  next(): number | undefined {
    const now = this.now();
    if (now < this.quietUntil) {
      this.quieted++;
      return undefined;
    }
    const held = this.quieted;
    this.quieted = 0;
    this.quietUntil = now + this.intervalMs;
    return held;
  }

  /** A line that went out at once (the first of its kind): the next interval starts from it. */
  restart(): void {
    this.quietUntil = this.now() + this.intervalMs;
  }
}
