/** The benches' percentile is nearest-rank: p95 of 20 runs is the 19th, not the slowest. */
import { expect, test } from "bun:test";
import { percentile } from "../../bench/support.ts";

test("nearest-rank percentiles of sorted values", () => {
  const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
  expect(percentile(twenty, 95)).toBe(19);
  expect(percentile(twenty, 50)).toBe(10);
  expect(percentile(twenty, 100)).toBe(20);
  expect(percentile(twenty, 0)).toBe(1);
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  expect(percentile(hundred, 99)).toBe(99);
  expect(percentile(hundred, 95)).toBe(95);
  expect(percentile([7], 95)).toBe(7);
  expect(percentile([], 95)).toBeNaN();
});
