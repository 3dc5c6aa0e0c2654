import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createTcpCollector } from "../../../../agent/collect/tcp/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("connections by state over tcp and tcp6 add up to the table rows", () => {
  const root = fixtureRoot("tcp", "debian12-2core");
  const rows = ["tcp", "tcp6"].map((f) => readFileSync(join(root, "proc/net", f), "utf8").trim().split("\n").length - 1).reduce((a, b) => a + b, 0);
  const m = collectOver(createTcpCollector, [root]);
  const total = [...m.values()].reduce((a, b) => a + b, 0);
  expect(total).toBe(rows);
  expect(m.get("tcp.listen")!).toBeGreaterThan(0);
});
