import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createFdCollector } from "../../../../agent/collect/fd/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("allocated and maximum file handles from a recorded file-nr", () => {
  const root = fixtureRoot("fd", "debian12-2core");
  const [alloc, free, max] = readFileSync(join(root, "proc/sys/fs/file-nr"), "utf8").trim().split(/\s+/).map(Number);
  const m = collectOver(createFdCollector, [root]);
  expect(m.get("fd.allocated")).toBe(alloc! - free!);
  expect(m.get("fd.max")).toBe(max!);
});
