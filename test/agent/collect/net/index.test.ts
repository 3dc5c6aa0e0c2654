import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createNetCollector } from "../../../../agent/collect/net/index.ts";
import { collectOver, fixtureRoot } from "../../../support/collect.ts";

const S = "debian12-2core";

test("rates per interface, loopback excluded, none on the first reading", () => {
  expect(collectOver(createNetCollector, [fixtureRoot("net", S, "t0")]).size).toBe(0);
  const m = collectOver(createNetCollector, [fixtureRoot("net", S, "t0"), fixtureRoot("net", S, "t1")], 1000);
  const ifaces = readFileSync(join(fixtureRoot("net", S, "t1"), "proc/net/dev"), "utf8").split("\n").slice(2)
    .map((l) => l.split(":")[0]!.trim()).filter((i) => i && i !== "lo");
  expect(ifaces.length).toBeGreaterThan(0);
  for (const i of ifaces) expect(m.get(`net.rx_bytes_per_s{iface="${i}"}`)!).toBeGreaterThanOrEqual(0);
  expect([...m.keys()].some((k) => k.includes('"lo"'))).toBe(false);
});
