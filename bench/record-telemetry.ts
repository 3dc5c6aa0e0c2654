/**
 * Records this machine's telemetry as the agent collects it, for the realistic bench workload
 * (bench/workload-realistic.ts):
 *
 *   bun bench/record-telemetry.ts [--minutes 10] [--interval-s 10] [--out bench/fixtures/telemetry.json.gz] [--root /]
 *
 * Runs the agent's own metric collectors (agent/collect/registry.ts, every one of them) once per
 * interval for `minutes`, like the agent's Collector process, and writes every series that was
 * present in every tick (after a first warm-up tick, in which the rate collectors emit nothing)
 * as gzip-compressed JSON: `{ format, interval_ms, ticks, recorded_at, cores, series: [{ name, values }] }`.
 * Series names are the agent's (labels inside the name, e.g. `net.rx_bytes_per_s{iface="eth0"}`);
 * no hostname or address is recorded. An hour (`--minutes 60`) gives a longer cycle to replay.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";
import { createHostFs } from "../agent/collect/collector.ts";
import { createMetricCollectors } from "../agent/collect/registry.ts";
import { arg } from "./support.ts";

export const RECORDING_FORMAT = "servermind-telemetry-recording/1";

export interface Recording {
  format: string;
  interval_ms: number;
  ticks: number;
  recorded_at: string;
  cores: number;
  series: Array<{ name: string; values: number[] }>;
}

async function main() {
  const minutes = Number(arg("minutes", "10"));
  const intervalMs = Number(arg("interval-s", "10")) * 1000;
  const out = arg("out", "bench/fixtures/telemetry.json.gz");
  const collectors = createMetricCollectors({ fs: createHostFs(arg("root", "/")), now: () => Date.now() });
  const ticks = Math.max(2, Math.round((minutes * 60_000) / intervalMs));
  const rows: Array<Map<string, number>> = [];
  const collect = () => {
    const row = new Map<string, number>();
    for (const c of collectors) {
      try {
        c.collect((name, value) => row.set(name, value));
      } catch (e) {
        console.error(`[record] ${c.name}: ${(e as Error).message}`);
      }
    }
    return row;
  };
  collect(); // warm-up: the rate collectors need a previous reading
  let next = Date.now() + intervalMs;
  for (let i = 0; i < ticks; i++) {
    await Bun.sleep(Math.max(0, next - Date.now()));
    next += intervalMs;
    rows.push(collect());
    if (i % 6 === 5 || i === ticks - 1) console.error(`[record] ${i + 1}/${ticks} ticks, ${rows.at(-1)!.size} series`);
  }
  const names = [...rows[0]!.keys()].filter((n) => rows.every((r) => r.has(n))).sort();
  const rec: Recording = {
    format: RECORDING_FORMAT,
    interval_ms: intervalMs,
    ticks: rows.length,
    recorded_at: new Date().toISOString(),
    cores: cpus().length,
    series: names.map((name) => ({ name, values: rows.map((r) => r.get(name)!) })),
  };
  mkdirSync(dirname(out), { recursive: true });
  const gz = Bun.gzipSync(new TextEncoder().encode(JSON.stringify(rec)), { level: 9 });
  writeFileSync(out, gz);
  console.error(`[record] wrote ${out}: ${names.length} series x ${rows.length} ticks, ${gz.length} bytes`);
}

if (import.meta.main) await main();
