import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createDiskCollector, parseMounts } from "../../../../agent/collect/disk/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

test("block-device mounts only, escaped paths decoded, loop devices skipped", () => {
  const root = fixtureRoot("disk", "debian12-2core");
  const mounts = parseMounts(readFileSync(join(root, "proc/mounts"), "utf8"));
  expect(mounts.map((m) => m.mountPoint)).toEqual(["/", "/srv/with space"]);
  expect(mounts[1]!.fsType).toBe("xfs");
});

test("usage is read with statfs under the root; a mount point that is absent is skipped", () => {
  const m = collectOver(createDiskCollector, [fixtureRoot("disk", "debian12-2core")]);
  const total = m.get('disk.total_bytes{mount="/"}')!;
  expect(total).toBeGreaterThan(0);
  expect(m.get('disk.used_bytes{mount="/"}')!).toBeLessThanOrEqual(total);
  expect(m.has('disk.total_bytes{mount="/srv/with space"}')).toBe(false);
});
