/**
 * A growable buffer that writes ClickHouse's RowBinary format: little-endian fixed-width
 * numbers, strings as a LEB128 length and UTF-8 bytes. Floats go in bit for bit (ClickHouse
 * 18.16's text parser can round a decimal float by one ulp, so text formats would not be exact).
 */
export class RowBinaryWriter {
  private buf: Buffer;
  private view: DataView;
  private pos = 0;

  constructor(initial = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initial);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  get length(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /** A non-negative integer below 2^53 as UInt64 (no BigInt on the hot path). */
  u64n(v: number): void {
    this.room(8);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.view.setUint32(this.pos + 4, Math.floor(v / 4294967296), true);
    this.pos += 8;
  }
  /** An integer of magnitude below 2^53 as Int64. */
  i64n(v: number): void {
    this.room(8);
    const hi = Math.floor(v / 4294967296);
    this.view.setUint32(this.pos, (v - hi * 4294967296) >>> 0, true);
    this.view.setInt32(this.pos + 4, hi, true);
    this.pos += 8;
  }
  u64(v: number | bigint | string): void {
    this.room(8);
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
  }
  i64(v: number | bigint | string): void {
    this.room(8);
    this.view.setBigInt64(this.pos, BigInt(v), true);
    this.pos += 8;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  i16(v: number): void {
    this.room(2);
    this.view.setInt16(this.pos, v, true);
    this.pos += 2;
  }
  f64(v: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.room(n + 5);
    let len = n;
    while (len >= 0x80) {
      this.buf[this.pos++] = (len & 0x7f) | 0x80;
      len >>>= 7;
    }
    this.buf[this.pos++] = len;
    this.pos += this.buf.write(s, this.pos);
  }

  /** The bytes written so far (a view; copy before reusing the writer). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
