import { expect, test } from "bun:test";
import { createCpuCollector } from "../../../../agent/collect/cpu/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

const S = "debian12-2core";

test("first reading emits only the core count, the second percentages that add up", () => {
  const first = collectOver(createCpuCollector, [fixtureRoot("cpu", S, "t0")]);
  expect([...first.keys()]).toEqual(["cpu.cores"]);
  expect(first.get("cpu.cores")).toBe(2);
  const m = collectOver(createCpuCollector, [fixtureRoot("cpu", S, "t0"), fixtureRoot("cpu", S, "t1")]);
  const usage = m.get("cpu.usage_pct")!;
  expect(usage).toBeGreaterThanOrEqual(0);
  expect(usage).toBeLessThanOrEqual(100);
  const parts = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"].map((f) => m.get(`cpu.${f}_pct`)!);
  expect(parts.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 6);
  expect(m.has('cpu.usage_pct{cpu="0"}')).toBe(true);
  expect(m.has('cpu.usage_pct{cpu="1"}')).toBe(true);
});

test("a counter going backwards (reset) or garbage emits nothing for that cpu and does not throw", () => {
  const m = collectOver(createCpuCollector, [fixtureRoot("cpu", S, "t1"), fixtureRoot("cpu", S, "t0")]);
  expect(m.has("cpu.usage_pct")).toBe(false);
});
