import { expect, test } from "bun:test";
import { atPrecision, isDerived } from "../../../agent/collect/precision.ts";
import { collectMetrics } from "../../../agent/collect/process.ts";
import { ByteSink, decodeBlock, encodeBlock } from "../../../src/store/codec/block.ts";

test("percentages and rates go at two decimals; readings as read", () => {
  expect(isDerived("cpu.usage_pct")).toBe(true);
  expect(isDerived('cpu.usage_pct{cpu="0"}')).toBe(true);
  expect(isDerived('net.rx_bytes_per_s{iface="eth0"}')).toBe(true);
  expect(isDerived('disk.used_bytes{mount="/x_pct"}')).toBe(false); // a label is not the name
  expect(isDerived("mem.total_bytes")).toBe(false);
  expect(atPrecision("cpu.idle_pct", 74.07407407407408)).toBe(74.07);
  expect(atPrecision("diskio.reads_per_s", 13.787591167948845)).toBe(13.79);
  expect(atPrecision("cpu.idle_pct", -0.001)).toBe(0);
  expect(Object.is(atPrecision("cpu.idle_pct", -0.001), 0)).toBe(true); // never -0
  expect(atPrecision("load.1", 1.7345)).toBe(1.7345);
  expect(atPrecision("mem.used_bytes", 740761600.5)).toBe(740761600.5);
  expect(atPrecision("x_per_s", 2 ** 50 + 0.5)).toBe(2 ** 50 + 0.5); // beyond what two decimals can say exactly
  expect(atPrecision("x_pct", Number.NaN)).toBeNaN();
});

test("the Collector sends derived values rounded, and the store keeps them bit for bit in fewer bytes", () => {
  let tick = 0;
  const collectors = [{
    name: "t",
    collect(emit: (n: string, v: number) => void) {
      tick++;
      emit("cpu.usage_pct", 100 / 3 + tick / 7);
      emit("mem.used_bytes", 1_000_000 + tick);
    },
  }];
  const ts: number[] = [];
  const pct: number[] = [];
  const bytes: number[] = [];
  for (let i = 0; i < 60; i++) {
    const m = collectMetrics(collectors, new Map());
    expect(m.names).toEqual(["cpu.usage_pct", "mem.used_bytes"]);
    ts.push(i * 10_000);
    pct.push(m.values[0]!);
    bytes.push(m.values[1]!);
  }
  expect(pct[0]).toBe(33.48); // 33.333... + 1/7
  expect(bytes[0]).toBe(1_000_001);
  const values = Float64Array.from([...pct, ...bytes]);
  const sink = new ByteSink();
  encodeBlock(sink, ts, [1, 2], 0, 2, values, 0);
  const d = decodeBlock(sink.bytes());
  expect(Array.from(d.values)).toEqual(Array.from(values));
  // unrounded, the percentage would cost ~8 bytes a sample; at two decimals it costs about one
  const raw = new ByteSink();
  encodeBlock(raw, ts, [1], 0, 1, Float64Array.from(pct.map((_, i) => 100 / 3 + (i + 1) / 7)), 0);
  const rounded = new ByteSink();
  encodeBlock(rounded, ts, [1], 0, 1, Float64Array.from(pct), 0);
  expect(rounded.pos * 4).toBeLessThan(raw.pos);
});
