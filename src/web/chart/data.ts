/**
 * The data behind the console's interactive charts (views: partials/host-charts.html and
 * pages/charts.html, drawn by assets/charts.js with uPlot): columnar JSON sized to the chart's
 * pixel width. One host's charts (several series per chart) or several hosts compared (one chart
 * per metric, one line per host). Framework-free: the routes (./routes.ts) parse the request
 * with parseChartQuery and hand the result here; reads go through the RangeStore (seriesRange,
 * PostgreSQL's raw / 1-minute / 10-minute / 1-hour tiers or ClickHouse through the query router).
 */
import type { RangeStore, SeriesPoints } from "../../store/range.ts";
import { rangeBucketMs } from "../../store/range.ts";
import { medianStep } from "./svg.ts";

/** How the client formats a value: percent, bytes (binary prefixes), bytes per second, a plain count. */
export type ChartUnit = "pct" | "bytes" | "bytes/s" | "count";

/** The ranges the tabs offer, ending now (live). */
export const CHART_RANGES: Record<string, number> = {
  "15m": 15 * 60_000, "1h": 3_600_000, "6h": 6 * 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000, "90d": 90 * 86_400_000,
};
export const DEFAULT_RANGE = "1h";
export const MIN_WIDTH = 100;
export const MAX_WIDTH = 4000;
/** The shortest zoom: ten seconds (the agent samples every few seconds). */
export const MIN_SPAN_MS = 10_000;
/** The longest range: the retention of the rollup tiers. */
export const MAX_SPAN_MS = 92 * 86_400_000;
export const MAX_COMPARE_HOSTS = 12;

interface HostChartSpec {
  id: string;
  title: string;
  unit: ChartUnit;
  max?: number;
  pick(names: string[]): string[];
}

const exact = (...want: string[]) => (names: string[]) => want.filter((w) => names.includes(w));
const prefix = (p: string, n = 4) => (names: string[]) => names.filter((x) => x === p || x.startsWith(p + "{")).slice(0, n);

/** A host's charts: each draws the series of that host it picks (those it reports). */
export const HOST_CHARTS: HostChartSpec[] = [
  { id: "cpu", title: "CPU", unit: "pct", max: 100, pick: exact("cpu.usage_pct", "cpu.iowait_pct", "cpu.steal_pct") },
  { id: "mem", title: "Memory", unit: "pct", max: 100, pick: exact("mem.used_pct", "swap.used_pct") },
  { id: "disk", title: "Disk used", unit: "pct", max: 100, pick: prefix("disk.used_pct") },
  { id: "load", title: "Load", unit: "count", pick: exact("load.1", "load.5", "load.15") },
  { id: "net-rx", title: "Network receive", unit: "bytes/s", pick: prefix("net.rx_bytes_per_s", 3) },
  { id: "net-tx", title: "Network transmit", unit: "bytes/s", pick: prefix("net.tx_bytes_per_s", 3) },
  { id: "diskio", title: "Disk I/O", unit: "bytes/s", pick: (n) => [...prefix("diskio.read_bytes_per_s", 2)(n), ...prefix("diskio.write_bytes_per_s", 2)(n)] },
];

interface CompareSpec {
  id: string;
  title: string;
  unit: ChartUnit;
  max?: number;
  /** the series of one host this chart sums into its one line (one name, or every interface / device) */
  pick(names: string[]): string[];
}

/** The compare page's charts: one line per host, the sum of the picked series (interfaces, devices). */
export const COMPARE_CHARTS: CompareSpec[] = [
  { id: "cpu", title: "CPU used", unit: "pct", max: 100, pick: exact("cpu.usage_pct") },
  { id: "mem", title: "Memory used", unit: "pct", max: 100, pick: exact("mem.used_pct") },
  { id: "load", title: "Load (1 min)", unit: "count", pick: exact("load.1") },
  { id: "net-rx", title: "Network receive (all interfaces)", unit: "bytes/s", pick: (n) => prefix("net.rx_bytes_per_s", 64)(n).filter((x) => !/iface="lo"/.test(x)) },
  { id: "net-tx", title: "Network transmit (all interfaces)", unit: "bytes/s", pick: (n) => prefix("net.tx_bytes_per_s", 64)(n).filter((x) => !/iface="lo"/.test(x)) },
  { id: "disk-read", title: "Disk read (all devices)", unit: "bytes/s", pick: prefix("diskio.read_bytes_per_s", 64) },
  { id: "disk-write", title: "Disk write (all devices)", unit: "bytes/s", pick: prefix("diskio.write_bytes_per_s", 64) },
];

