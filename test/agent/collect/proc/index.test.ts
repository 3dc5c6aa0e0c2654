import { expect, test } from "bun:test";
import { createProcCollector } from "../../../../agent/collect/proc/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("counts processes by state and threads; a comm with spaces and parentheses parses", () => {
  const m = collectOver(createProcCollector, [fixtureRoot("proc", "debian12-2core")]);
  expect(m.get("proc.total")).toBe(7);
  expect(m.get("proc.zombie")!).toBeGreaterThanOrEqual(1);
  expect(m.get("proc.threads")!).toBeGreaterThanOrEqual(7);
  const states = ["running", "sleeping", "blocked", "zombie", "stopped", "idle", "other"].map((s) => m.get(`proc.${s}`)!);
  expect(states.reduce((a, b) => a + b, 0)).toBe(7);
});
