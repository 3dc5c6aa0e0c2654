/**
 * The precision the agent sends each metric at. Counters and gauges read from the kernel (bytes,
 * counts, load averages) go as read. Values the agent derives by division, a percentage
 * (`*_pct`) or a rate per second (`*_per_s`), carry no more information than the readings they
 * come from: a CPU percentage over 10 s of 100 Hz jiffies resolves 0.1 % / cores, a rate is a
 * difference of whole counts over a measured interval. Their float noise beyond two decimals
 * (`74.07407407407408`) would cost the store ~6 bytes a sample for nothing, so they are rounded to
 * two decimals (0.01 % and 0.01 per second), which the store keeps bit for bit as small integers
 * (src/store/codec/block.ts, DELTA/DOD at scale 2).
 */

/** Decimals kept for derived metrics. */
export const DERIVED_DECIMALS = 2;

/** Whether `name` is a value the agent derives by division (a percentage or a rate per second). */
export function isDerived(name: string): boolean {
  const base = name.indexOf("{");
  const n = base < 0 ? name : name.slice(0, base);
  return n.endsWith("_pct") || n.endsWith("_per_s");
}

/** A derived value at two decimals (values too large to hold them exactly go as they are). */
export function roundDerived(value: number): number {
  return roundTo(value, DERIVED_DECIMALS);
}

/** `value` at `decimals` places, as the double `k / 10^decimals` (values too large to hold them exactly go as they are). */
export function roundTo(value: number, decimals: number): number {
  if (!Number.isFinite(value) || Math.abs(value) >= 2 ** 46) return value;
  const scale = 10 ** decimals;
  const r = Math.round(value * scale) / scale;
  return r === 0 ? 0 : r; // never -0
}

/** `value` at the precision the agent sends `name` with. */
export function atPrecision(name: string, value: number): number {
  return isDerived(name) ? roundDerived(value) : value;
}
