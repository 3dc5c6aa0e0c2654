/**
 * Reads a request body up to a limit, refusing larger ones before they are buffered whole, and
 * at a minimum pace: the body must be in by `graceMs` + bytes / `minRate` after the read starts
 * (time the caller spends paused, e.g. waiting for a gate token, not counted). A client that
 * trickles a few bytes now and then is cut with BodyTooSlow instead of holding its connection.
 */
export class BodyTooLarge extends Error {}
export class BodyTooSlow extends Error {}

export interface BodyPace {
  graceMs: number;
  /** Bytes per second. */
  minRate: number;
}

/**
 * Bodies that declare at most this many bytes are read in one piece (`Request.arrayBuffer()`)
 * instead of through a stream reader: the buffer is no larger than the one a streamed read
 * starts with, and the stream machinery cost the ingest path about a tenth of its server CPU
 * (docs/architecture.md, "Reading a request body").
 */
export const WHOLE_BODY_MAX = 64 * 1024;

export class BodyReader {
  private buf: Uint8Array;
  private len = 0;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** A small body with a declared length: read whole, and `tooSlowNow` ends the wait for it when the pace timer fires. */
  private whole: Promise<ArrayBuffer> | undefined;
  private tooSlowNow: (() => void) | undefined;
  private readonly started = performance.now();
  private pausedMs = 0;
  private pausedAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private slow = false;
  private finished = false;
  private readonly declared: number;
  private trusted = false;

  constructor(req: Request, private readonly max: number, private readonly pace: BodyPace | undefined) {
    const declared = Number(req.headers.get("content-length") ?? NaN);
    if (declared > max) throw new BodyTooLarge(`request body of ${declared} bytes exceeds ingest.maxRequestBytes = ${max} (SERVERMIND_MAX_REQUEST_BYTES)`);
    this.declared = declared >= 0 ? declared : NaN;
    if (this.declared <= WHOLE_BODY_MAX && req.body) {
      this.buf = new Uint8Array(0);
      this.whole = req.arrayBuffer();
      // a body cut short (the client went, or we answered first and closed) is the same as its end
      this.whole.catch(() => {});
      this.arm();
      return;
    }
    // Nothing large is allocated for a client on its word: the buffer grows with what arrives.
    this.buf = new Uint8Array(Math.min(max, declared >= 0 ? declared : Infinity, 64 * 1024));
    this.reader = req.body?.getReader();
    if (!this.reader) this.finished = true;
    else this.arm();
  }

  /** The whole small body, or BodyTooSlow once the pace timer gave up on it. */
  private async readWhole(): Promise<boolean> {
    const slow = new Promise<"slow">((resolve) => (this.tooSlowNow = () => resolve("slow")));
    const got = await Promise.race([this.whole!.catch(() => undefined), slow]);
    this.tooSlowNow = undefined;
    this.whole = undefined;
    if (got === "slow" || this.slow) throw this.tooSlow();
    this.finish();
    if (got === undefined || got.byteLength === 0) return false;
    if (got.byteLength > this.max) throw new BodyTooLarge(`request body exceeds ingest.maxRequestBytes = ${this.max} (SERVERMIND_MAX_REQUEST_BYTES)`);
    this.buf = new Uint8Array(got);
    this.len = got.byteLength;
    return true;
  }

  /** The bytes read so far (a view; later reads may move them). */
  get bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  get done(): boolean {
    return this.finished;
  }

  /** Every byte of the body is in: the end was read, or the declared length was reached. */
  get complete(): boolean {
    return (this.finished && !this.slow) || this.len === this.declared;
  }

  /** Reads the next chunk; false once the body has ended. Throws BodyTooLarge or BodyTooSlow. */
  async next(): Promise<boolean> {
    if (this.finished) return false;
    if (this.whole) return await this.readWhole();
    const { done, value } = await this.reader!.read().catch((e) => {
      if (this.slow) return { done: true, value: undefined };
      throw e;
    });
    if (this.slow) throw this.tooSlow();
    if (done || !value) {
      this.finish();
      return false;
    }
    if (this.len + value.byteLength > this.max) {
      this.finish();
      await this.reader!.cancel().catch(() => {});
      throw new BodyTooLarge(`request body exceeds ingest.maxRequestBytes = ${this.max} (SERVERMIND_MAX_REQUEST_BYTES)`);
    }
    if (this.len + value.byteLength > this.buf.length) {
      const need = this.len + value.byteLength;
      const size = this.trusted && this.declared >= need ? this.declared : Math.min(this.max, Math.max(this.buf.length * 2, need));
      const grown = new Uint8Array(size);
      grown.set(this.bytes);
      this.buf = grown;
    }
    this.buf.set(value, this.len);
    this.len += value.byteLength;
    return true;
  }

  /** Reads to the end; returns the whole body. */
  async all(): Promise<Uint8Array> {
    while (await this.next());
    return this.bytes;
  }

  /** The client has authenticated: from now on the buffer may grow straight to the declared length. */
  trust(): void {
    this.trusted = true;
  }

  /** Stops the pace clock (while the caller waits for something other than the client). */
  pause(): void {
    if (this.pausedAt || this.finished) return;
    this.pausedAt = performance.now();
    clearTimeout(this.timer);
  }

  resume(): void {
    if (!this.pausedAt) return;
    this.pausedMs += performance.now() - this.pausedAt;
    this.pausedAt = 0;
    if (!this.finished) this.arm();
  }

  /** Stops reading (the rest of the body is not wanted). */
  cancel(): void {
    if (this.finished) return;
    this.finish();
    // a whole-body read cannot be stopped; the caller closes the connection when the body was not all read
    this.whole = undefined;
    this.reader?.cancel().catch(() => {});
  }

  private finish(): void {
    this.finished = true;
    clearTimeout(this.timer);
  }

  private deadline(): number {
    // a body read whole counts its declared length at once: the time the pace allows all of it
    const bytes = this.whole ? this.declared : this.len;
    return this.started + this.pausedMs + this.pace!.graceMs + (bytes / this.pace!.minRate) * 1000;
  }

  /** One timer per body, moved forward lazily as bytes arrive. */
  private arm(): void {
    if (!this.pace) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.finished || this.pausedAt) return;
      if (performance.now() < this.deadline()) return this.arm();
      this.slow = true;
      this.finish();
      this.tooSlowNow?.();
      this.reader?.cancel().catch(() => {});
    }, Math.max(10, this.deadline() - performance.now()));
  }

  private tooSlow(): BodyTooSlow {
    const s = ((performance.now() - this.started - this.pausedMs) / 1000).toFixed(1);
    return new BodyTooSlow(`request body too slow: ${this.len} bytes in ${s} s; after ${this.pace!.graceMs} ms it must arrive at ${this.pace!.minRate} bytes/s or more (SERVERMIND_BODY_GRACE_MS, SERVERMIND_BODY_MIN_RATE)`);
  }
}

export async function readBody(req: Request, max: number, pace?: BodyPace): Promise<Uint8Array> {
  return await new BodyReader(req, max, pace).all();
}
