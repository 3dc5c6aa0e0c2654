/**
 * A restarted Collector takes its first rates against the previous Collector's last reading
 * (agent/collect/process.ts keeps it in readings.json): what a collector saves and a new one loads
 * gives the rates one collector running through would have given, and a malformed saved reading
 * is refused whole, leaving the new collector to prime as on a first start.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHostFs, type CollectorOptions, type MetricCollector } from "../../../agent/collect/collector.ts";
import { createCpuCollector } from "../../../agent/collect/cpu/index.ts";
import { createDiskioCollector } from "../../../agent/collect/diskio/index.ts";
import { createNetCollector } from "../../../agent/collect/net/index.ts";
import { usableReadings } from "../../../agent/collect/process.ts";
import { collectOver, fixtureRoot } from "../../support/collect.ts";

const S = "debian12-2core";
const T0 = 1_700_000_000_000;

function emitted(c: MetricCollector): Map<string, number> {
  const out = new Map<string, number>();
  c.collect((n, v) => out.set(n, v));
  return out;
}

/** A collector reading `root` at the clock's time. */
function make(factory: (o: CollectorOptions) => MetricCollector, clock: { t: number }, root: string) {
  return factory({ fs: createHostFs(root), now: () => clock.t });
}

/**
 * The recorded net readings are the same at t0 and t1 (a quiet interface), so every rate would be
 * 0 whatever span it was taken over: a second reading 1,000,000 received bytes later is made here.
 */
function netLater(): string {
  const root = mkdtempSync(join(tmpdir(), "sm-readings-net-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "proc/net"), { recursive: true });
  const dev = readFileSync(join(fixtureRoot("net", S, "t1"), "proc/net/dev"), "utf8");
  writeFileSync(join(root, "proc/net/dev"), dev.replace(/^(\s*eth0:\s*)(\d+)/m, (_m, head: string, n: string) => head + String(Number(n) + 1_000_000)));
  return root;
}

/** name, factory, a rate it emits, its second reading's root */
const cases: Array<[string, (o: CollectorOptions) => MetricCollector, string, string]> = [
  ["cpu", createCpuCollector, "cpu.usage_pct", fixtureRoot("cpu", S, "t1")],
  ["net", createNetCollector, "net.rx_bytes_per_s", netLater()],
  ["diskio", createDiskioCollector, "diskio.writes_per_s", fixtureRoot("diskio", S, "t1")],
];

describe.each(cases)("%s", (name, factory, rateName, later) => {
  test("a reading saved by one collector and loaded by a new one gives the same rates as one collector", () => {
    // one collector running through t0, then t1 ten seconds later (collectOver's clock starts at T0)
    const want = collectOver(factory, [fixtureRoot(name, S, "t0"), later], 10_000);
    expect([...want].some(([k, v]) => k.startsWith(rateName) && v > 0)).toBe(true);
    // a collector that read t0 and saved its reading, and a new one (a restarted Collector) that
    // loaded that reading, reading t1
    const clock = { t: T0 };
    const first = make(factory, clock, fixtureRoot(name, S, "t0"));
    emitted(first);
    const saved = JSON.parse(JSON.stringify(first.saveReading!()));
    clock.t = T0 + 10_000;
    const fresh = make(factory, clock, later);
    expect(fresh.loadReading!(saved)).toBe(true);
    expect(emitted(fresh)).toEqual(want);
  });

  test("a malformed saved reading is refused whole: the next reading gives no rate, as on a first start", () => {
    const clock = { t: T0 };
    const good = make(factory, clock, fixtureRoot(name, S, "t0"));
    emitted(good);
    const saved = good.saveReading!() as unknown;
    const counters = (s: unknown): Array<[string, number[]]> => (Array.isArray(s) ? s : (s as { counters: Array<[string, number[]]> }).counters);
    const withCounters = (f: (c: Array<[string, number[]]>) => unknown) =>
      Array.isArray(saved) ? f(structuredClone(counters(saved))) : { ...(saved as object), counters: f(structuredClone(counters(saved))) };
    const bad: unknown[] = [
      undefined, null, "cpu", 42, {}, [],
      withCounters((c) => c.map(([k, v]) => [k, v.slice(0, 3)])), // too few counters
      withCounters((c) => c.map(([k, v]) => [k, v.map(() => "1")])), // strings
      withCounters((c) => c.map(([k, v]) => [k, [...v.slice(1), Number.NaN]])), // not finite
      withCounters((c) => c.map(([, v]) => [7, v])), // a key that is not a string
      withCounters((c) => [...c, ["x".repeat(300), c[0]![1]]]), // an over-long key
      withCounters(() => Array.from({ length: 5000 }, (_, i) => [`k${i}`, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]])),
    ];
    if (!Array.isArray(saved)) bad.push({ counters: counters(saved) }, { ...(saved as object), at: "yesterday" });
    for (const b of bad) {
      const fresh = make(factory, { t: T0 + 10_000 }, fixtureRoot(name, S, "t1"));
      expect(fresh.loadReading!(b)).toBe(false);
      expect([...emitted(fresh).keys()].some((k) => k.startsWith(rateName))).toBe(false);
    }
    // and the well-formed one is taken
    const fresh = make(factory, { t: T0 + 10_000 }, fixtureRoot(name, S, "t1"));
    expect(fresh.loadReading!(JSON.parse(JSON.stringify(saved)))).toBe(true);
    expect([...emitted(fresh).keys()].some((k) => k.startsWith(rateName))).toBe(true);
  });
});

test("cpu.cores goes out with every reading, not only a Collector's first", () => {
  const clock = { t: T0 };
  const c = make(createCpuCollector, clock, fixtureRoot("cpu", S, "t0"));
  expect(emitted(c).get("cpu.cores")).toBe(2);
  expect(emitted(c).get("cpu.cores")).toBe(2);
});

test("readings.json is used only from this boot, within the age allowed, never from the future", () => {
  const boot = "6f1c2a9e-8d0b-4a43-9a55-2b1d7c0e4f11";
  const readings = { cpu: [["cpu", [1, 2, 3, 4, 5, 6, 7, 8]]] };
  const file = (o: Record<string, unknown>) => JSON.stringify({ bootId: boot, at: T0, readings, ...o });
  expect(usableReadings(file({}), boot, T0 + 20_000, 20_000)).toEqual({ at: T0, readings });
  expect(usableReadings(file({}), boot, T0, 20_000)).toEqual({ at: T0, readings });
  expect(usableReadings(file({}), boot, T0 + 20_001, 20_000)).toBeUndefined(); // too old
  expect(usableReadings(file({}), boot, T0 - 1, 20_000)).toBeUndefined(); // the clock went back
  expect(usableReadings(file({ bootId: "another boot" }), boot, T0 + 1000, 20_000)).toBeUndefined(); // rebooted
  expect(usableReadings(file({}), "", T0 + 1000, 20_000)).toBeUndefined(); // no boot id to compare
  for (const bad of ["", "{", "null", "[]", "42", file({ at: "now" }), file({ at: null }), file({ readings: null }), file({ readings: [1] }), file({ readings: "x" })]) {
    expect(usableReadings(bad, boot, T0 + 1000, 20_000)).toBeUndefined();
  }
});
