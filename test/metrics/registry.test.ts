import { expect, test } from "bun:test";
import { Counter, Histogram, renderMetrics } from "../../src/metrics/registry.ts";

const lines = (s: string) => s.trim().split("\n");

test("a histogram before its first observation renders one empty series without labels", () => {
  const h = new Histogram("t_seconds", "Test.", [0.1, 1]);
  expect(lines(h.render())).toEqual([
    "# HELP t_seconds Test.",
    "# TYPE t_seconds histogram",
    't_seconds_bucket{le="0.1"} 0',
    't_seconds_bucket{le="1"} 0',
    't_seconds_bucket{le="+Inf"} 0',
    "t_seconds_sum 0",
    "t_seconds_count 0",
  ]);
});

test("a histogram keeps cumulative buckets, sum and count per label set; unlabeled observations are a series of their own", () => {
  const h = new Histogram("ack_seconds", "Acks.", [0.01, 0.1, 1]);
  h.observe(0.005, { transport: "h2" });
  h.observe(0.05, { transport: "h2" });
  h.observe(0.5, { transport: "h3" });
  h.observe(2, { transport: "h3" });
  h.observe(0.5, { transport: "h3" });
  h.observe(0.01);
  expect(lines(h.render()).slice(2)).toEqual([
    'ack_seconds_bucket{transport="h2",le="0.01"} 1',
    'ack_seconds_bucket{transport="h2",le="0.1"} 2',
    'ack_seconds_bucket{transport="h2",le="1"} 2',
    'ack_seconds_bucket{transport="h2",le="+Inf"} 2',
    'ack_seconds_sum{transport="h2"} 0.055',
    'ack_seconds_count{transport="h2"} 2',
    'ack_seconds_bucket{transport="h3",le="0.01"} 0',
    'ack_seconds_bucket{transport="h3",le="0.1"} 0',
    'ack_seconds_bucket{transport="h3",le="1"} 2',
    'ack_seconds_bucket{transport="h3",le="+Inf"} 3',
    'ack_seconds_sum{transport="h3"} 3',
    'ack_seconds_count{transport="h3"} 3',
    'ack_seconds_bucket{le="0.01"} 1',
    'ack_seconds_bucket{le="0.1"} 1',
    'ack_seconds_bucket{le="1"} 1',
    'ack_seconds_bucket{le="+Inf"} 1',
    "ack_seconds_sum 0.01",
    "ack_seconds_count 1",
  ]);
});

test("label values are escaped; counters render per label set and 0 before their first increment", () => {
  const c = new Counter("x_total", "X.");
  expect(lines(c.render())).toEqual(["# HELP x_total X.", "# TYPE x_total counter", "x_total 0"]);
  c.inc({ reason: 'a "quoted"\\back\nline' }, 2);
  c.with({ reason: "b" })();
  const h = new Histogram("y_seconds", "Y.", [1]);
  h.observe(1, { path: 'q"\\' });
  const out = renderMetrics([c, h]);
  expect(out).toContain('x_total{reason="a \\"quoted\\"\\\\back\\nline"} 2\n');
  expect(out).toContain('x_total{reason="b"} 1\n');
  expect(out).toContain('y_seconds_bucket{path="q\\"\\\\",le="1"} 1\n');
  expect(out).toContain('y_seconds_count{path="q\\"\\\\"} 1\n');
});
