/**
 * One suite for every RangeStore (src/store/range.ts): PostgreSQL and ClickHouse must give the
 * same answers on the same data. The data set is built here and sent through the real ingest
 * path by the caller; the expected answers are computed in plain TypeScript from the same data.
 */
import { describe, expect, test } from "bun:test";
import { encodeFrame, packLogs, packMetrics } from "../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import { bucketStep, type LogLine, type LogsQuery, type RangeQuery, type RangeResult, type RangeStore, type SeriesRef } from "../../src/store/range.ts";
import { post, type SimAgent } from "../support/sim-agent.ts";

export const BASE = Date.UTC(2026, 10, 27, 0, 0, 0);
export const NAMES = Array.from({ length: 12 }, (_, i) => `cpu.core_${String(i).padStart(2, "0")}`);
const STAMPS = 6;
const FRAMES = 40;
const LINES = 30;

export interface Sample {
  name: string;
  ts: number;
  v: number;
}

export interface DataSet {
  frames: Uint8Array[];
  samples: Sample[];
  lines: LogLine[];
}

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

export function buildDataSet(a: SimAgent): DataSet {
  const rand = rng(42);
  const frames: Uint8Array[] = [];
  const samples: Sample[] = [];
  const lines: LogLine[] = [];
  for (let f = 0; f < FRAMES; f++) {
    const ts = new Float64Array(STAMPS).map((_, i) => BASE + (f * STAMPS + i) * 7_000 + Math.floor(rand() * 1000));
    const values = new Float64Array(NAMES.length * STAMPS);
    for (let s = 0; s < NAMES.length; s++) {
      for (let t = 0; t < STAMPS; t++) {
        const v = rand() < 0.05 ? NaN : Math.round(rand() * 1e6) / 1e3;
        values[s * STAMPS + t] = v;
        if (v === v) samples.push({ name: NAMES[s]!, ts: ts[t]!, v });
      }
    }
    frames.push(encodeFrame({ kind: FrameKind.Metrics, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: ts[STAMPS - 1]!, items: values.length }, packMetrics({ ts, names: NAMES, values }), a.privateKey));
    if (f % 4 === 0) {
      const sources = ["sshd", "kernel", "cron"];
      const lts = new Float64Array(LINES).map((_, i) => BASE + f * 42_000 + Math.floor(i / 3) * 500);
      const severity = new Uint8Array(LINES).map((_, i) => (i * 7) % 8);
      const sourceIndex = new Uint16Array(LINES).map((_, i) => i % 3);
      const messages = Array.from({ length: LINES }, (_, i) => (i % 5 === 0 ? `Failed password for root from 10.0.0.${i}` : i % 7 === 0 ? "same" : `line ${i} ok Ünïcode`));
      // the last two lines are identical in every field: both must be returned, each once
      severity[LINES - 1] = severity[LINES - 2]!;
      sourceIndex[LINES - 1] = sourceIndex[LINES - 2]!;
      messages[LINES - 1] = messages[LINES - 2]!;
      frames.push(encodeFrame({ kind: FrameKind.Logs, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: lts[LINES - 1]!, items: LINES }, packLogs({ ts: lts, severity, sources, sourceIndex, messages }), a.privateKey));
      for (let i = 0; i < LINES; i++) lines.push({ ts: lts[i]!, severity: severity[i]!, source: sources[sourceIndex[i]!]!, message: messages[i]! });
    }
  }
  return { frames, samples, lines };
}

/** Sends the data set through the real ingest path and checks that every frame was acknowledged as stored. */
export async function ingestDataSet(url: string, d: DataSet): Promise<void> {
  for (let i = 0; i < d.frames.length; i += 8) {
    const r = await post(url, d.frames.slice(i, i + 8));
    expect(r.status).toBe(200);
    expect(r.body.acks!.every((a) => a.status === "ok")).toBe(true);
  }
}

