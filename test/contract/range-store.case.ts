/**
 * One suite for every RangeStore (src/store/range.ts): PostgreSQL and ClickHouse must give the
 * same answers on the same data. The data set is built here and sent through the real ingest
 * path by the caller; the expected answers are computed in plain TypeScript from the same data.
 * Timestamps have millisecond jitter, so buckets cut frames at odd places.
 */
import { describe, expect, test } from "bun:test";
import { encodeFrame, packLogs, packMetrics } from "../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import { logLimit, rangeBucketMs, type LogLine, type LogSearch, type RangeStore, type SeriesPoints } from "../../src/store/range.ts";
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
      for (let i = 0; i < LINES; i++) lines.push({ ts: new Date(lts[i]!), severity: severity[i]!, source: sources[sourceIndex[i]!]!, message: messages[i]! });
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

export interface RangeQ {
  names: string[];
  from: number;
  to: number;
  maxPoints?: number;
}

export function expectedRange(d: DataSet, q: RangeQ): SeriesPoints[] {
  const bucket = rangeBucketMs(new Date(q.from), new Date(q.to), q.maxPoints);
  return q.names.map((name) => {
    const buckets = new Map<number, number[]>();
    for (const s of d.samples) {
      if (s.name !== name || s.ts < q.from || s.ts >= q.to) continue;
      const b = Math.floor((s.ts - q.from) / bucket);
      (buckets.get(b) ?? buckets.set(b, []).get(b)!).push(s.v);
    }
    const entries = [...buckets.entries()].sort((x, y) => x[0] - y[0]);
    return {
      name,
      t: entries.map(([b]) => q.from + b * bucket),
      avg: entries.map(([, vs]) => vs.reduce((x, y) => x + y, 0) / vs.length),
      min: entries.map(([, vs]) => Math.min(...vs)),
      max: entries.map(([, vs]) => Math.max(...vs)),
    };
  });
}

const cmp = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function expectedLogs(d: DataSet, q: Omit<LogSearch, "agentId">): LogLine[] {
  const text = (q.text ?? "").trim().toLowerCase();
  return d.lines
    .filter((l) => l.ts >= q.from && l.ts < q.to && (!text || l.message.toLowerCase().includes(text)))
    .sort((a, b) => b.ts.getTime() - a.ts.getTime() || a.severity - b.severity || cmp(a.source, b.source) || cmp(a.message, b.message))
    .slice(0, logLimit(q.limit));
}

/** Same buckets, same min/max, averages equal up to summation order. */
export function expectRangeEqual(got: SeriesPoints[], want: SeriesPoints[]): void {
  expect(got.map((s) => s.name)).toEqual(want.map((s) => s.name));
  got.forEach((s, i) => {
    const w = want[i]!;
    expect({ name: s.name, t: s.t, min: s.min, max: s.max }).toEqual({ name: w.name, t: w.t, min: w.min, max: w.max });
    s.avg.forEach((v, j) => expect(v).toBeCloseTo(w.avg[j]!, 6));
  });
}

export interface RangeStoreContext {
  store: RangeStore;
  data: DataSet;
  agentId: number;
}

const SPAN = FRAMES * STAMPS * 7_000;

export function rangeStoreCases(name: string, ctx: () => RangeStoreContext): void {
  describe(`RangeStore contract: ${name}`, () => {
    const ranges: Array<[string, RangeQ]> = [
      ["whole range, 1000 points", { names: NAMES.slice(0, 3), from: BASE, to: BASE + SPAN + 1000 }],
      ["coarse: 7 points", { names: [NAMES[5]!, NAMES[0]!], from: BASE, to: BASE + SPAN, maxPoints: 7 }],
      ["a window in the middle, cutting frames, odd start", { names: NAMES, from: BASE + 100_123, to: BASE + 900_456, maxPoints: 50 }],
      ["unknown names come back empty, in the order asked", { names: ["nope", NAMES[11]!], from: BASE, to: BASE + SPAN, maxPoints: 10 }],
      ["empty window", { names: NAMES.slice(0, 2), from: BASE - 10 * SPAN, to: BASE - SPAN }],
    ];
    for (const [title, q] of ranges) {
      test(`seriesRange: ${title}`, async () => {
        const c = ctx();
        const got = await c.store.seriesRange(c.agentId, q.names, new Date(q.from), new Date(q.to), q.maxPoints);
        expectRangeEqual(got, expectedRange(c.data, q));
      });
    }
    const logs: Array<[string, Omit<LogSearch, "agentId">]> = [
      ["newest 50, ties in byte order", { from: new Date(BASE), to: new Date(BASE + SPAN), limit: 50 }],
      ["text, case-insensitive", { from: new Date(BASE), to: new Date(BASE + SPAN), text: "FAILED PASSWORD" }],
      ["text with a non-ASCII letter", { from: new Date(BASE), to: new Date(BASE + SPAN), text: " ünïcode", limit: 1000 }],
      ["identical lines each once", { from: new Date(BASE), to: new Date(BASE + SPAN), text: "same", limit: 1000 }],
      ["a time window", { from: new Date(BASE + 200_000), to: new Date(BASE + 400_000), limit: 1000 }],
    ];
    for (const [title, q] of logs) {
      test(`searchLogs: ${title}`, async () => {
        const c = ctx();
        const got = await c.store.searchLogs({ ...q, agentId: c.agentId });
        const want = expectedLogs(c.data, q);
        expect(want.length).toBeGreaterThan(0);
        expect(got).toEqual(want);
      });
    }
  });
}
