/**
 * Anti-replay window over sequence numbers, as IPsec does: a frame is fresh if its sequence
 * number is above the highest seen, or within the last WINDOW numbers and not seen yet.
 * Every number at or below the starting floor counts as seen.
 */
export const WINDOW = 4096;

export class ReplayWindow {
  private bits = new Uint32Array(WINDOW / 32);

  constructor(private hi: number) {
    this.bits.fill(0xffffffff);
  }

  get highest(): number {
    return this.hi;
  }

  /** Marks `seq` as seen and returns true, or returns false if it is a replay or too old. */
  accept(seq: number): boolean {
    if (seq > this.hi) {
      const shift = seq - this.hi;
      if (shift >= WINDOW) this.bits.fill(0);
      else for (let s = this.hi + 1; s <= seq; s++) this.clear(s);
      this.hi = seq;
      this.set(seq);
      return true;
    }
    if (seq <= this.hi - WINDOW) return false;
    if (this.has(seq)) return false;
    this.set(seq);
    return true;
  }

  private has(s: number): boolean {
    const i = s % WINDOW;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  }
  private set(s: number): void {
    const i = s % WINDOW;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }
  private clear(s: number): void {
    const i = s % WINDOW;
    this.bits[i >>> 5]! &= ~(1 << (i & 31));
  }
}