export function expectedRange(d: DataSet, q: RangeQuery): RangeResult {
  const step = bucketStep(q);
  return {
    step,
    series: q.names.filter((n) => NAMES.includes(n)).map((name) => {
      const buckets = new Map<number, number[]>();
      for (const s of d.samples) {
        if (s.name !== name || s.ts < q.from || s.ts >= q.to) continue;
        const b = Math.floor((s.ts - q.from) / step);
        (buckets.get(b) ?? buckets.set(b, []).get(b)!).push(s.v);
      }
      const points = [...buckets.entries()].sort((x, y) => x[0] - y[0]).map(([b, vs]) => ({
        t: q.from + b * step, avg: vs.reduce((x, y) => x + y, 0) / vs.length, min: Math.min(...vs), max: Math.max(...vs), n: vs.length,
      }));
      return { name, points };
    }),
  };
}

const cmp = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function expectedLogs(d: DataSet, q: LogsQuery): LogLine[] {
  const text = (q.text ?? "").toLowerCase();
  return d.lines
    .filter((l) => l.ts >= q.from && l.ts < q.to && (!text || l.message.toLowerCase().includes(text)))
    .sort((a, b) => b.ts - a.ts || a.severity - b.severity || cmp(a.source, b.source) || cmp(a.message, b.message))
    .slice(0, q.limit ?? 200);
}

export function expectRangeEqual(got: RangeResult, want: RangeResult): void {
  expect(got.step).toBe(want.step);
  expect(got.series.map((s) => s.name)).toEqual(want.series.map((s) => s.name));
  got.series.forEach((s, i) => {
    const w = want.series[i]!;
    expect(s.points.map((p) => [p.t, p.n, p.min, p.max])).toEqual(w.points.map((p) => [p.t, p.n, p.min, p.max]));
    s.points.forEach((p, j) => expect(p.avg).toBeCloseTo(w.points[j]!.avg, 6));
  });
}

export interface RangeStoreContext {
  store: RangeStore;
  data: DataSet;
  agentId: number;
  resolve(names: string[]): Promise<SeriesRef[]>;
}

const SPAN = FRAMES * STAMPS * 7_000;

export function rangeStoreCases(name: string, ctx: () => RangeStoreContext): void {
  describe(`RangeStore contract: ${name}`, () => {
    const ranges: Array<[string, Omit<RangeQuery, "agentId">]> = [
      ["whole range, 1000 points", { names: NAMES.slice(0, 3), from: BASE, to: BASE + SPAN + 1000 }],
      ["coarse: 7 points", { names: [NAMES[5]!, NAMES[0]!], from: BASE, to: BASE + SPAN, maxPoints: 7 }],
      ["a window in the middle, cutting frames", { names: NAMES, from: BASE + 100_123, to: BASE + 900_456, maxPoints: 50 }],
      ["unknown names are left out", { names: ["nope", NAMES[11]!], from: BASE, to: BASE + SPAN, maxPoints: 10 }],
      ["empty window", { names: NAMES.slice(0, 2), from: BASE - 10 * SPAN, to: BASE - SPAN }],
    ];
    for (const [title, r] of ranges) {
      test(`range: ${title}`, async () => {
        const c = ctx();
        const q = { ...r, agentId: c.agentId };
        const got = await c.store.range(q, await c.resolve(q.names));
        expectRangeEqual(got, expectedRange(c.data, q));
      });
    }
    const logs: Array<[string, Omit<LogsQuery, "agentId">]> = [
      ["newest 50", { from: BASE, to: BASE + SPAN, limit: 50 }],
      ["text, case-insensitive", { from: BASE, to: BASE + SPAN, text: "FAILED PASSWORD" }],
      ["text with a non-ASCII letter", { from: BASE, to: BASE + SPAN, text: "ünïcode", limit: 1000 }],
      ["identical lines each once", { from: BASE, to: BASE + SPAN, text: "same", limit: 1000 }],
      ["a time window", { from: BASE + 200_000, to: BASE + 400_000, limit: 1000 }],
    ];
    for (const [title, l] of logs) {
      test(`logs: ${title}`, async () => {
        const c = ctx();
        const q = { ...l, agentId: c.agentId };
        const got = await c.store.logs(q);
        const want = expectedLogs(c.data, q);
        expect(want.length).toBeGreaterThan(0);
        expect(got).toEqual(want);
      });
    }
  });
}
