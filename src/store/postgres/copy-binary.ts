/**
 * Writer for PostgreSQL's binary COPY format: one growable buffer, reused across batches, so
 * the hot path allocates nothing per row. Integers are big-endian as the format requires.
 */

import { grown } from "../codec/block.ts";

const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]; // "PGCOPY\n\377\r\n\0"
const PG_EPOCH_MS = 946_684_800_000;
const TWO32 = 4294967296;
const encoder = new TextEncoder();

export const OID = { int2: 21, int4: 23, int8: 20, float8: 701, text: 25 } as const;

export class CopyWriter {
  buf: Uint8Array;
  dv: DataView;
  pos = 0;

  constructor(initial = 1 << 20) {
    this.buf = new Uint8Array(initial);
    this.dv = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.buf = grown(this.buf, this.pos, n);
    this.dv = new DataView(this.buf.buffer);
  }

  /** Starts a COPY stream: signature, flags, header extension length. */
  begin(): this {
    this.pos = 0;
    this.ensure(19);
    this.buf.set(SIGNATURE, 0);
    this.dv.setInt32(11, 0);
    this.dv.setInt32(15, 0);
    this.pos = 19;
    return this;
  }

  /** Ends the stream and returns a view of the bytes (valid until the next begin()). */
  end(): Uint8Array {
    this.ensure(2);
    this.dv.setInt16(this.pos, -1);
    this.pos += 2;
    return this.buf.subarray(0, this.pos);
  }

  row(fields: number): void {
    this.ensure(2);
    this.dv.setInt16(this.pos, fields);
    this.pos += 2;
  }

  int2(v: number): void {
    this.ensure(6);
    this.dv.setInt32(this.pos, 2);
    this.dv.setInt16(this.pos + 4, v);
    this.pos += 6;
  }

  int4(v: number): void {
    this.ensure(8);
    this.dv.setInt32(this.pos, 4);
    this.dv.setInt32(this.pos + 4, v);
    this.pos += 8;
  }

  float8(v: number): void {
    this.ensure(12);
    this.dv.setInt32(this.pos, 8);
    this.dv.setFloat64(this.pos + 4, v);
    this.pos += 12;
  }

  int8(v: number): void {
    this.ensure(12);
    this.dv.setInt32(this.pos, 8);
    this.putInt64(this.pos + 4, v);
    this.pos += 12;
  }

  /**
   * timestamptz from Unix milliseconds. A time that does not fit in the format's int8 of
   * microseconds throws an error with PostgreSQL's code for it (22008, datetime field
   * overflow) rather than wrap around: the writer then refuses just that frame.
   */
  timestamptz(ms: number): void {
    const us = Math.round((ms - PG_EPOCH_MS) * 1000);
    if (!(Math.abs(us) < 9.2e18)) throw Object.assign(new RangeError(`time ${ms} ms is out of range`), { code: "22008" });
    this.ensure(12);
    this.dv.setInt32(this.pos, 8);
    this.putInt64(this.pos + 4, us);
    this.pos += 12;
  }

  private putInt64(at: number, v: number): void {
    const hi = Math.floor(v / TWO32);
    this.dv.setInt32(at, hi);
    this.dv.setUint32(at + 4, v - hi * TWO32);
  }

  text(s: string): void {
    this.ensure(4 + s.length * 3);
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos + 4));
    this.dv.setInt32(this.pos, written);
    this.pos += 4 + written;
  }

  /** Raw bytes of an already-encoded value (bytea, jsonb with its version byte, ...). */
  bytes(b: Uint8Array): void {
    this.ensure(4 + b.length);
    this.dv.setInt32(this.pos, b.length);
    this.buf.set(b, this.pos + 4);
    this.pos += 4 + b.length;
  }

  null(): void {
    this.ensure(4);
    this.dv.setInt32(this.pos, -1);
    this.pos += 4;
  }

  private arrayHeader(count: number, elemSize: number, oid: number, nulls = 0): number {
    const total = 20 + count * 4 + (count - nulls) * elemSize;
    this.ensure(4 + total);
    const dv = this.dv;
    let p = this.pos;
    dv.setInt32(p, total);
    dv.setInt32(p + 4, 1); // dimensions
    dv.setInt32(p + 8, nulls ? 1 : 0); // has nulls
    dv.setInt32(p + 12, oid);
    dv.setInt32(p + 16, count);
    dv.setInt32(p + 20, 1); // lower bound
    return p + 24;
  }

  /** int4[] from `src[from..from+count)`. */
  int4Array(src: ArrayLike<number>, from = 0, count = src.length): void {
    let p = this.arrayHeader(count, 4, OID.int4);
    const dv = this.dv;
    for (let i = from, end = from + count; i < end; i++) {
      dv.setInt32(p, 4);
      dv.setInt32(p + 4, src[i]!);
      p += 8;
    }
    this.pos = p;
  }

  /** float8[] from `src[from..from+count)`. */
  float8Array(src: Float64Array, from = 0, count = src.length - from): void {
    let p = this.arrayHeader(count, 8, OID.float8);
    const dv = this.dv;
    for (let i = from, end = from + count; i < end; i++) {
      dv.setInt32(p, 8);
      dv.setFloat64(p + 4, src[i]!);
      p += 12;
    }
    this.pos = p;
  }

  /** float8[] of all of `src`, with NaN written as NULL (no value), so it sorts and aggregates as missing. */
  float8ArrayNanAsNull(src: Float64Array): void {
    let nulls = 0;
    for (let i = 0; i < src.length; i++) if (src[i] !== src[i]) nulls++;
    let p = this.arrayHeader(src.length, 8, OID.float8, nulls);
    const dv = this.dv;
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      if (v !== v) {
        dv.setInt32(p, -1);
        p += 4;
      } else {
        dv.setInt32(p, 8);
        dv.setFloat64(p + 4, v);
        p += 12;
      }
    }
    this.pos = p;
  }
}
