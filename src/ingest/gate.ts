/**
 * Backpressure in one place. A request takes a token before its body is read and decoded;
 * if no token frees up within `maxWaitMs`, or the batcher already holds `batch.maxPendingBytes`
 * of uncommitted frames, the caller is told to come back later (HTTP 503 + Retry-After,
 * a "slow" message on a stream). Nothing accepted is dropped; nothing waits without bound.
 */
export interface GateOptions {
  maxConcurrent: number;
  maxWaitMs: number;
  maxWaiters: number;
  hasRoom: () => boolean;
}

export class Busy extends Error {
  constructor(message: string, readonly retryAfterS: number) {
    super(message);
  }
}

export class Gate {
  private inUse = 0;
  private waiters: Array<{ resolve: () => void; timer: ReturnType<typeof setTimeout> }> = [];

  constructor(private readonly o: GateOptions) {}

  get used(): number {
    return this.inUse;
  }
  get capacity(): number {
    return this.o.maxConcurrent;
  }
  get waiting(): number {
    return this.waiters.length;
  }

  /** Takes a token or throws Busy. Call the returned function exactly once to give it back. */
  async acquire(): Promise<() => void> {
    if (!this.o.hasRoom()) {
      throw new Busy("uncommitted frames have reached batch.maxPendingBytes (SERVERMIND_MAX_PENDING_BYTES); the store is behind", 1);
    }
    if (this.inUse < this.o.maxConcurrent) {
      this.inUse++;
      return this.releaser();
    }
    if (this.waiters.length >= this.o.maxWaiters) {
      throw new Busy(`all ${this.o.maxConcurrent} ingest slots are busy and ${this.waiters.length} requests wait (ingest.maxConcurrent)`, 1);
    }
    await new Promise<void>((resolve, reject) => {
      const w = {
        resolve,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Busy(`no ingest slot freed within ${this.o.maxWaitMs} ms (ingest.maxConcurrent = ${this.o.maxConcurrent})`, 1));
        }, this.o.maxWaitMs),
      };
      this.waiters.push(w);
    });
    // The store may have fallen behind while this request waited: the bound holds for it too.
    const release = this.releaser();
    if (!this.o.hasRoom()) {
      release();
      throw new Busy("uncommitted frames have reached batch.maxPendingBytes (SERVERMIND_MAX_PENDING_BYTES); the store is behind", 1);
    }
    return release;
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next) {
        clearTimeout(next.timer);
        next.resolve(); // the token passes straight to the next waiter
      } else this.inUse--;
    };
  }
}
