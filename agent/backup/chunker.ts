/**
 * Content-defined chunking (FastCDC with normalized chunking, level 2). The gear table comes
 * from the repository's secret seed, so chunk boundaries — and thus chunk sizes seen at the
 * destination — say nothing about known files.
 */
import { createHmac } from "node:crypto";
import { open } from "node:fs/promises";

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}
export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

export function gearTable(seed: Uint8Array): Int32Array {
  const bytes = new Uint8Array(1024);
  for (let i = 0; i < 32; i++) bytes.set(createHmac("sha256", seed).update(`gear ${i}`).digest(), i * 32);
  return new Int32Array(bytes.buffer);
}

/** Windows kept for reuse: about the chunks in flight in a backup (64 MiB) over a window's 16 MiB, plus some. */
const SPARE = 6;

/** A mask of the top `bits` bits: the high bits of the gear hash depend on the last 32 bytes. */
const topMask = (bits: number) => (bits >= 32 ? -1 : ~((1 << (32 - bits)) - 1)) | 0;

export class Chunker {
  private readonly maskS: number;
  private readonly maskL: number;
  /** the window the next file is read into, from `pos` on */
  private buffer: Uint8Array | null = null;
  private pos = 0;
  /** windows with chunks still in use (see `hold`): how many */
  private readonly holds = new Map<ArrayBufferLike, number>();
  /** windows no longer read into whose holds all ended, ready for reuse */
  private readonly spare: Uint8Array[] = [];
  /** windows left while held: they go to `spare` when their last hold ends */
  private readonly retired = new Set<ArrayBufferLike>();

  constructor(
    readonly params: ChunkerParams,
    private readonly gear: Int32Array,
  ) {
    if (!(params.min > 0 && params.min <= params.avg && params.avg <= params.max)) throw new Error("chunker: need 0 < min <= avg <= max");
    const bits = Math.round(Math.log2(params.avg));
    this.maskS = topMask(bits + 2);
    this.maskL = topMask(bits - 2);
  }

  /** Length of the next chunk of data[off, off+len); call with len >= max unless at the end of the input. */
  cut(data: Uint8Array, off: number, len: number): number {
    const { min, avg, max } = this.params;
    if (len <= min) return len;
    const n = Math.min(len, max);
    const normal = Math.min(n, avg);
    const g = this.gear;
    const ms = this.maskS;
    const ml = this.maskL;
    let h = 0;
    let i = off + min;
    const endS = off + normal;
    const endL = off + n;
    for (; i < endS; i++) {
      h = ((h << 1) + g[data[i]!]!) | 0;
      if ((h & ms) === 0) return i + 1 - off;
    }
    for (; i < endL; i++) {
      h = ((h << 1) + g[data[i]!]!) | 0;
      if ((h & ml) === 0) return i + 1 - off;
    }
    return n;
  }

  /**
   * Keeps the window under `piece` (a chunk this Chunker yielded) from being overwritten until
   * `done` settles: the worker pool reads the chunk from this shared memory instead of a copy.
   * Without a hold, a yielded chunk is valid only until the next one is asked for.
   */
  hold(piece: Uint8Array, done: Promise<unknown>): void {
    const buf = piece.buffer;
    this.holds.set(buf, (this.holds.get(buf) ?? 0) + 1);
    const end = () => {
      const n = this.holds.get(buf)! - 1;
      if (n > 0) return void this.holds.set(buf, n);
      this.holds.delete(buf);
      if (this.retired.delete(buf) && this.spare.length < SPARE) this.spare.push(new Uint8Array(buf));
    };
    done.then(end, end);
  }

  /** A window to read into: a spare one or a new one, in memory the worker threads share. */
  private window(cap: number): Uint8Array {
    const w = this.spare.pop();
    return w && w.length === cap ? w : new Uint8Array(new SharedArrayBuffer(cap));
  }

  /** Leaves window `w`: to `spare` at once when nothing holds it, else when its last hold ends. */
  private leave(w: Uint8Array): void {
    if (this.holds.has(w.buffer)) this.retired.add(w.buffer);
    else if (this.spare.length < SPARE) this.spare.push(w);
  }

  /**
   * The chunks of a file, read in large windows. Each yielded array is a view into a reused
   * buffer (shared memory): it is valid only until the consumer asks for the next one, unless
   * held (`hold`). One file at a time per Chunker (the buffer is shared between calls: a file
   * is read into the window after the last file's bytes, so small files share one window).
   */
  async *file(path: string): AsyncGenerator<Uint8Array> {
    const fh = await open(path, "r");
    const cap = Math.max(16 << 20, this.params.max * 2);
    const max = this.params.max;
    let buf = this.buffer;
    let start = this.pos;
    this.buffer = null;
    if (!buf) {
      buf = this.window(cap);
      start = 0;
    }
    try {
      let end = start;
      let eof = false;
      for (;;) {
        if (!eof && end - start < max) {
          if (cap - start < max) {
            // no room left for a chunk of the largest size: the unread rest goes to the front,
            // or to another window while chunks before it are still held
            if (this.holds.has(buf.buffer)) {
              const next = this.window(cap);
              next.set(buf.subarray(start, end));
              this.leave(buf);
              buf = next;
            } else buf.copyWithin(0, start, end);
            end -= start;
            start = 0;
          }
          while (end < cap && !eof) {
            const { bytesRead } = await fh.read(buf, end, cap - end, null);
            if (bytesRead === 0) eof = true;
            else end += bytesRead;
          }
        }
        if (end === start) return;
        const n = this.cut(buf, start, end - start);
        const piece = buf.subarray(start, start + n);
        start += n;
        yield piece;
      }
    } finally {
      this.buffer = buf;
      this.pos = start;
      await fh.close();
    }
  }
}