function shortName(name: string): string {
  const m = /\{[^=]+="?([^"}]*)"?\}$/.exec(name);
  const base = name.replace(/\{.*$/, "").split(".").slice(1).join(".").replace(/_pct|_bytes_per_s/, "");
  const short = m ? `${base} ${m[1]}` : base;
  return !short || /^\d+$/.test(short) ? name.replace(/\{.*$/, "") : short;
}

/** Legend names of one chart: short, unless two series would read alike ("used" of mem and swap). */
export function legendNames(names: string[]): string[] {
  const short = names.map(shortName);
  return short.map((n, i) => (short.indexOf(n) !== short.lastIndexOf(n) ? names[i]!.replace(/\{.*$/, "").replace(/_pct$|_bytes_per_s$/, "") : n));
}

export interface ChartWindow {
  from: number;
  to: number;
  /** the named range ("1h") when the window ends now and follows it (live); null for a fixed (zoomed) window */
  range: string | null;
  width: number;
}

export class ChartQueryError extends Error {}

function intOf(v: string | null): number | null {
  if (v === null || !/^\d{1,16}$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * The window a chart request asks for: `range` (a CHART_RANGES key, ending now) or `from` and
 * `to` (ms since the epoch), and `width` (the chart's width in px, MIN_WIDTH-MAX_WIDTH). Throws
 * ChartQueryError with a message for the user on anything else.
 */
export function parseChartWindow(q: URLSearchParams, now = Date.now()): ChartWindow {
  const widthRaw = q.get("width");
  const width = widthRaw === null ? 800 : intOf(widthRaw);
  if (width === null || width < MIN_WIDTH || width > MAX_WIDTH) throw new ChartQueryError(`width must be the chart's width in pixels, a whole number from ${MIN_WIDTH} to ${MAX_WIDTH}`);
  const fromRaw = q.get("from");
  const toRaw = q.get("to");
  if (fromRaw !== null || toRaw !== null) {
    if (q.get("range")) throw new ChartQueryError("give either range or from and to, not both");
    const from = intOf(fromRaw);
    const to = intOf(toRaw);
    if (from === null || to === null) throw new ChartQueryError("from and to must both be milliseconds since the epoch");
    if (to - from < MIN_SPAN_MS) throw new ChartQueryError(`from must be at least ${MIN_SPAN_MS / 1000} s before to`);
    if (to - from > MAX_SPAN_MS) throw new ChartQueryError(`from and to may be at most ${MAX_SPAN_MS / 86_400_000} days apart`);
    if (to > now + 86_400_000) throw new ChartQueryError("to lies more than a day in the future");
    return { from, to, range: null, width };
  }
  const range = q.get("range") || DEFAULT_RANGE;
  const span = CHART_RANGES[range];
  if (!span) throw new ChartQueryError(`range must be one of ${Object.keys(CHART_RANGES).join(", ")}`);
  return { from: now - span, to: now, range, width };
}

/** Host ids of a compare request (`host=1&host=2` or `hosts=1,2`): 1 to MAX_COMPARE_HOSTS distinct positive integers. */
export function parseHostIds(q: URLSearchParams): number[] {
  const raw = [...q.getAll("host"), ...q.getAll("hosts").flatMap((v) => v.split(","))].map((v) => v.trim()).filter(Boolean);
  const ids = [...new Set(raw.map((v) => intOf(v)))];
  if (ids.some((id) => id === null || id <= 0)) throw new ChartQueryError("host must be host ids (positive whole numbers)");
  if (ids.length === 0) throw new ChartQueryError("pick at least one host (host=ID)");
  if (ids.length > MAX_COMPARE_HOSTS) throw new ChartQueryError(`at most ${MAX_COMPARE_HOSTS} hosts on one chart; ${ids.length} were asked for`);
  return ids as number[];
}

export interface ChartSeries {
  name: string;
  label: string;
  host: number;
  unit: ChartUnit;
  /** a stretch without points longer than this is a gap (the line breaks); shorter holes are joined */
  gapMs: number;
  /** one value per `t` of the chart; null where this series has no point */
  values: Array<number | null>;
}

export interface ChartData {
  id: string;
  title: string;
  unit: ChartUnit;
  max?: number;
  /** bucket start times, ms since the epoch, ascending: at most about `width` of them */
  t: number[];
  series: ChartSeries[];
}

export interface ChartHost {
  id: number;
  hostname: string;
  state: "online" | "offline" | "revoked";
}

export interface ChartsResponse {
  from: number;
  to: number;
  range: string | null;
  width: number;
  bucketMs: number;
  hosts: ChartHost[];
  charts: ChartData[];
}

/**
 * The break rule: 2.5 times the larger of a bucket and the series' own sampling interval (the
 * median distance between its points). A 10 s agent in 2 s buckets (15 minutes at 800 px) is one
 * line; four minutes without data break it.
 */
export function gapFor(t: number[], bucketMs: number): number {
  return Math.round(Math.max(bucketMs, medianStep(t.map((x) => [x, 0]))) * 2.5);
}

/** Several series (own time axes) on one shared, sorted time axis; null where a series has no point. */
export function alignColumns(cols: Array<{ t: number[]; v: number[] }>): { t: number[]; values: Array<Array<number | null>> } {
  const all = new Set<number>();
  for (const c of cols) for (const x of c.t) all.add(x);
  const t = [...all].sort((a, b) => a - b);
  const at = new Map(t.map((x, i) => [x, i]));
  const values = cols.map((c) => {
    const out: Array<number | null> = new Array(t.length).fill(null);
    c.t.forEach((x, i) => (out[at.get(x)!] = round(c.v[i]!)));
    return out;
  });
  return { t, values };
}

/**
 * Marks the gaps of a chart: where consecutive times lie further apart than the series' gaps
 * allow, a time with no value is put between them, so the line breaks there (a stretch without
 * data is drawn as a gap, never as a line across it). The client joins shorter holes (charts.js).
 */
export function breakGaps(t: number[], values: Array<Array<number | null>>, gapMs: number): { t: number[]; values: Array<Array<number | null>> } {
  const outT: number[] = [];
  const outV: Array<Array<number | null>> = values.map(() => []);
  for (let i = 0; i < t.length; i++) {
    if (i > 0 && t[i]! - t[i - 1]! > gapMs) {
      outT.push(Math.round((t[i]! + t[i - 1]!) / 2));
      for (const v of outV) v.push(null);
    }
    outT.push(t[i]!);
    values.forEach((v, k) => outV[k]!.push(v[i]!));
  }
  return { t: outT, values: outV };
}

/** The sum, per bucket, of several series of one host (interfaces, devices); a bucket any of them has. */
export function sumSeries(parts: SeriesPoints[]): { t: number[]; v: number[] } {
  const by = new Map<number, number>();
  for (const p of parts) p.t.forEach((x, i) => by.set(x, (by.get(x) ?? 0) + p.avg[i]!));
  const t = [...by.keys()].sort((a, b) => a - b);
  return { t, v: t.map((x) => by.get(x)!) };
}

/** Where a chart's shared axis breaks: the smallest gap of its series that have an interval (two points or more). */
function chartGap(gaps: number[], points: number[]): number {
  const real = gaps.filter((_, i) => points[i]! > 1);
  return real.length ? Math.min(...real) : Infinity;
}

const spread = (a: { t: number[]; values: Array<Array<number | null>> }) => [a.t, a.values] as const;

/** Six significant digits are more than a chart shows and keep the JSON short. */
function round(v: number): number {
  return Number.isFinite(v) ? Number(v.toPrecision(6)) : v;
}

export interface HostForChart {
  id: number;
  hostname: string;
  state: ChartHost["state"];
  /** the host's metric names (seriesNames) */
  names: string[];
}

/** One host's charts over the window. */
export async function hostCharts(store: RangeStore, host: HostForChart, w: ChartWindow): Promise<ChartsResponse> {
  const specs = HOST_CHARTS.map((c) => ({ c, names: c.pick(host.names) })).filter((x) => x.names.length > 0);
  const wanted = [...new Set(specs.flatMap((x) => x.names))];
  const data = wanted.length ? await store.seriesRange(host.id, wanted, new Date(w.from), new Date(w.to), w.width) : [];
  const bucketMs = rangeBucketMs(new Date(w.from), new Date(w.to), w.width);
  const byName = new Map(data.map((d) => [d.name, d]));
  const charts = specs.map(({ c, names }): ChartData => {
    const pts = names.map((n) => byName.get(n) ?? { name: n, t: [], avg: [], min: [], max: [] });
    const gaps = pts.map((p) => gapFor(p.t, bucketMs));
    const { t, values } = breakGaps(...spread(alignColumns(pts.map((p) => ({ t: p.t, v: p.avg })))), chartGap(gaps, pts.map((p) => p.t.length)));
    const labels = legendNames(names);
    return {
      id: c.id, title: c.title, unit: c.unit, max: c.max, t,
      series: pts.map((p, i) => ({ name: p.name, label: labels[i]!, host: host.id, unit: c.unit, gapMs: gaps[i]!, values: values[i]! })),
    };
  });
  return { from: w.from, to: w.to, range: w.range, width: w.width, bucketMs, hosts: [{ id: host.id, hostname: host.hostname, state: host.state }], charts };
}

/** Several hosts compared: one chart per COMPARE_CHARTS metric, one line per host that reports it. */
export async function compareCharts(store: RangeStore, hosts: HostForChart[], w: ChartWindow): Promise<ChartsResponse> {
  const bucketMs = rangeBucketMs(new Date(w.from), new Date(w.to), w.width);
  const perHost = await Promise.all(hosts.map(async (h) => {
    const picks = COMPARE_CHARTS.map((c) => c.pick(h.names));
    const wanted = [...new Set(picks.flat())];
    const data = wanted.length ? await store.seriesRange(h.id, wanted, new Date(w.from), new Date(w.to), w.width) : [];
    const byName = new Map(data.map((d) => [d.name, d]));
    return picks.map((names) => (names.length ? sumSeries(names.map((n) => byName.get(n)!).filter(Boolean)) : null));
  }));
  const charts: ChartData[] = [];
  COMPARE_CHARTS.forEach((c, ci) => {
    const lines = hosts.map((h, hi) => ({ h, col: perHost[hi]![ci] })).filter((x) => x.col !== null) as Array<{ h: HostForChart; col: { t: number[]; v: number[] } }>;
    if (!lines.length) return;
    const gaps = lines.map((x) => gapFor(x.col.t, bucketMs));
    const { t, values } = breakGaps(...spread(alignColumns(lines.map((x) => x.col))), chartGap(gaps, lines.map((x) => x.col.t.length)));
    charts.push({
      id: c.id, title: c.title, unit: c.unit, max: c.max, t,
      series: lines.map((x, i) => ({ name: x.h.hostname, label: x.h.hostname, host: x.h.id, unit: c.unit, gapMs: gaps[i]!, values: values[i]! })),
    });
  });
  return { from: w.from, to: w.to, range: w.range, width: w.width, bucketMs, hosts: hosts.map((h) => ({ id: h.id, hostname: h.hostname, state: h.state })), charts };
}
