/** The pure parts of the charts' data (src/web/chart/data.ts): one shared axis, where lines break, the window a query asks for. */
import { expect, test } from "bun:test";
import { alignColumns, breakGaps, ChartQueryError, gapFor, parseChartWindow, sumSeries } from "../../../src/web/chart/data.ts";

test("series on one axis: null where a series has no point; a stretch longer than the gap gets a break point", () => {
  const a = { t: [0, 10_000, 20_000, 300_000, 310_000], v: [1, 2, 3, 4, 5] };
  const b = { t: [5_000, 15_000], v: [7, 8] };
  const aligned = alignColumns([a, b]);
  expect(aligned.t).toEqual([0, 5_000, 10_000, 15_000, 20_000, 300_000, 310_000]);
  expect(aligned.values).toEqual([[1, null, 2, null, 3, 4, 5], [null, 7, null, 8, null, null, null]]);
  const gap = gapFor(a.t, 2_000);
  expect(gap).toBe(25_000); // 2.5 x the 10 s interval (larger than the 2 s bucket)
  const broken = breakGaps(aligned.t, aligned.values, gap);
  // one break between 20 s and 300 s (the outage), none inside the 5 s interleaving
  expect(broken.t).toEqual([0, 5_000, 10_000, 15_000, 20_000, 160_000, 300_000, 310_000]);
  expect(broken.values[0]).toEqual([1, null, 2, null, 3, null, 4, 5]);
});

test("a 10 s agent in 2 s buckets (15 minutes at 800 px) needs no break: the old dashed-line case", () => {
  const t = Array.from({ length: 90 }, (_, i) => i * 10_000);
  const { t: out, values } = breakGaps(t, [t.map(() => 1)], gapFor(t, 2_000));
  expect(out).toEqual(t);
  expect(values[0]!.includes(null)).toBe(false);
});

test("interfaces summed per bucket", () => {
  const p = (t: number[], avg: number[]) => ({ name: "x", t, avg, min: avg, max: avg });
  expect(sumSeries([p([0, 10], [1, 2]), p([10, 20], [5, 6])])).toEqual({ t: [0, 10, 20], v: [1, 7, 6] });
});

test("the window: a named range ends now; from/to are a fixed window; width bounded", () => {
  const now = 1_800_000_000_000;
  expect(parseChartWindow(new URLSearchParams("range=15m&width=640"), now)).toEqual({ from: now - 900_000, to: now, range: "15m", width: 640 });
  expect(parseChartWindow(new URLSearchParams(""), now)).toEqual({ from: now - 3_600_000, to: now, range: "1h", width: 800 });
  expect(parseChartWindow(new URLSearchParams(`from=${now - 60_000}&to=${now}`), now)).toEqual({ from: now - 60_000, to: now, range: null, width: 800 });
  for (const q of ["width=0", "width=4001", "range=1y", `from=${now}`, `from=${now}&to=${now + 5000}`, `from=${now}&to=${now + 3 * 86_400_000}`]) {
    expect(() => parseChartWindow(new URLSearchParams(q), now)).toThrow(ChartQueryError);
  }
});
