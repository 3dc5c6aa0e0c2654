import { expect, test } from "bun:test";
import { createDiskioCollector } from "../../../../agent/collect/diskio/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

const S = "debian12-2core";

test("rates per whole device over the injected interval; loop and zram devices are skipped", () => {
  const m = collectOver(createDiskioCollector, [fixtureRoot("diskio", S, "t0"), fixtureRoot("diskio", S, "t1")], 1000);
  // 20 MiB were written with O_DIRECT between the two recordings
  expect(m.get('diskio.write_bytes_per_s{device="vda"}')!).toBeGreaterThanOrEqual(20 * 1024 * 1024);
  expect([...m.keys()].some((k) => k.includes("loop") || k.includes("zram"))).toBe(false);
  const twice = collectOver(createDiskioCollector, [fixtureRoot("diskio", S, "t0"), fixtureRoot("diskio", S, "t1")], 2000);
  expect(twice.get('diskio.write_bytes_per_s{device="vda"}')).toBeCloseTo(m.get('diskio.write_bytes_per_s{device="vda"}')! / 2, 6);
});
