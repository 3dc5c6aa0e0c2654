import { test, expect } from "bun:test";
import { lineChart } from "../../../src/web/chart/svg.ts";

test("a line chart is an SVG with one path per series, gaps broken, names escaped", () => {
  const from = 0, to = 240_000;
  const svg = lineChart([
    { name: "<cpu>", points: [[0, 10], [1000, 20], [2000, 30], [200_000, 40]] },
    { name: "mem", points: [[0, 50]] },
  ], { title: `CPU "x" <y>`, unit: "%", from, to, yMin: 0, yMax: 100 }).html;
  expect(svg.startsWith('<svg class="chart" viewBox="0 0 560 180" role="img" aria-label="CPU &quot;x&quot; &lt;y&gt;"')).toBe(true);
  expect(svg).not.toContain("<cpu>");
  expect(svg).toContain("&lt;cpu&gt;");
  const paths = [...svg.matchAll(/<path class="line s(\d)" d="([^"]+)"\/>/g)];
  expect(paths.map((p) => p[1])).toEqual(["0", "1"]);
  // the 198 s gap (more than 2.5 buckets of 1 s) starts a new sub-path
  expect(paths[0]![2]!.match(/M/g)!.length).toBe(2);
  expect(paths[0]![2]).toMatch(/^M46\.0,144\.8L/); // x = left padding at t = from; y = 10 % of the 132 px plot up from its bottom at 158
  expect(svg).not.toMatch(/NaN|Infinity|undefined/);
});

test("an empty range says so instead of drawing nothing", () => {
  const svg = lineChart([{ name: "cpu", points: [] }], { title: "CPU", from: 0, to: 60_000 }).html;
  expect(svg).toContain("No data in this range");
  expect(svg).not.toContain("<path");
  expect(svg).not.toMatch(/NaN|Infinity/);
});

test("gapMs: Infinity joins sparse points into one line (the security score trend)", () => {
  const svg = lineChart([{ name: "score", points: [[0, 40], [100_000, 60], [240_000, 80]] }], { title: "Security score", from: 0, to: 240_000, yMin: 0, yMax: 100, gapMs: Infinity }).html;
  const d = /<path class="line s0" d="([^"]+)"\/>/.exec(svg)![1]!;
  expect(d.match(/M/g)!.length).toBe(1);
  expect(d.match(/L/g)!.length).toBe(2);
  expect(d).toStartWith("M46.0,");
});

test("value axis labels carry no zeros a round tick does not need (0, 50, 100, not 0.00, 50.0, 100)", () => {
  // the value axis's labels (the time axis's are hh:mm)
  const axis = (svg: string) => [...svg.matchAll(/<text class="axis"[^>]*text-anchor="end"[^>]*>([^<:]+)</g)].map((m) => m[1]);
  const score = lineChart([{ name: "score", points: [[0, 65]] }], { title: "Security score", from: 0, to: 60_000, yMin: 0, yMax: 100 }).html;
  expect(axis(score)).toEqual(["0", "50", "100"]);
  const small = lineChart([{ name: "load", points: [[0, 0.1], [30_000, 0.9]] }], { title: "Load", from: 0, to: 60_000, yMin: 0, yMax: 1 }).html;
  expect(axis(small)).toEqual(["0", "0.5", "1"]);
  const big = lineChart([{ name: "rx", points: [[0, 0], [30_000, 4_000_000]] }], { title: "Bytes", from: 0, to: 60_000, yMin: 0, yMax: 4_000_000 }).html;
  expect(axis(big)).toEqual(["0", "1M", "2M", "3M", "4M"]);
});
