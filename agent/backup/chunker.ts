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

/** A mask of the top `bits` bits: the high bits of the gear hash depend on the last 32 bytes. */
const topMask = (bits: number) => (bits >= 32 ? -1 : ~((1 << (32 - bits)) - 1)) | 0;

export class Chunker {
  private readonly maskS: number;
  private readonly maskL: number;
  private buffer: Uint8Array | null = null;
  private inUse: Uint8Array | null = null;

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
   * The chunks of a file, read in large windows. Each yielded array is a view into a reused
   * buffer: it is valid only until the consumer asks for the next one. One file at a time per
   * Chunker (the buffer is shared between calls).
   */
  async *file(path: string): AsyncGenerator<Uint8Array> {
    const fh = await open(path, "r");
    try {
      const cap = Math.max(16 << 20, this.params.max * 2);
      let buf: Uint8Array | null = this.buffer;
      this.buffer = null;
      let start = 0;
      let end = 0;
      let eof = false;
      for (;;) {
        if (!eof && end - start < this.params.max) {
          if (!buf) buf = new Uint8Array(cap);
          this.inUse = buf;
          if (start > 0) {
            buf.copyWithin(0, start, end);
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
        const n = this.cut(buf!, start, end - start);
        yield buf!.subarray(start, start + n);
        start += n;
      }
    } finally {
      this.buffer = this.inUse;
      await fh.close();
    }
  }
}
