import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createMemoryCollector, parseMeminfo } from "../../../../agent/collect/memory/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("memory and swap from a recorded /proc/meminfo", () => {
  const root = fixtureRoot("memory", "debian12-2core");
  const info = parseMeminfo(readFileSync(join(root, "proc/meminfo"), "utf8"));
  const m = collectOver(createMemoryCollector, [root]);
  expect(m.get("mem.total_bytes")).toBe(info.get("MemTotal")!);
  expect(m.get("mem.used_bytes")).toBe(info.get("MemTotal")! - info.get("MemAvailable")!);
  expect(m.get("mem.used_pct")!).toBeGreaterThan(0);
  expect(m.get("mem.used_pct")!).toBeLessThan(100);
  expect(m.get("swap.used_bytes")).toBe(info.get("SwapTotal")! - info.get("SwapFree")!);
});

test("a missing file is an error the runner can count, not a crash", () => {
  expect(() => collectOver(createMemoryCollector, ["/nonexistent-root"])).toThrow(/meminfo/);
});
