/** The realistic bench workload: the recorder's output and the replay's promises (bench/workload-realistic.ts). */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { classify, DEFAULT_RECORDING, loadRecording, realisticWorkload } from "../../bench/workload-realistic.ts";
import type { Recording } from "../../bench/record-telemetry.ts";

const rec: Recording = {
  format: "servermind-telemetry-recording/1",
  interval_ms: 10_000,
  ticks: 6,
  recorded_at: "2026-12-06T00:00:00Z",
  cores: 2,
  series: [
    { name: "mem.total_bytes", values: [8e9, 8e9, 8e9, 8e9, 8e9, 8e9] },
    { name: "system.uptime_s", values: [100, 110, 120, 130, 140, 150] },
    { name: "cpu.usage_pct", values: [3.5, 99.9, 12.25, 0, 50, 7] },
    { name: "proc.total", values: [120, 121, 119, 125, 118, 120] },
    { name: "net.rx_errors_per_s{iface=\"eth0\"}", values: [0, 0, 0, 0, 0, 0] },
  ],
};

describe("realistic workload", () => {
  test("classifies constants, counters and gauges", () => {
    expect(rec.series.map((s) => classify(s.values))).toEqual(["constant", "counter", "gauge", "gauge", "constant"]);
  });

  test("counters only grow, across many cycles of the recording; constants stay constant; every host has its own offset", () => {
    const w = realisticWorkload(12, rec);
    expect(w.names.slice(0, 5)).toEqual(rec.series.map((s) => s.name));
    expect(w.names[5]).toBe('mem.total_bytes{replica="1"}');
    expect(w.names[9]).toBe('net.rx_errors_per_s{iface="eth0",replica="1"}');
    expect(w.mix()).toEqual({ constant: 5, counter: 3, gauge: 4 });
    for (let host = 1; host <= 50; host++) {
      let prev = -Infinity;
      const constant = w.value(host, 0, 0);
      for (let tick = 1_790_000_000; tick < 1_790_000_000 + 40; tick++) {
        const up = w.value(host, 1, tick);
        expect(up).toBeGreaterThan(prev);
        prev = up;
        expect(w.value(host, 0, tick)).toBe(constant);
        expect(w.value(host, 4, tick)).toBe(0);
      }
      expect([8e9, 16e9, 32e9]).toContain(constant);
    }
    const starts = new Set(Array.from({ length: 50 }, (_, h) => w.value(h, 2, 0)));
    expect(starts.size).toBeGreaterThan(5);
  });

  test("gauges keep their shape: near the recorded value, integers stay integers, % stays within 0..100, zero stays zero", () => {
    const w = realisticWorkload(5, rec);
    let noisy = 0;
    for (let host = 0; host < 100; host++) {
      for (let tick = 0; tick < 12; tick++) {
        const pct = w.value(host, 2, tick);
        expect(pct).toBeGreaterThanOrEqual(0);
        expect(pct).toBeLessThanOrEqual(100);
        const procs = w.value(host, 3, tick);
        expect(Number.isInteger(procs)).toBe(true);
        expect(procs).toBeGreaterThan(118 * 0.8 * 0.99 - 1);
        expect(procs).toBeLessThan(125 * 1.2 * 1.01 + 1);
        if (w.value(host, 2, tick) !== w.value(host, 2, tick + rec.ticks)) noisy++;
      }
    }
    // the same recorded tick one cycle later carries different noise
    expect(noisy).toBeGreaterThan(500);
    // pure: the same call gives the same value
    expect(w.value(7, 2, 123)).toBe(w.value(7, 2, 123));
  });

  test("readings keep the decimals they were recorded with, through noise, scale and counter cycles", () => {
    const two: Recording = {
      ...rec,
      series: [
        { name: "load.1", values: [0.52, 0.61, 0.4, 1.73, 0.9, 0.55] },
        { name: "system.uptime_s", values: [23450.5, 23460.51, 23470.52, 23480.53, 23490.54, 23500.55] },
        { name: "cpu.usage_pct", values: [25.125125125125127, 20.47952047952048, 38.2, 1, 2, 3] },
      ],
    };
    const w = realisticWorkload(3, two);
    const decimals = (x: number) => (String(x).split(".")[1] ?? "").length;
    let changed = 0;
    for (let host = 0; host < 50; host++) {
      let prev = -Infinity;
      for (let tick = 1_790_000_000; tick < 1_790_000_000 + 30; tick++) {
        const load = w.value(host, 0, tick);
        expect(decimals(load)).toBeLessThanOrEqual(2);
        if (load !== two.series[0]!.values[tick % 6]) changed++;
        const up = w.value(host, 1, tick);
        expect(decimals(up)).toBeLessThanOrEqual(2);
        expect(up).toBeGreaterThan(prev);
        prev = up;
        // derived by division: the agent's two decimals, whatever the recording held
        expect(decimals(w.value(host, 2, tick))).toBeLessThanOrEqual(2);
      }
    }
    // still noisy and scaled per host, only not finer than the source
    expect(changed).toBeGreaterThan(1000);
  });

  test("frameValues lays the values out series-major, as a metrics frame carries them", () => {
    const w = realisticWorkload(5, rec);
    const ts = [1_790_000_000_000, 1_790_000_010_000, 1_790_000_020_000];
    const v = w.frameValues(3, ts);
    expect(v.length).toBe(15);
    expect(v[1 * 3 + 2]).toBe(w.value(3, 1, 179_000_002));
  });

  test("the committed recording is small and holds the agent's collectors' series", () => {
    expect(statSync(DEFAULT_RECORDING).size).toBeLessThan(1 << 20);
    const r = loadRecording();
    expect(r.ticks).toBeGreaterThanOrEqual(30);
    const names = r.series.map((s) => s.name);
    for (const n of ["cpu.usage_pct", "mem.used_bytes", "load.1", "system.uptime_s"]) expect(names).toContain(n);
    const w = realisticWorkload(100, r);
    const mix = w.mix();
    expect(mix.counter).toBeGreaterThan(0);
    expect(mix.constant).toBeGreaterThan(10);
    expect(mix.gauge).toBeGreaterThan(10);
  });

  test("the recorder runs the agent's collectors and writes a recording the workload loads", () => {
    const dir = mkdtempSync(join(tmpdir(), "servermind-record-test-"));
    try {
      const out = join(dir, "rec.json.gz");
      const p = Bun.spawnSync([process.execPath, "bench/record-telemetry.ts", "--interval-s", "0.2", "--minutes", "0.01", "--out", out], { stderr: "pipe" });
      expect(p.exitCode).toBe(0);
      const r = loadRecording(out);
      expect(r.ticks).toBe(3);
      expect(r.interval_ms).toBe(200);
      expect(r.series.find((s) => s.name === "system.uptime_s")?.values.length).toBe(3);
      expect(realisticWorkload(10, r).names.length).toBe(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
