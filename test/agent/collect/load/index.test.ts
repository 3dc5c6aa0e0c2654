import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLoadCollector } from "../../../../agent/collect/load/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("load averages from a recorded /proc/loadavg", () => {
  const root = fixtureRoot("load", "debian12-2core");
  const f = readFileSync(join(root, "proc/loadavg"), "utf8").split(" ");
  const m = collectOver(createLoadCollector, [root]);
  expect(m.get("load.1")).toBe(Number(f[0]));
  expect(m.get("load.15")).toBe(Number(f[2]));
  expect(m.get("load.entities")).toBe(Number(f[3]!.split("/")[1]));
});
