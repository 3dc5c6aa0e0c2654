/**
 * The realistic metrics workload of bench:ingest and bench:store (`--workload realistic`):
 * a recording of this machine's collectors (bench/record-telemetry.ts, committed as
 * bench/fixtures/telemetry.json.gz) replayed cyclically across N hosts x M metrics.
 *
 * Every recorded series is classified once:
 *   - constant: the same value in every tick (mem.total_bytes, fd.max, most error rates = 0);
 *   - counter:  never decreases and grows (system.uptime_s);
 *   - gauge:    everything else (cpu %, load, memory, rates of network and disk I/O).
 * Metric j of a host replays recorded series j mod R (R = recorded series; beyond R the name
 * gets a `replica` label). Host h reads the recording at its own offset (a per-host hash), so
 * hosts are not in phase; the recording is cycled. Per host and series:
 *   - constants are scaled by a per-host factor of 1, 2 or 4 (not % series), and stay constant;
 *   - counters get a per-host starting value and continue across cycles (monotonic for ever);
 *   - gauges are scaled by a per-host factor in [0.8, 1.2] and get up to +-1 % noise per sample
 *     (integer gauges stay integers, % gauges stay within 0..100, zeros stay zero).
 * Every value keeps the precision the agent would send it with: what it derives by division at
 * agent/collect/precision.ts' two decimals, a reading at the decimals it was recorded with (the
 * kernel gives load averages and uptime with two), so noise and per-host offsets do not turn
 * `1.73` into `1.7312846...`, which no agent sends.
 * Everything is a pure function of (host, metric, tick): the same call gives the same value.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RECORDING_FORMAT, type Recording } from "./record-telemetry.ts";
import { isDerived, roundDerived, roundTo } from "../agent/collect/precision.ts";

export const DEFAULT_RECORDING = join(import.meta.dir, "fixtures", "telemetry.json.gz");

export type SeriesKind = "constant" | "counter" | "gauge";

export function loadRecording(path = DEFAULT_RECORDING): Recording {
  const rec = JSON.parse(new TextDecoder().decode(Bun.gunzipSync(readFileSync(path)))) as Recording;
  if (rec.format !== RECORDING_FORMAT) throw new Error(`${path}: not a telemetry recording (format ${rec.format})`);
  if (rec.ticks < 2 || rec.series.length === 0) throw new Error(`${path}: empty recording`);
  return rec;
}

export function classify(values: number[]): SeriesKind {
  if (values.every((v) => v === values[0])) return "constant";
  for (let i = 1; i < values.length; i++) if (values[i]! < values[i - 1]!) return "gauge";
  return "counter";
}

/** A hash of up to three integers to [0, 1). */
export function unit(a: number, b: number, c = 0): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35) ^ Math.imul(c + 0x165667b1, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

interface Source {
  values: Float64Array;
  kind: SeriesKind;
  /** the fewest decimals (up to 6) that write every recorded value exactly, if any (0: integers) */
  decimals: number | undefined;
  pct: boolean;
  /** a value the agent derives by division, sent at agent/collect/precision.ts' precision */
  derived: boolean;
  /** counter: growth over one cycle of the recording, including the step from its end to its start */
  span: number;
}

export interface RealisticWorkload {
  names: string[];
  kinds: SeriesKind[];
  /** recorded ticks in one cycle */
  cycle: number;
  intervalMs: number;
  /** The value of `metric` on `host` at absolute tick `tick` (= timestamp / interval). */
  value(host: number, metric: number, tick: number): number;
  /**
   * Values series-major (metric-major), as a metrics frame carries them, for `stamps` timestamps
   * (ms since the epoch, multiples of the interval), `metrics` metrics.
   */
  frameValues(host: number, ts: ArrayLike<number>, metrics?: number): Float64Array;
  /** Counts of each kind over the M metrics. */
  mix(): Record<SeriesKind, number>;
}

function withLabel(name: string, label: string): string {
  return name.endsWith("}") ? `${name.slice(0, -1)},${label}}` : `${name}{${label}}`;
}

function recordedDecimals(values: number[]): number | undefined {
  for (let d = 0; d <= 6; d++) {
    const f = 10 ** d;
    if (values.every((v) => Math.round(v * f) / f === v)) return d;
  }
  return undefined;
}

/** `x` at the decimals its series was recorded with, or as it is when it had none to speak of. */
function atDecimals(x: number, decimals: number | undefined): number {
  return decimals === undefined ? x : roundTo(x, decimals);
}

export function realisticWorkload(metrics: number, rec: Recording = loadRecording()): RealisticWorkload {
  const sources: Source[] = rec.series.map((s) => {
    const values = Float64Array.from(s.values);
    const kind = classify(s.values);
    const steps = values.length - 1;
    const avgStep = kind === "counter" ? (values[steps]! - values[0]!) / steps : 0;
    return {
      values,
      kind,
      decimals: recordedDecimals(s.values),
      pct: /_pct(\{|$)/.test(s.name),
      derived: isDerived(s.name),
      span: kind === "counter" ? values[steps]! - values[0]! + avgStep : 0,
    };
  });
  const R = sources.length;
  const T = rec.ticks;
  const names = Array.from({ length: metrics }, (_, j) => (j < R ? rec.series[j]!.name : withLabel(rec.series[j % R]!.name, `replica="${Math.floor(j / R)}"`)));
  const kinds = names.map((_, j) => sources[j % R]!.kind);

  const value = (host: number, metric: number, tick: number): number => {
    const s = sources[metric % R]!;
    const pos = tick + Math.floor(unit(host, 1) * T * 1000);
    const i = ((pos % T) + T) % T;
    const v = s.values[i]!;
    switch (s.kind) {
      case "constant": {
        if (s.pct || v === 0) return v;
        return v * [1, 2, 4][Math.floor(unit(host, metric, 2) * 3)]!;
      }
      case "counter": {
        const cycle = Math.floor(pos / T);
        const start = Math.floor(unit(host, metric, 3) * 1e6);
        return atDecimals(start + v + cycle * s.span, s.decimals);
      }
      default: {
        if (v === 0) return 0;
        const scale = 0.8 + 0.4 * unit(host, metric, 4);
        let x = v * scale * (1 + 0.02 * (unit(host, metric, tick) - 0.5));
        if (s.decimals === 0) x = Math.round(x); // integer gauges stay integers
        if (s.pct) x = Math.min(100, Math.max(0, x));
        return s.derived ? roundDerived(x) : atDecimals(x, s.decimals);
      }
    }
  };

  return {
    names,
    kinds,
    cycle: T,
    intervalMs: rec.interval_ms,
    value,
    frameValues(host, ts, m = metrics) {
      const out = new Float64Array(m * ts.length);
      for (let j = 0; j < m; j++) {
        for (let k = 0; k < ts.length; k++) out[j * ts.length + k] = value(host, j, Math.round(ts[k]! / rec.interval_ms));
      }
      return out;
    },
    mix() {
      const c: Record<SeriesKind, number> = { constant: 0, counter: 0, gauge: 0 };
      for (const k of kinds) c[k]++;
      return c;
    },
  };
}
