import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createUptimeCollector } from "../../../../agent/collect/uptime/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("uptime in seconds from a recorded /proc/uptime", () => {
  const root = fixtureRoot("uptime", "debian12-2core");
  const m = collectOver(createUptimeCollector, [root]);
  expect(m.get("system.uptime_s")).toBe(Number(readFileSync(join(root, "proc/uptime"), "utf8").split(" ")[0]));
});
